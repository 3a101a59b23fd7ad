"""Normalization of PosZReport JSON, starting from the vendor's own example payload."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from sitoo_sync.normalize.pos_z_reports import normalize_window
from sitoo_sync.normalize.records import NormalizedWindow
from tests.support import vendor_example


def as_dicts(window: NormalizedWindow, table: str) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = window.tables[table].to_pylist()
    return result


def parents(window: NormalizedWindow) -> list[tuple[str, int]]:
    return [(k["registerid"], k["zreportid"]) for k in window.parent_keys.to_pylist()]


def test_vendor_example_parent_row_is_typed() -> None:
    """The vendor example becomes one row: money as Decimal, epochs as UTC datetimes."""
    window = normalize_window([vendor_example()])
    assert window.rejects == []
    [row] = as_dicts(window, "pos_z_reports")
    assert row["registerid"] == "{3CCB9848-155A-49E1-7CA8-5F7F78FC3067}"
    assert row["zreportid"] == 2
    assert row["moneysalestotal"] == Decimal("40463.75")
    assert type(row["moneysalestotal"]) is Decimal
    assert row["moneycash_bank"] == Decimal("-10000.00")
    assert row["moneycash_diff"] == Decimal("0.14")
    assert row["dateadded"] == datetime(2021, 4, 12, 11, 1, 14, tzinfo=UTC)
    assert row["datecreated"] == datetime.fromtimestamp(1587110959, UTC)
    assert row["store_id"] == "200"
    assert row["numreceipts"] == 3
    # Documented fields the example leaves out are NULL, not invented.
    assert row["moneysalesnotdeliveredtotal"] is None
    assert row["extra"] is None


def test_vendor_example_children_are_keyed_by_parent_section_and_position() -> None:
    """Each list becomes child rows with the parent key, the section and the list position."""
    window = normalize_window([vendor_example()])
    vat = as_dicts(window, "pos_z_report_vat_groups")
    assert [(r["section"], r["position"], r["vatvalue"]) for r in vat] == [
        ("sales", 0, Decimal("6")),
        ("sales", 1, Decimal("25")),
    ]
    assert sum(r["moneytotal"] for r in vat) == Decimal("40463.75")
    payments = as_dicts(window, "pos_z_report_payments")
    assert [p["name"] for p in payments] == ["Cash", "Gift Card", "Other"]
    assert sum(p["moneytotal"] for p in payments) == Decimal("40463.75")
    discounts = as_dicts(window, "pos_z_report_discounts")
    assert sum(d["moneytotal"] for d in discounts) == Decimal("120.00")
    groups = as_dicts(window, "pos_z_report_product_groups")
    assert {g["name"]: g["numtotal"] for g in groups} == {"Books": 1, "Common Goods": 6}
    assert all(
        (r["registerid"], r["zreportid"]) == ("{3CCB9848-155A-49E1-7CA8-5F7F78FC3067}", 2)
        for r in vat + payments + discounts + groups
    )
    assert parents(window) == [("{3CCB9848-155A-49E1-7CA8-5F7F78FC3067}", 2)]


def test_subpayments_hang_under_their_payment() -> None:
    """A card payment's sub-payments keep the payment's section and position."""
    record = vendor_example()
    record["paymentssales"][1]["subpayments"] = [
        {"name": "Visa", "moneysubtotal": "200.00"},
        {"name": "Amex", "moneysubtotal": "100.00", "moneycaptured": None},
    ]
    window = normalize_window([record])
    subs = window.rows("pos_z_report_subpayments")
    assert [(s[3], s[4], s[5], s[6], s[7]) for s in subs] == [
        ("sales", 1, 0, "Visa", Decimal("200.00")),
        ("sales", 1, 1, "Amex", Decimal("100.00")),
    ]


@pytest.mark.parametrize(
    ("value", "loaded"),
    [
        ("11059.6", Decimal("11059.60")),
        ("12", Decimal("12.00")),
        ("-0.5", Decimal("-0.50")),
        ("+3.100", Decimal("3.10")),
        (7, Decimal("7.00")),
        (Decimal("40463.7"), Decimal("40463.70")),  # a JSON number, parsed exactly
        ("9999999999999999.99", Decimal("9999999999999999.99")),
    ],
)
def test_an_exact_amount_that_fits_decimal_18_2_loads(value: object, loaded: Decimal) -> None:
    """Money in another exact form than the contract's two decimals loads as that amount."""
    record = vendor_example()
    record["moneysalestotal"] = value
    window = normalize_window([record])
    assert window.rejects == []
    assert window.tables["pos_z_reports"].column("moneysalestotal").to_pylist() == [loaded]


