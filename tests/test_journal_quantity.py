"""A journal receipt item's count is `quantity`; `decimalunitquantity` is its unit quantity.

The vendor's only journal example sends `"decimalunitquantity": "0.000"` on an ordinary
item, and its order items count in `quantity` (an int) beside a unit quantity (kg per
unit). Read as the count, every live receipt sold 0 units, and every item with `quantity`
left the columnar path with an undeclared field.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import pytest

from sitoo_sync.commit import load_window
from sitoo_sync.normalize import journal_pages
from sitoo_sync.normalize.journal_entries import JOURNAL_RECEIPT_ITEMS, TABLES
from sitoo_sync.normalize.journal_entries import normalize_window as reference
from sitoo_sync.normalize.journal_pages import decode_page, normalize_window
from sitoo_sync.normalize.records import NormalizedWindow
from sitoo_sync.normalize.tables import Table
from sitoo_sync.simulator import SimConfig, Simulator
from sitoo_sync.streams import STREAMS
from sitoo_sync.views import VIEWS
from sitoo_sync.warehouse import open_warehouse
from sitoo_sync.warehouse.base import SYSTEM_TABLES
from tests.targets import ALL_TARGETS, Target, target_for, view_rows
from tests.test_journal_entries import vendor_entries
from tests.test_journal_pages import _DICTS, assert_same_window

ITEMS = "journal_receipt_items"
NEW_COLUMNS = ("quantity", "decimalquantitytotal")


def _item(productid: str, sku: str, count: Any, unit: str, price: str) -> dict[str, Any]:
    """A receipt item as the live API sends it (the vendor's example item, completed)."""
    item: dict[str, Any] = {
        "additionaldata": {
            "item-delivered": "true",
            "item-productid": productid,
            "product-group-name": "Standard",
        },
        "decimalunitquantity": unit,
        "discounts": [],
        "moneyrowprice": price,
        "name": sku.title(),
        "sku": sku,
        "vatvalue": 25,
    }
    if count is not None:
        item["quantity"] = count
    return item


def _receipts(*receipts: tuple[bool, str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """The vendor's example entries, its receipt repeated once per (isrefund, moneytotal,
    items), ids 3, 4, ..."""
    entries = vendor_entries()
    template = entries.pop()
    for n, (refund, total, items) in enumerate(receipts):
        entry = copy.deepcopy(template)
        entry["id"] = 3 + n
        entry["data"].update(isrefund=refund, moneytotal=total, items=items)
        entry["data"]["additionaldata"]["pos-receiptid"] = f"R{n}"
        entries.append(entry)
    return entries


#: A sale of 3 mugs and a bag of sweets weighed at 0.350 kg; a refund of one mug sent as
#: magnitudes (isrefund, as assumed), and one sent signed negative (as the vendor's orders).
LIVE = (
    (
        False,
        "330.00",
        [
            _item("16", "MUG", 3, "0.000", "300.00"),
            _item("17", "SWEETS", 1, "0.350", "30.00"),
        ],
    ),
    (True, "100.00", [_item("16", "MUG", 1, "0.000", "100.00")]),
    (True, "-100.00", [_item("16", "MUG", -1, "0.000", "-100.00")]),
)


def _both(entries: list[dict[str, Any]]) -> NormalizedWindow:
    """The reference normalizer's window, checked equal to the columnar one's."""
    body = msgspec.json.encode({"items": entries})
    want = reference(_DICTS.decode(body)["items"])
    assert want.rejects == []
    assert_same_window(normalize_window(decode_page(body)["items"]), want)
    return want


def _items(window: NormalizedWindow) -> list[tuple[Any, ...]]:
    rows = window.tables[ITEMS].to_pylist()
    return [
        (r["id"], r["quantity"], r["decimalunitquantity"], r["quantity_signed"], r["extra"])
        for r in sorted(rows, key=lambda r: (r["id"], r["position"]))
    ]


def test_live_shaped_items_count_their_units_on_both_normalizers() -> None:
    """An item's `quantity` is its count: journal_receipt_items keeps it and the unit
    quantity as sent, quantity_signed is the count (negative on both refunds: the one sent
    as magnitudes and the one the vendor signed), nothing lands in `extra`, and both
    normalizers agree (the unit quantity 0.000 was the count: 0 units sold)."""
    window = _both(_receipts(*LIVE))
    assert _items(window) == [
        (3, 3, Decimal("0.000"), Decimal(3), None),
        (3, 1, Decimal("0.350"), Decimal(1), None),
        (4, 1, Decimal("0.000"), Decimal(-1), None),
        (5, -1, Decimal("0.000"), Decimal(-1), None),
    ]


def test_live_shaped_items_stay_on_the_columnar_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """A window of items carrying `quantity` and `decimalquantitytotal` is normalized on
    the columnar path whole: neither is an undeclared field that sends its receipt to the
    reference normalizer."""

    def refused(*_args: Any, **_kwargs: Any) -> Any:
        raise AssertionError("the reference normalizer was asked")

    monkeypatch.setattr(journal_pages, "reference_normalize", refused)
    entries = _receipts(*LIVE)
    entries[2]["data"]["items"][1]["decimalquantitytotal"] = "0.350"
    body = msgspec.json.encode({"items": entries})
    window = journal_pages.normalize_entries(decode_page(body)["items"])
    assert window is not None
    rows = window.tables[ITEMS].to_pylist()
    assert [r["quantity"] for r in rows] == [3, 1, 1, -1]
    assert rows[1]["decimalquantitytotal"] == Decimal("0.350")


def test_old_shaped_items_still_count_their_unit_quantity() -> None:
    """An item without `quantity` (a register that sends no count, rows before it was
    known) takes its decimalunitquantity as the units, negated on a refund; an item whose
    quantity is null does too, beside one that has it. Both normalizers agree."""
    window = _both(
        _receipts(
            (False, "200.00", [_item("16", "MUG", None, "2.000", "200.00")]),
            (True, "100.00", [_item("16", "MUG", None, "1.000", "100.00")]),
            (
                False,
                "300.00",
                [
                    {**_item("16", "MUG", None, "2.000", "200.00"), "quantity": None},
                    _item("16", "MUG", 1, "0.000", "100.00"),
                ],
            ),
        )
    )
    assert _items(window) == [
        (3, None, Decimal("2.000"), Decimal(2), None),
        (4, None, Decimal("1.000"), Decimal(-1), None),
        (5, None, Decimal("2.000"), Decimal(2), None),
        (5, 1, Decimal("0.000"), Decimal(1), None),
    ]


@pytest.mark.parametrize(
    ("count", "reason"),
    [
        pytest.param("2.5", "not an integer", id="fraction"),
        pytest.param(True, "not an integer", id="boolean"),
        pytest.param(10**15, "out of range for DECIMAL(18,3)", id="past-decimal"),
    ],
)
def test_a_count_that_is_no_count_rejects_its_receipt_on_both_normalizers(
    count: Any, reason: str
) -> None:
    """A `quantity` that is not a whole number, or that quantity_signed cannot hold, rejects
    the receipt with the reason, the same on both normalizers (the columnar path hands the
    window over rather than load it)."""
    body = msgspec.json.encode(
        {"items": _receipts((False, "1.00", [_item("16", "MUG", count, "0.000", "1.00")]))}
    )
    want = reference(_DICTS.decode(body)["items"])
    assert [reason in r.reason for r in want.rejects] == [True]
    assert_same_window(normalize_window(decode_page(body)["items"]), want)


def test_the_simulator_sends_counts_and_unit_quantities_its_orders_agree_with() -> None:
    """The simulator's receipt items carry `quantity` (an int) and decimalunitquantity as
    the vendor's example does ("0.000" for piece goods, a weight for goods sold by weight,
    with quantity 1 mostly), and the orders it makes of the receipts count the same."""
    sim = Simulator.create(SimConfig(seed=8, days=5))
    items = [
        item
        for e in sim.world.journal.all_entries()
        if e["type"] == "receipt"
        for item in e["data"]["items"]
    ]
    assert all(type(i["quantity"]) is int and i["quantity"] > 0 for i in items)
    pieces = [i for i in items if i["decimalunitquantity"] == "0.000"]
    weighed = [i for i in items if i["decimalunitquantity"] != "0.000"]
    assert pieces
    assert weighed
    assert any(i["quantity"] > 1 for i in pieces)
    assert all(Decimal(0) < Decimal(i["decimalunitquantity"]) <= Decimal(3) for i in weighed)
    assert any(i["quantity"] == 1 for i in weighed)
    lines = [
        (i["sku"], i["quantity"], i["decimalunitquantity"])
        for o in sim.rest.orders.values()
        if o["registerid"]
        for i in o["orderitems"]
    ]
    assert lines
    assert {u for _, _, u in lines} >= {"0.000"}
    assert any(u not in (None, "0.000") and abs(q) == 1 for _, q, u in lines)


# ---- on every target ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Stream:
    """The journal stream as an older version declared its tables."""

    name: str
    tables: tuple[Table, ...]


def _old_tables() -> tuple[Table, ...]:
    """The journal's tables before journal_receipt_items had its count columns."""
    old = replace(
        JOURNAL_RECEIPT_ITEMS,
        columns=tuple(c for c in JOURNAL_RECEIPT_ITEMS.columns if c.name not in NEW_COLUMNS),
    )
    return tuple(old if t.name == ITEMS else t for t in TABLES)


def _old_window(window: NormalizedWindow) -> NormalizedWindow:
    tables = dict(window.tables)
    tables[ITEMS] = tables[ITEMS].drop_columns(list(NEW_COLUMNS))
    return replace(window, tables=tables)


@pytest.fixture(params=ALL_TARGETS)
def migrated(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    """A target whose journal tables an older version made and loaded (an old-shaped sale
    of 2 mugs by decimalunitquantity), then upgraded by schema upkeep and loaded with the
    live-shaped receipts (LIVE, ids 3.. of another register)."""
    with target_for(request.param, tmp_path) as target:
        old = _old_tables()
        warehouse = open_warehouse(target.url, schema=target.schema)
        try:
            warehouse.ensure_schema([*SYSTEM_TABLES, *old], VIEWS)
            before = reference(
                _receipts((False, "200.00", [_item("16", "MUG", None, "2.000", "200.00")]))
            )
            load_window(warehouse, _Stream("journal_entries", old), "old", _old_window(before), "1")
        finally:
            warehouse.close()
        stream = STREAMS["journal_entries"]
        warehouse = open_warehouse(target.url, schema=target.schema)
        try:
            warehouse.ensure_schema([*SYSTEM_TABLES, *stream.tables], VIEWS)
            entries = _receipts(*LIVE)
            for e in entries:
                e["registerid"] = "{NEW}"
            body = msgspec.json.encode({"items": entries})
            load_window(
                warehouse, stream, "{NEW}", normalize_window(decode_page(body)["items"]), "2"
            )
        finally:
            warehouse.close()
        yield target


def test_units_sold_are_counted_on_every_target_old_rows_too(migrated: Target) -> None:
    """On every target, an old-shaped journal_receipt_items gains quantity and
    decimalquantitytotal by schema upkeep; its old rows keep their units (quantity NULL),
    the live-shaped rows count theirs, and v_product_sales nets the refunds off by the
    signed columns: 2 + 3 - 1 - 1 mugs (the refund sent signed negative subtracts too, not
    adds) and 1 bag of sweets, 0.000 of neither."""
    rows = view_rows(
        migrated,
        f"SELECT registerid, id, quantity, quantity_signed FROM {_table(migrated, ITEMS)} "
        "ORDER BY registerid, id, position",
    )
    assert [(r[0], r[1], r[2], _dec(r[3])) for r in rows] == [
        ("{2AA484B4-2B5F-55AB-128A-7DB46E573357}", 3, None, Decimal(2)),
        ("{NEW}", 3, 3, Decimal(3)),
        ("{NEW}", 3, 1, Decimal(1)),
        ("{NEW}", 4, 1, Decimal(-1)),
        ("{NEW}", 5, -1, Decimal(-1)),
    ]
    sales = view_rows(
        migrated, "SELECT sku, quantity, amount_incl_vat FROM v_product_sales ORDER BY sku"
    )
    assert [(s, _dec(q), _dec(a)) for s, q, a in sales] == [
        ("MUG", Decimal(3), Decimal("300.00")),
        ("SWEETS", Decimal(1), Decimal("30.00")),
    ]


def _table(target: Target, name: str) -> str:
    return f"{target.schema}.{name}" if target.schema else name


def _dec(value: Any) -> Decimal:
    return Decimal(str(value))
