"""On MySQL/MariaDB text compares byte for byte, as on the other targets: keys that differ
only in case (SKUs `ab-1` and `AB-1`, two products to Sitoo) or in a trailing space are two
rows, and a warehouse an older version made in the server's case-insensitive collation is
converted when a tick starts."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from sitoo_sync.commit import PartitionLoad, load_group
from sitoo_sync.normalize.tables import Table
from sitoo_sync.streams import STREAMS
from sitoo_sync.views import VIEWS
from sitoo_sync.warehouse import open_warehouse
from sitoo_sync.warehouse.base import SYSTEM_TABLES, Warehouse
from sitoo_sync.warehouse.dialects import binary_collation, stale_tables
from sitoo_sync.warehouse.sql_types import sa_table
from sitoo_sync.warehouse.sqla import make_engine
from tests.targets import Target, target_for

ITEMS = STREAMS["warehouse_items"]
ITEMS_TABLE = ITEMS.tables[0]
EVERY_TABLE: list[Table] = [*SYSTEM_TABLES, *(t for s in STREAMS.values() for t in s.tables)]
PARTITION = "1/2"  # site 1, warehouse 2


@pytest.fixture
def target(tmp_path: Path) -> Iterator[Target]:
    """A database of its own on the MySQL/MariaDB server, dropped afterwards (skipped, with
    the reason, when SITOO_TEST_MYSQL_URL is not set)."""
    with target_for("mysql", tmp_path) as t:
        yield t


def test_the_best_binary_collation_the_server_has_is_taken() -> None:
    """A NO PAD binary collation (MariaDB's, else MySQL 8's) before the padding utf8mb4_bin."""
    assert binary_collation({"utf8mb4_bin", "utf8mb4_nopad_bin"}) == "utf8mb4_nopad_bin"
    assert binary_collation({"utf8mb4_bin", "utf8mb4_0900_bin"}) == "utf8mb4_0900_bin"
    assert binary_collation({"utf8mb4_bin"}) == "utf8mb4_bin"


def test_a_table_is_converted_when_its_default_or_a_text_column_is_not_binary() -> None:
    """Only existing tables whose default or declared text columns' collation differ are
    converted; a JSON column (MariaDB: utf8mb4_bin of its own) is no reason to."""
    bin_ = "utf8mb4_nopad_bin"
    text = {"done": ("sku",), "old": ("sku",), "odd": ("sku",), "absent": ("sku",)}
    tables = {"done": bin_, "old": "utf8mb4_general_ci", "odd": bin_}
    columns = {
        ("done", "sku"): bin_,
        ("done", "extra"): "utf8mb4_bin",
        ("old", "sku"): "utf8mb4_general_ci",
        ("odd", "sku"): "utf8mb4_general_ci",
    }
    assert stale_tables(text, tables, columns, bin_) == ["odd", "old"]


def load_skus(warehouse: Warehouse, skus: Sequence[str], cursor: str) -> None:
    """Stock rows of `skus` in warehouse 2 of site 1, loaded as a tick loads them."""
    records = [
        {"warehouseid": 2, "sku": sku, "decimaltotal": str(n)} for n, sku in enumerate(skus, 1)
    ]
    normalized = ITEMS.normalize(records, {"partition": PARTITION})
    load_group(warehouse, ITEMS, [PartitionLoad(PARTITION, normalized, cursor, 1)])


def stored_skus(warehouse: Warehouse) -> list[str]:
    """The SKUs of the stored stock rows, sorted."""
    return sorted(row["sku"] for row in warehouse.read_table(ITEMS_TABLE))


def started(target: Target, tables: Sequence[Table] = EVERY_TABLE) -> Warehouse:
    """The warehouse as a tick starts it: its tables and views made or brought up to date."""
    warehouse = open_warehouse(target.url, schema=target.schema)
    warehouse.ensure_schema(tables, VIEWS)
    return warehouse


def old_warehouse(target: Target) -> None:
    """Every table made as a version before the binary collation made it: in the database's
    default collation, here the case- and accent-insensitive utf8mb4_general_ci; with one
    stored stock row, of SKU `ab-1`."""
    engine = make_engine(target.url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(
                f"CREATE DATABASE `{target.schema}` "
                "CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci"
            )
            metadata = sa.MetaData(schema=target.schema)
            tables = [sa_table(t, metadata) for t in EVERY_TABLE]
            metadata.create_all(conn, tables=tables)
            conn.execute(
                tables[EVERY_TABLE.index(ITEMS_TABLE)].insert(),
                [{"site_id": 1, "warehouseid": 2, "sku": "ab-1", "decimaltotal": 7}],
            )
    finally:
        engine.dispose()


def collations(target: Target) -> tuple[dict[str, str], dict[tuple[str, str], str]]:
    """Each table's default collation, and each character column's (JSON's too)."""
    warehouse = open_warehouse(target.url, schema=target.schema)
    try:
        tables = warehouse.query(
            "SELECT TABLE_NAME, TABLE_COLLATION FROM information_schema.TABLES "
            "WHERE TABLE_SCHEMA = %s AND TABLE_TYPE = 'BASE TABLE'",
            (target.schema,),
        )
        columns = warehouse.query(
            "SELECT TABLE_NAME, COLUMN_NAME, COLLATION_NAME FROM information_schema.COLUMNS "
            "WHERE TABLE_SCHEMA = %s AND COLLATION_NAME IS NOT NULL",
            (target.schema,),
        )
    finally:
        warehouse.close()
    return {str(t): str(c) for t, c in tables}, {(str(t), str(n)): str(c) for t, n, c in columns}


def not_binary(target: Target, names: Sequence[str]) -> list[Any]:
    """The tables of `names`, and their columns, whose text does not compare byte for byte."""
    tables, columns = collations(target)
    return sorted(
        [(t, c) for t, c in tables.items() if t in names and not c.endswith("_bin")]
        + [(*k, c) for k, c in columns.items() if k[0] in names and not c.endswith("_bin")]
    )


def views_read(target: Target) -> list[str]:
    """Each view of VIEWS read once (a mix of collations fails the read): their names."""
    warehouse = open_warehouse(target.url, schema=target.schema)
    try:
        for view in VIEWS:
            warehouse.query(f"SELECT * FROM {warehouse.qualified(view.name)} LIMIT 1")
        return sorted(
            str(r[0])
            for r in warehouse.query(f"SELECT view_name FROM {warehouse.qualified('sync_views')}")
        )
    finally:
        warehouse.close()


def has_no_pad_collation(target: Target) -> bool:
    """The server has a binary NO PAD collation of utf8mb4 (MariaDB 10.2+, MySQL 8.0.17+)."""
    warehouse = open_warehouse(target.url)
    try:
        found = warehouse.query(
            "SELECT COUNT(*) FROM information_schema.COLLATIONS "
            "WHERE COLLATION_NAME IN ('utf8mb4_nopad_bin', 'utf8mb4_0900_bin')"
        )
    finally:
        warehouse.close()
    return bool(found[0][0])


def test_keys_differing_only_in_case_load_as_two_rows(target: Target) -> None:
    """`ab-1` and `AB-1` in one window, then `Ab-1` in the next, are three stock rows: none
    is refused as a duplicate of, or written over, another."""
    warehouse = started(target)
    try:
        load_skus(warehouse, ["ab-1", "AB-1"], "100")
        assert stored_skus(warehouse) == ["AB-1", "ab-1"]
        load_skus(warehouse, ["Ab-1"], "200")
        assert stored_skus(warehouse) == ["AB-1", "Ab-1", "ab-1"]
        assert warehouse.get_cursor(ITEMS.name, PARTITION) == "200"
    finally:
        warehouse.close()


def test_keys_differing_only_in_a_trailing_space_load_as_two_rows(target: Target) -> None:
    """`ab-1` and `ab-1 ` are two stock rows where the server has a NO PAD binary collation."""
    if not has_no_pad_collation(target):
        pytest.skip("the server has no NO PAD binary collation: `a` and `a ` are one key there")
    warehouse = started(target)
    try:
        load_skus(warehouse, ["ab-1", "ab-1 "], "100")
        load_skus(warehouse, ["ab-1  "], "200")
        assert stored_skus(warehouse) == ["ab-1", "ab-1 ", "ab-1  "]
    finally:
        warehouse.close()


def test_a_new_warehouse_is_all_binary_and_every_view_creates_and_reads(target: Target) -> None:
    """Every table, the engine's own (state, runs, rejects, views) included, and every text
    column is made in a binary collation; every view is created and reads."""
    started(target).close()
    names = [t.name for t in EVERY_TABLE]
    assert set(collations(target)[0]) == set(names)
    assert not_binary(target, names) == []
    assert views_read(target) == sorted(v.name for v in VIEWS)


def test_an_old_warehouse_is_converted_on_start_and_then_holds_both_keys(
    target: Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A warehouse made in the case-insensitive collation is converted by the next start,
    once: `AB-1` then loads beside the stored `ab-1`, and the views create and read."""
    old_warehouse(target)
    names = [t.name for t in EVERY_TABLE]
    assert not_binary(target, names)
    warehouse = started(target)
    try:
        assert not_binary(target, names) == []
        load_skus(warehouse, ["AB-1"], "100")
        assert stored_skus(warehouse) == ["AB-1", "ab-1"]
    finally:
        warehouse.close()
    assert views_read(target) == sorted(v.name for v in VIEWS)
    events: list[str] = []
    monkeypatch.setattr(
        "sitoo_sync.warehouse.sqla.log.info", lambda event, **_fields: events.append(event)
    )
    started(target).close()
    assert not [e for e in events if "collation" in e]


class Crash(BaseException):
    """The process dies here."""


def test_a_start_that_dies_part_way_through_the_conversion_is_finished_by_the_next(
    target: Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed after converting one table, the start leaves that one converted and the rest
    as they were; the next start converts the rest, not that one again."""
    old_warehouse(target)
    names = [t.name for t in EVERY_TABLE]
    converted: list[str] = []

    def dies_after_the_first(event: str, **fields: Any) -> None:
        if event == "table_collation_converted":
            converted.append(fields["table"])
            raise Crash

    monkeypatch.setattr("sitoo_sync.warehouse.sqla.log.info", dies_after_the_first)
    warehouse = open_warehouse(target.url, schema=target.schema)
    with pytest.raises(Crash):
        warehouse.ensure_schema(EVERY_TABLE, VIEWS)
    warehouse.close()
    [first] = converted
    left = {row[0] for row in not_binary(target, names)}
    assert first not in left
    assert left
    converting: list[str] = []
    monkeypatch.setattr(
        "sitoo_sync.warehouse.sqla.log.info",
        lambda event, **fields: (
            converting.append(fields["table"]) if event == "table_collation_converting" else None
        ),
    )
    started(target).close()
    assert sorted(converting) == sorted(left)
    assert not_binary(target, names) == []


def test_a_start_of_some_streams_converts_theirs_and_every_view_still_reads(
    target: Target,
) -> None:
    """A start that syncs only stock converts only its tables (and the engine's); the views,
    which join them to tables still in the old collation, create and read all the same."""
    old_warehouse(target)
    mine = [*SYSTEM_TABLES, *ITEMS.tables]
    started(target, mine).close()
    assert not_binary(target, [t.name for t in mine]) == []
    assert not_binary(target, ["products"])
    assert views_read(target) == sorted(v.name for v in VIEWS)
