"""Key text every target can hold: U+0000 in a key (PostgreSQL's text cannot store it) and
a value longer than the VARCHAR(255) of the key-like columns, on every target."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from sitoo_sync.commit import load_window
from sitoo_sync.normalize import pos_z_reports, store_z_reports
from sitoo_sync.normalize.columns import rows_to_arrow
from sitoo_sync.normalize.journal_entries import JOURNAL_ENTRIES
from sitoo_sync.normalize.tables import KEY_TEXT_LENGTH, Table, text, timestamp
from sitoo_sync.streams.pos_z_reports import POS_Z_REPORTS
from sitoo_sync.streams.store_z_reports import STORE_Z_REPORTS
from sitoo_sync.warehouse import open_warehouse
from sitoo_sync.warehouse.base import SYSTEM_TABLES
from tests.support import FIXTURES, vendor_example
from tests.targets import ALL_TARGETS, Target, target_for

NUL_KEY = "reg\x00cut"
AT = datetime(2026, 1, 2, tzinfo=UTC)


@pytest.fixture(params=ALL_TARGETS)
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    """Each target in turn (servers skip when CI did not provide them)."""
    with target_for(request.param, tmp_path) as t:
        yield t


def store_report() -> dict[str, Any]:
    """The vendor's example store z-report, parsed as the client parses it."""
    text = (FIXTURES / "store_z_reports_vendor_example.json").read_text()
    records: list[dict[str, Any]] = json.loads(text, parse_float=Decimal)
    return records[0]


def stored_as(target: Target, value: str) -> str:
    """`value` as `target` keeps it: PostgreSQL's text holds U+FFFD for U+0000."""
    return value.replace("\x00", "\ufffd") if target.name == "postgres" else value


def test_a_key_holding_nul_loads_and_loads_again_in_place(target: Target) -> None:
    """A POS z-report whose register id holds U+0000 loads, and the same report loaded
    again is upserted in place: one report, its children once, on every target."""
    record = {**vendor_example(), "registerid": NUL_KEY}
    warehouse = open_warehouse(target.url, schema=target.schema)
    try:
        warehouse.ensure_schema([*SYSTEM_TABLES, *POS_Z_REPORTS.tables])
        load_window(warehouse, POS_Z_REPORTS, "p", pos_z_reports.normalize_window([record]), "1")
        first = warehouse.table_counts(POS_Z_REPORTS.tables)
        for cursor in ("2", "3"):
            window = pos_z_reports.normalize_window([record])
            load_window(warehouse, POS_Z_REPORTS, "p", window, cursor)
        again = warehouse.table_counts(POS_Z_REPORTS.tables)
        table = warehouse.qualified("pos_z_reports")
        keys = warehouse.query(f"SELECT registerid FROM {table}")
    finally:
        warehouse.close()
    assert first["pos_z_reports"] == 1
    assert again == first
    assert keys == [(stored_as(target, NUL_KEY),)]


def test_stored_keys_holding_nul_are_answered_as_asked(target: Target) -> None:
    """existing_keys and stored_keys (a partition's look-up before it normalizes) find a
    stored key holding U+0000 and answer it as the caller spelled it, beside plain keys."""
    warehouse = open_warehouse(target.url, schema=target.schema)
    try:
        warehouse.ensure_schema([JOURNAL_ENTRIES])
        stored = rows_to_arrow(
            JOURNAL_ENTRIES,
            [(r, 1, "login", None, AT, None, None, None, None) for r in (NUL_KEY, "plain")],
        )
        with warehouse.transaction():
            warehouse.insert(JOURNAL_ENTRIES, stored)
        asked = pa.table(
            {
                "registerid": pa.array([NUL_KEY, "plain", NUL_KEY], pa.string()),
                "id": pa.array([1, 1, 2], pa.int64()),
            }
        )
        existing = warehouse.existing_keys(JOURNAL_ENTRIES, asked)
        found = warehouse.stored_keys(JOURNAL_ENTRIES, asked)
    finally:
        warehouse.close()
    rows = zip(*(c.to_pylist() for c in existing.columns), strict=True)
    assert sorted(rows) == [("plain", 1), (NUL_KEY, 1)]
    assert found == {("plain", 1), (NUL_KEY, 1)}


def test_a_store_day_holding_nul_is_replaced_by_its_new_report(target: Target) -> None:
    """A store z-report whose store id holds U+0000, re-aggregated under a new id, replaces
    the old report of its store and day (the replace group is matched as stored)."""
    old = {**store_report(), "store_id": "s\x001"}
    new = {**old, "store_zreport_id": "a-new-id"}
    warehouse = open_warehouse(target.url, schema=target.schema)
    try:
        warehouse.ensure_schema([*SYSTEM_TABLES, *STORE_Z_REPORTS.tables])
        for cursor, record in (("1", old), ("2", new)):
            window = store_z_reports.normalize_window([record])
            assert window.rejects == []
            load_window(warehouse, STORE_Z_REPORTS, "", window, cursor)
        table = warehouse.qualified("store_z_reports")
        rows = warehouse.query(f"SELECT store_zreport_id, store_id FROM {table}")
    finally:
        warehouse.close()
    assert rows == [("a-new-id", stored_as(target, "s\x001"))]


def test_a_listed_key_holding_nul_is_not_marked_missing(target: Target) -> None:
    """A listing that shows a stored row whose key holds U+0000 leaves it unmarked, and
    marks the row it does not show."""
    listed = Table(
        "listed",
        (text("k", nullable=False), timestamp("missing_since")),
        key=("k",),
    )
    warehouse = open_warehouse(target.url, schema=target.schema)
    try:
        warehouse.ensure_schema([listed])
        with warehouse.transaction():
            warehouse.upsert(listed, rows_to_arrow(listed, [(NUL_KEY, None), ("gone", None)]))
        with warehouse.transaction():
            marked = warehouse.mark_missing(listed, {}, [(NUL_KEY,)], AT)
        rows = {r[0]: r[1] is not None for r in target.rows(listed)}
    finally:
        warehouse.close()
    assert marked == 1
    assert rows == {stored_as(target, NUL_KEY): False, "gone": True}


def test_a_store_id_longer_than_its_column_is_a_reject(target: Target) -> None:
    """A store z-report whose store id is longer than the VARCHAR(255) it is stored in (a
    column of its replace group) is rejected with the reason, and its window loads the
    rest, on every target; one of the limit's length loads."""
    long_id = "s" * (KEY_TEXT_LENGTH + 1)
    too_long = {**store_report(), "store_id": long_id}
    fits = {**too_long, "store_zreport_id": "fits", "store_id": long_id[1:]}
    window = store_z_reports.normalize_window([too_long, fits])
    [reject] = window.rejects
    assert reject.reason == (
        f"store_z_reports.store_id: longer than {KEY_TEXT_LENGTH} characters "
        f"({KEY_TEXT_LENGTH + 1})"
    )
    warehouse = open_warehouse(target.url, schema=target.schema)
    try:
        warehouse.ensure_schema([*SYSTEM_TABLES, *STORE_Z_REPORTS.tables])
        load_window(warehouse, STORE_Z_REPORTS, "", window, "1")
        table = warehouse.qualified("store_z_reports")
        rows = warehouse.query(f"SELECT store_zreport_id FROM {table}")
        rejects = warehouse.query(f"SELECT reason FROM {warehouse.qualified('rejects')}")
    finally:
        warehouse.close()
    assert rows == [("fits",)]
    assert rejects == [(reject.reason,)]
