"""Upgrading: a warehouse an older version made and loaded, brought up to date by this one.

`fixtures/upgrade/tables_8ec80bb.json` is the schema as commit 8ec80bb (before the journal's
item counts, `warehouse_items.missing_since` and `sync_views`) declared it: every table with
its columns, kinds, nullability and keys, dumped from that commit's declarations (its
`STREAMS` and system tables). A test cannot run an old commit (a CI clone need not have the
history), so the old warehouse is made from that capture, and loaded with rows shaped as
that version stored them: a piece good's count kept in `extra` (`{"quantity": 3}`, a field
it did not declare) and quantity_signed read from decimalunitquantity, 0.000 for a piece
good. Against the simulator, that version's own `run --once` and this one's after it load
the same rows as this one's alone; these tests keep that so on every target.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from sitoo_sync.dictionary import all_tables
from sitoo_sync.normalize.columns import rows_to_arrow
from sitoo_sync.normalize.tables import Column, Kind, Table, integer, text
from sitoo_sync.streams import STREAMS
from sitoo_sync.views import VIEWS
from sitoo_sync.warehouse import open_warehouse
from sitoo_sync.warehouse.base import SYSTEM_TABLES, Warehouse
from sitoo_sync.warehouse.views import View
from tests.support import FIXTURES
from tests.targets import ALL_TARGETS, Target, target_for, view_rows

REGISTER = "{2AA484B4-2B5F-55AB-128A-7DB46E573357}"
AT = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
CURSOR = "1795089600"

#: (id, isrefund, moneytotal): a sale, a refund, a refund whose total the vendor signed, a sale
RECEIPTS = [(1, False, "300.00"), (2, True, "200.00"), (3, True, "-100.00"), (4, False, "50.00")]
#: (id, position, productid, sku, decimalunitquantity, moneyrowprice, quantity_signed as the
#: old version stored it, extra as it stored it)
ITEMS = [
    (1, 0, "16", "MUG", "0.000", "250.00", "0.000", {"quantity": 5}),
    (1, 1, "17", "CHEESE", "0.350", "50.00", "0.350",
     {"quantity": 1, "decimalquantitytotal": "0.350", "colour": "blue"}),
    (2, 0, "16", "MUG", "0.000", "200.00", "0.000", {"quantity": 2}),
    (3, 0, "16", "MUG", "0.000", "-100.00", "0.000", {"quantity": -1}),
    (4, 0, "18", "GIFT", "0.000", "25.00", "0.000", {"quantity": "2.5"}),
    (4, 1, "19", "BAG", "2.000", "25.00", "2.000", None),
]  # fmt: skip


def old_tables() -> list[Table]:
    """The tables as version 8ec80bb declared them (the fixture)."""
    declared = json.loads((FIXTURES / "upgrade" / "tables_8ec80bb.json").read_text())
    return [
        Table(
            name=d["name"],
            columns=tuple(Column(n, Kind(k), nullable=nullable) for n, k, nullable in d["columns"]),
            key=tuple(d["key"]),
            parent_key=tuple(d.get("parent_key", ())),
            replace_group=tuple(d.get("replace_group", ())),
            keep_on_update=tuple(d.get("keep_on_update", ())),
        )
        for d in declared
    ]


def _insert(warehouse: Warehouse, table: Table, rows: list[dict[str, Any]]) -> None:
    data = rows_to_arrow(table, [tuple(r.get(c) for c in table.column_names) for r in rows])
    with warehouse.transaction():
        warehouse.insert(table, data)


def _load_old(warehouse: Warehouse) -> None:
    """What version 8ec80bb left: its tables, a stale view of its own (it kept no
    `sync_views`), cursors, and receipts with their items as it stored them."""
    tables = {t.name: t for t in old_tables()}
    warehouse.ensure_schema(list(tables.values()))
    warehouse.execute(f"CREATE VIEW {warehouse.qualified('v_product_sales')} AS SELECT 1 AS old")
    state = {"updated_at": AT, "last_success_at": AT, "last_status": "ok", "rows_loaded": 10}
    _insert(
        warehouse,
        tables["sync_state"],
        [
            {**state, "stream": "journal_entries", "partition_key": REGISTER, "cursor": CURSOR},
            {**state, "stream": "pos_z_reports", "partition_key": "1500", "cursor": CURSOR},
        ],
    )
    common = {"registerid": REGISTER, "_loaded_at": AT, "_run_id": "old", "currencycode": "SEK"}
    receipts = [
        {
            **common,
            "id": i,
            "type": "receipt",
            "ispractice": False,
            "datecreated": AT,
            "business_date": date(2026, 11, 20),
            "isrefund": refund,
            "store_id": "200",
            "moneytotal": Decimal(total),
            "moneytotal_signed": -Decimal(total) if refund and total[0] != "-" else Decimal(total),
        }
        for i, refund, total in RECEIPTS
    ]
    _insert(warehouse, tables["journal_receipts"], receipts)
    flips = {i: refund and total[0] != "-" for i, refund, total in RECEIPTS}
    items = [
        {
            **common,
            "id": i,
            "position": pos,
            "productid": productid,
            "sku": sku,
            "decimalunitquantity": Decimal(unit),
            "moneyrowprice": Decimal(price),
            "moneyrowprice_signed": -Decimal(price) if flips[i] else Decimal(price),
            "quantity_signed": Decimal(signed),
            "extra": None if extra is None else json.dumps(extra),
        }
        for i, pos, productid, sku, unit, price, signed, extra in ITEMS
    ]
    _insert(warehouse, tables["journal_receipt_items"], items)


def _current_tables() -> list[Table]:
    return [*SYSTEM_TABLES, *(t for s in STREAMS.values() for t in s.tables)]


@pytest.fixture(params=ALL_TARGETS)
def upgraded(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Target, list[Any]]]:
    """A target version 8ec80bb made and loaded, then given this version's schema upkeep as
    a tick starts it; with the upkeep's log events."""
    with target_for(request.param, tmp_path) as target:
        warehouse = open_warehouse(target.url, schema=target.schema)
        try:
            _load_old(warehouse)
        finally:
            warehouse.close()
        warehouse = open_warehouse(target.url, schema=target.schema)
        try:
            with capture_logs() as logs:
                warehouse.ensure_schema(_current_tables(), VIEWS, declared=all_tables())
        finally:
            warehouse.close()
        yield target, logs


