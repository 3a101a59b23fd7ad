"""`sitoo-sync reset` walked through as a new user does it, before any warehouse exists."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sitoo_sync.cli import main
from sitoo_sync.simulator import Simulator
from tests.support import query, settings_for, use_simulator


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
