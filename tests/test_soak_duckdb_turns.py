"""Found in a soak: a DuckDB file is let go by the process, not by one of its warehouses."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from sitoo_sync.warehouse import open_warehouse
from sitoo_sync.warehouse.base import SYNC_STATE, SYSTEM_TABLES


def test_a_long_tick_lets_go_of_the_file_while_another_streams_warehouse_is_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When one stream's tick lets go of the file, the other streams' warehouses of the
    process (the service ticks them side by side) close theirs too, so a reader gets in."""
    from sitoo_sync.warehouse import duckdb as duckdb_module

    monkeypatch.setattr(duckdb_module, "HOLD_SECONDS", 0.0)
    monkeypatch.setattr(duckdb_module, "GAP_SECONDS", 0.0)
    path = tmp_path / "w.duckdb"
    backfill, other = open_warehouse(f"duckdb:///{path}"), open_warehouse(f"duckdb:///{path}")
    try:
        other.ensure_schema(list(SYSTEM_TABLES))  # another stream's tick: its connection open
        assert other.table_names() >= {SYNC_STATE.name}
        with backfill.transaction():  # a commit past the hold: the file is let go after it
            backfill.set_cursor("journal_entries", "r1", "1", rows=1)
        reader = duckdb.connect(str(path), read_only=True)  # fails while any is open
        try:
            [(states,)] = reader.execute("SELECT count(*) FROM sync_state").fetchall()
        finally:
            reader.close()
        assert states == 1
        with other.transaction():  # and both open it again on their next use
            other.set_cursor("pos_z_reports", "1500", "2", rows=1)
        assert backfill.get_cursor("pos_z_reports", "1500") == "2"
    finally:
        backfill.close()
        other.close()


def test_an_in_memory_database_is_never_let_go(monkeypatch: pytest.MonkeyPatch) -> None:
    """A `duckdb:///:memory:` tick held past HOLD_SECONDS keeps its tables: closing an
    in-memory database would lose it, and no other process could read it anyway."""
    from sitoo_sync.warehouse import duckdb as duckdb_module

    monkeypatch.setattr(duckdb_module, "HOLD_SECONDS", 0.0)
    monkeypatch.setattr(duckdb_module, "GAP_SECONDS", 0.0)
    warehouse = open_warehouse("duckdb:///:memory:")
    try:
        warehouse.ensure_schema(list(SYSTEM_TABLES))
        with warehouse.transaction():
            warehouse.set_cursor("pos_z_reports", "1500", "1", rows=1)
        assert warehouse.get_cursor("pos_z_reports", "1500") == "1"
    finally:
        warehouse.close()