def _items(target: Target) -> list[tuple[Any, ...]]:
    table = f"{target.schema}.journal_receipt_items" if target.schema else "journal_receipt_items"
    rows = view_rows(
        target,
        "SELECT id, position, quantity, quantity_signed, decimalquantitytotal, extra "
        f"FROM {table} ORDER BY id, position",
    )
    return [
        (
            i,
            pos,
            quantity,
            None if signed is None else Decimal(str(signed)),
            None if total is None else Decimal(str(total)),
            None if extra is None else json.loads(extra) if isinstance(extra, str) else extra,
        )
        for i, pos, quantity, signed, total, extra in rows
    ]


def test_old_items_get_the_count_they_kept_in_extra(upgraded: tuple[Target, list[Any]]) -> None:
    """On every target, the upkeep that adds journal_receipt_items.quantity fills it for the
    rows loaded before from the count each kept in `extra` (which then no longer holds it),
    and quantity_signed from it as a load now signs it: negated on a refund, as sent when the
    vendor signed the receipt. A count that is no whole number stays in `extra` with quantity
    NULL; an item that sent none keeps its unit quantity as the count, as a load now does."""
    target, logs = upgraded
    assert _items(target) == [
        (1, 0, 5, Decimal(5), None, None),
        (1, 1, 1, Decimal(1), Decimal("0.350"), {"colour": "blue"}),
        (2, 0, 2, Decimal(-2), None, None),
        (3, 0, -1, Decimal(-1), None, None),
        (4, 0, None, Decimal(0), None, {"quantity": "2.5"}),
        (4, 1, None, Decimal(2), None, None),
    ]
    filled = {(e["column"], e["rows"]) for e in logs if e["event"] == "column_backfilled"}
    assert filled == {("quantity", 4), ("decimalquantitytotal", 1)}


def test_product_sales_count_old_receipts_after_the_upgrade(
    upgraded: tuple[Target, list[Any]],
) -> None:
    """v_product_sales, made again over the stale view the old version left, counts the
    old receipts' units: 5 mugs less the 2 and the 1 refunded, 1 cheese, 2 bags."""
    target, _logs = upgraded
    rows = view_rows(target, "SELECT sku, quantity FROM v_product_sales ORDER BY sku")
    assert [(sku, Decimal(str(q))) for sku, q in rows] == [
        ("BAG", Decimal(2)),
        ("CHEESE", Decimal(1)),
        ("GIFT", Decimal(0)),
        ("MUG", Decimal(2)),
    ]