def test_a_rejects_key_names_the_missing_part() -> None:
    """A record without its registerid is kept under a key that says which part is missing."""
    record = vendor_example()
    del record["registerid"]
    [reject] = normalize_window([record]).rejects
    assert reject.record_key == f"registerid=<missing>/zreportid={record['zreportid']}"


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("moneysalestotal", "40463.755", "moneysalestotal: more than 2 decimal places: '40463.7"),
        ("moneysalestotal", "1E+16", "moneysalestotal: not an amount of money: '1E+16'"),
        ("moneysalestotal", "12345678901234567.00", "out of range for DECIMAL(18,2)"),
        ("moneysalestotal", 40463.75, "not an amount of money"),
        ("moneycash_in", "1,00", "moneycash_in: not an amount of money"),
        ("dateadded", "yesterday", "dateadded: not a Unix timestamp"),
        ("dateadded", None, "dateadded: missing required field"),
        ("numsales", True, "numsales: not an integer"),
    ],
)
def test_bad_values_reject_the_record_with_a_reason(field: str, value: object, reason: str) -> None:
    """A bad value rejects its record with a reason naming the field; the others still load."""
    good = vendor_example()
    bad = copy.deepcopy(good)
    bad["zreportid"] = 3
    bad[field] = value
    window = normalize_window([bad, good])
    assert window.tables["pos_z_reports"].num_rows == 1
    assert parents(window) == [("{3CCB9848-155A-49E1-7CA8-5F7F78FC3067}", 2)]
    [reject] = window.rejects
    assert reason in reject.reason
    assert reject.record_key == "{3CCB9848-155A-49E1-7CA8-5F7F78FC3067}/3"
    assert json.loads(reject.raw)["zreportid"] == 3


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda r: r.pop("registerid"), "registerid: missing or empty key field"),
        (lambda r: r.update(zreportid="Z2"), "zreportid: missing or non-integer key field"),
        (lambda r: r.update(vatgroupssales="none"), "vatgroupssales: expected a list"),
        (lambda r: r["paymentssales"].append(7), "paymentssales[3]: expected an object"),
        (
            lambda r: r["vatgroupssales"][0].update(moneytotal="1.001"),
            "pos_z_report_vat_groups.moneytotal: more than 2 decimal places",
        ),
    ],
)
def test_broken_structure_rejects_the_whole_record(mutate: Any, reason: str) -> None:
    """A missing key or a broken child rejects the record and none of its child rows load."""
    record = vendor_example()
    mutate(record)
    window = normalize_window([record])
    assert window.row_count() == 0
    [reject] = window.rejects
    assert reason in reject.reason


def test_a_non_object_record_is_rejected() -> None:
    """A record that is not even an object is kept raw as a reject."""
    window = normalize_window(["garbage"])
    assert window.row_count() == 0
    assert window.rejects[0].raw == '"garbage"'


def test_unknown_fields_are_kept_in_extra() -> None:
    """A field the declaration does not know is kept in the `extra` JSON column, exactly."""
    record = vendor_example()
    record["moneybagid"] = "BAG-7"
    record["newrate"] = Decimal("12.50")
    record["paymentssales"][0]["terminal"] = "T1"
    window = normalize_window([record])
    [row] = as_dicts(window, "pos_z_reports")
    assert json.loads(row["extra"], parse_float=Decimal) == {
        "moneybagid": "BAG-7",
        "newrate": Decimal("12.50"),
    }
    assert row["extra"] == '{"moneybagid":"BAG-7","newrate":12.50}'
    cash = as_dicts(window, "pos_z_report_payments")[0]
    assert json.loads(cash["extra"]) == {"terminal": "T1"}


def test_a_key_seen_twice_in_one_window_keeps_the_last_version() -> None:
    """Re-reads can bring a report twice: one row results, the later version."""
    first = vendor_example()
    second = copy.deepcopy(first)
    second["comment"] = "corrected"
    second["vatgroupssales"] = second["vatgroupssales"][:1]
    window = normalize_window([first, second])
    [row] = as_dicts(window, "pos_z_reports")
    assert row["comment"] == "corrected"
    assert window.tables["pos_z_report_vat_groups"].num_rows == 1
    assert parents(window) == [("{3CCB9848-155A-49E1-7CA8-5F7F78FC3067}", 2)]


def test_currency_conversions_are_kept_whole() -> None:
    """Currency conversions, whose field names the vendor does not document, are kept as JSON."""
    record = vendor_example()
    record["currencyconversions"] = [{"currencycode": "EUR", "moneycounted": "10.00"}]
    window = normalize_window([record])
    [row] = window.rows("pos_z_report_currency_conversions")
    assert row[:4] == ("{3CCB9848-155A-49E1-7CA8-5F7F78FC3067}", 2, "USD", 0)
    assert json.loads(row[4]) == {"currencycode": "EUR", "moneycounted": "10.00"}
