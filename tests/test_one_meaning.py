"""One meaning per concept: "no store", local business days, booleans, currency, refund signs."""

from __future__ import annotations

import copy
import json
from datetime import date
from decimal import Decimal
from typing import Any

from sitoo_sync.normalize import journal_entries, pos_z_reports, store_z_reports
from tests.support import FIXTURES, vendor_example


def vendor_receipt(**changes: Any) -> dict[str, Any]:
    """The vendor's (cut-off) receipt entry, completed with a total, a price and payments."""
    text = (FIXTURES / "journal_entries_vendor_example.json").read_text()
    entries: list[dict[str, Any]] = json.loads(text, parse_float=Decimal)["items"]
    receipt = copy.deepcopy(next(e for e in entries if e["type"] == "receipt"))
    data = receipt["data"]
    data["moneytotal"] = "125.00"
    data["items"][0]["moneyrowprice"] = "125.00"
    data["items"][0]["decimalunitquantity"] = "2.000"
    data["payments"] = [{"name": "Card", "moneyamount": "125.00"}]
    data.update(changes)
    return receipt


def receipt_tables(entry: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    window = journal_entries.normalize_window([entry])
    assert window.rejects == []
    return {name: table.to_pylist() for name, table in window.tables.items()}


def test_no_store_is_spelled_no_store_everywhere() -> None:
    """A POS z-report and a receipt without a store say NO_STORE, as the store z-reports do."""
    for missing in (None, ""):
        report = vendor_example()
        report["store_id"] = missing
        [row] = pos_z_reports.normalize_window([report]).tables["pos_z_reports"].to_pylist()
        assert row["store_id"] == "NO_STORE"
        entry = vendor_receipt()
        entry["data"]["additionaldata"]["store-externalid"] = missing
        [receipt] = receipt_tables(entry)["journal_receipts"]
        assert receipt["store_id"] == "NO_STORE"
    [kept] = pos_z_reports.normalize_window([vendor_example()]).tables["pos_z_reports"].to_pylist()
    assert kept["store_id"] == "200"


def test_pos_z_report_business_date_is_local_to_the_given_zone() -> None:
    """datecreated 2020-04-17 08:09:19 UTC is the 17th in Stockholm and the 16th in Los Angeles;
    without a zone the day is the UTC day, and the zone used is stated on the row."""
    report = vendor_example()
    report["datecreated"] = 1587110959 - 9 * 3600  # 2020-04-16 23:09:19 UTC
    normalize = pos_z_reports.normalize_window
    [utc] = normalize([report]).tables["pos_z_reports"].to_pylist()
    [sthlm] = (
        normalize([report], {"timezone": "Europe/Stockholm"}).tables["pos_z_reports"].to_pylist()
    )
    assert (utc["business_date"], utc["business_timezone"]) == (date(2020, 4, 16), "UTC")
    assert (sthlm["business_date"], sthlm["business_timezone"]) == (
        date(2020, 4, 17),
        "Europe/Stockholm",
    )


def test_item_delivered_is_also_a_boolean() -> None:
    """The vendor's "true"/"false" text stays in `delivered`; `isdelivered` is a boolean."""
    entry = vendor_receipt()
    [item] = receipt_tables(entry)["journal_receipt_items"]
    assert (item["delivered"], item["isdelivered"]) == ("true", True)
    entry["data"]["items"][0]["additionaldata"]["item-delivered"] = "false"
    [item] = receipt_tables(entry)["journal_receipt_items"]
    assert item["isdelivered"] is False


def test_refunds_are_also_signed_and_every_money_row_has_its_currency() -> None:
    """On a refund the *_signed columns are negative, on a sale positive; items, discounts and
    payments carry the receipt's currency."""
    sale = receipt_tables(vendor_receipt())
    refund = receipt_tables(vendor_receipt(isrefund=True))
    for tables, sign in ((sale, 1), (refund, -1)):
        [receipt] = tables["journal_receipts"]
        [item] = tables["journal_receipt_items"]
        [payment] = tables["journal_receipt_payments"]
        assert receipt["moneytotal"] == Decimal("125.00")
        assert receipt["moneytotal_signed"] == sign * Decimal("125.00")
        assert item["moneyrowprice_signed"] == sign * Decimal("125.00")
        assert item["quantity_signed"] == sign * Decimal("2")
        assert payment["moneyamount_signed"] == sign * Decimal("125.00")
        assert {item["currencycode"], payment["currencycode"]} == {"SEK"}
        [discount] = tables["journal_receipt_item_discounts"]
        assert discount["currencycode"] == "SEK"


def test_z_report_children_carry_their_reports_currency() -> None:
    """Every money child of a POS or store z-report has the parent's currency on the row."""
    pos = pos_z_reports.normalize_window([vendor_example()])
    for name, table in pos.tables.items():
        if name != "pos_z_reports" and table.num_rows:
            assert set(table.column("currencycode").to_pylist()) == {"USD"}, name
    text = (FIXTURES / "store_z_reports_vendor_example.json").read_text()
    stores = store_z_reports.normalize_window(json.loads(text, parse_float=Decimal))
    payments = stores.tables["store_z_report_payments"].to_pylist()
    assert payments
    assert {p["currency_code"] for p in payments} == {"SEK"}