def test_the_upgrade_keeps_cursors_and_runs_its_backfills_once(
    upgraded: tuple[Target, list[Any]],
) -> None:
    """The old cursors are where the old version left them, every declared column is there,
    and the next tick's upkeep adds and fills nothing again."""
    target, _logs = upgraded
    warehouse = open_warehouse(target.url, schema=target.schema)
    try:
        assert warehouse.get_cursors("journal_entries") == {REGISTER: CURSOR}
        assert warehouse.get_cursors("pos_z_reports") == {"1500": CURSOR}
        with capture_logs() as logs:
            warehouse.ensure_schema(_current_tables(), VIEWS)
        for table in _current_tables():
            warehouse.read_table(table)  # every declared column is there to read
    finally:
        warehouse.close()
    events = {e["event"] for e in logs}
    assert not events & {"column_added", "column_backfilled", "table_created", "views_created"}
    assert _items(target)[0] == (1, 0, 5, Decimal(5), None, None)


# ---- a new version's views over a BI user's own ----------------------------------------------


@pytest.fixture(params=ALL_TARGETS)
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    """Each target in turn (servers skip when CI did not provide them)."""
    with target_for(request.param, tmp_path) as t:
        yield t


def _upkeep(target: Target, view: View) -> list[Any]:
    """A tick's schema upkeep with `view` as this version declares it; its log events."""
    warehouse = open_warehouse(target.url, schema=target.schema)
    try:
        with capture_logs() as logs:
            warehouse.ensure_schema([THINGS], [view])
    finally:
        warehouse.close()
    return logs


def test_a_new_view_definition_never_stops_the_tick_over_a_users_own_view(
    target: Target,
) -> None:
    """A user's own view reading one of ours (which PostgreSQL will not let be dropped): a
    version that adds a column to ours replaces it in place, the user's view still reads
    it; a version that drops one of its columns keeps ours as it was with a `view_kept`
    warning, rather than fail every stream's tick, and replaces it once the user's view is
    gone. The other targets drop and create ours as ever."""
    _upkeep(target, _things("k, n"))
    own, ours, things = (f"{target.schema}.{n}" if target.schema else n
                         for n in ("my_things", "v_things", "things"))  # fmt: skip
    _execute(target, f"INSERT INTO {things} VALUES ('a', 1)")
    _execute(target, f"CREATE VIEW {own} AS SELECT k FROM {ours}")
    assert "view_kept" not in {e["event"] for e in _upkeep(target, _things("k, n, 2 AS m"))}
    assert view_rows(target, f"SELECT k FROM {own}") == [("a",)]
    assert view_rows(target, "SELECT k, n, m FROM v_things") == [("a", 1, 2)]
    kept = [e for e in _upkeep(target, _things("k, 3 AS m")) if e["event"] == "view_kept"]
    if target.name == "postgres":
        assert [e["view"] for e in kept] == ["v_things"]
        assert "\n" not in kept[0]["reason"]
        assert view_rows(target, "SELECT k, n, m FROM v_things") == [("a", 1, 2)]
        _execute(target, f"DROP VIEW {own}")
        assert "view_kept" not in {e["event"] for e in _upkeep(target, _things("k, 3 AS m"))}
    else:
        assert kept == []
    assert view_rows(target, "SELECT k, m FROM v_things") == [("a", 3)]


def _execute(target: Target, sql: str) -> None:
    warehouse = open_warehouse(target.url, schema=target.schema)
    try:
        warehouse.execute(sql)
    finally:
        warehouse.close()


THINGS = Table("things", (text("k", nullable=False), integer("n")), key=("k",))


def _things(select: str) -> View:
    """`v_things`: `select` from the things table."""
    return View(
        name="v_things",
        description="Things, for a test.",
        columns=tuple((c.split()[-1], "A thing's.") for c in select.split(",")),
        reads={"things": ("k", "n")},
        select=lambda d: f"SELECT {select} FROM {d.t('things')}",
    )
