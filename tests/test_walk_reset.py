"""`sitoo-sync reset` walked through as a new user does it, before any warehouse exists."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sitoo_sync.cli import main
from sitoo_sync.simulator import Simulator
from sitoo_sync.warehouse import open_warehouse
from tests.support import query, settings_for, use_simulator
from tests.targets import target_for


def test_reset_since_before_the_first_run_sets_where_a_new_duckdb_file_starts(
    sim: Simulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`reset pos_z_reports --since DAY` on a DuckDB file no run has made yet sets where
    the first tick's backfill starts, as the README says, instead of refusing."""
    db = tmp_path / "w.duckdb"
    use_simulator(monkeypatch, sim, db)
    monkeypatch.setenv("SITOO_STREAMS", "pos_z_reports")
    since = (datetime.fromtimestamp(sim.world.config.now, UTC) - timedelta(days=2)).date()
    assert main(["reset", "pos_z_reports", "--since", since.isoformat()]) == 0
    out = capsys.readouterr().out
    assert f"from {since.isoformat()} (UTC)" in out
    assert f"a new warehouse at {db}" in out
    assert main(["run", "--once"]) == 0
    settings = settings_for(sim, db)
    [(oldest, count)] = query(settings, "SELECT min(dateadded), count(*) FROM pos_z_reports")
    start = datetime.combine(since, datetime.min.time(), UTC)
    assert start - timedelta(seconds=settings.overlap_seconds) <= oldest
    assert 0 < count < len(sim.world.all_reports())


@pytest.mark.parametrize("stream", ["journal_entries", "cash_registers"])
def test_reset_since_without_a_warehouse_still_refuses_what_only_a_tick_can_start(
    stream: str,
    sim: Simulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A stream whose partitions only a tick lists (registers), or that has no cursor,
    gets no new file from `reset --since`: one line, exit 1, nothing left behind."""
    use_simulator(monkeypatch, sim, tmp_path / "w.duckdb")
    assert main(["reset", stream, "--since", "2026-01-01"]) == 1
    assert "no warehouse at" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["postgres", "mysql"])
def test_reset_of_a_server_schema_nothing_was_synced_into_is_refused_not_made(
    name: str,
    sim: Simulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """On a server, `reset orders` of a schema nothing was synced into (a mistyped
    SITOO_TARGET_SCHEMA) says there is nothing to reset and exits 1, as for a missing
    DuckDB file, instead of making the schema's tables and reporting partitions reset;
    `reset pos_z_reports --since DAY` still makes them to hold the backfill's start, and
    says so."""
    use_simulator(monkeypatch, sim, tmp_path / "w.duckdb")
    with target_for(name, tmp_path) as target:
        for key, value in target.env().items():
            monkeypatch.setenv(key, value)
        assert main(["reset", "orders"]) == 1
        err = capsys.readouterr().err
        assert f"nothing to reset: no sitoo-sync tables in schema {target.schema} of " in err
        warehouse = open_warehouse(target.url, schema=target.schema)
        try:
            assert warehouse.table_names() == set()
        finally:
            warehouse.close()
        assert main(["reset", "pos_z_reports", "--since", "2026-01-01"]) == 0
        out = capsys.readouterr().out
        assert f"(new sitoo-sync tables in schema {target.schema} of " in out
        assert main(["reset", "orders"]) == 0  # the warehouse exists now
