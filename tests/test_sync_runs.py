"""Load metadata on every row (`_loaded_at`, `_run_id`) and `sync_runs`, one row per stream tick."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from sitoo_sync.cli import main
from sitoo_sync.commit import load_window
from sitoo_sync.normalize.pos_z_reports import TABLES as POS_Z_REPORTS_NORMALIZED
from sitoo_sync.normalize.pos_z_reports import normalize_window
from sitoo_sync.normalize.tables import LOAD_METADATA, Table
from sitoo_sync.runs import INTERRUPTED, record_run
from sitoo_sync.simulator import SimConfig, Simulator
from sitoo_sync.streams import STREAMS
from sitoo_sync.streams.cash_registers import CASH_REGISTERS
from sitoo_sync.streams.pos_z_reports import POS_Z_REPORTS
from sitoo_sync.warehouse import open_warehouse
from sitoo_sync.warehouse.base import SYNC_RUNS, SYSTEM_TABLES, RunRow
from sitoo_sync.warehouse.duckdb import DuckDBWarehouse, q
from sitoo_sync.warehouse.sqla import SqlWarehouse
from tests.conftest import SyncFn
from tests.support import (
    PipeLines,
    run_once_process,
    settings_for,
    target_settings,
    use_simulator,
    vendor_example,
)
from tests.targets import ALL_TARGETS, Target, target_for


@pytest.fixture(params=ALL_TARGETS)
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    """Each target in turn (servers skip when CI did not provide them)."""
    with target_for(request.param, tmp_path) as t:
        yield t


def dicts(target: Target, table: Table) -> list[dict[str, Any]]:
    """Every row of `table` as a dict, load metadata included."""
    return tables_dicts(target, [table])[table.name]


def tables_dicts(target: Target, tables: Sequence[Table]) -> dict[str, list[dict[str, Any]]]:
    """`dicts` of each of `tables` by its name, read over one connection."""
    warehouse = open_warehouse(target.url, schema=target.schema)
    try:
        out = {}
        for table in tables:
            if isinstance(warehouse, DuckDBWarehouse):
                names = table.column_names
                sql = f"SELECT {', '.join(q(c) for c in names)} FROM {q(table.name)}"
                out[table.name] = [dict(zip(names, r, strict=True)) for r in warehouse.query(sql)]
            else:
                assert isinstance(warehouse, SqlWarehouse)
                out[table.name] = warehouse.read_table(table)
        return out
    finally:
        warehouse.close()


def runs(target: Target) -> list[RunRow]:
    """Every row of `sync_runs`, oldest first."""
    return sorted(
        (RunRow(**{k: v for k, v in r.items()}) for r in dicts(target, SYNC_RUNS)),
        key=lambda r: r.started_at,
    )


def last_runs(target: Target) -> dict[str, RunRow]:
    """Each stream's last run, as the target's `last_runs` reads it."""
    warehouse = open_warehouse(target.url, schema=target.schema)
    try:
        return {r.stream: r for r in warehouse.last_runs()}
    finally:
        warehouse.close()


def utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


@pytest.mark.slow
def test_every_row_carries_the_load_time_and_run_of_its_commit(
    target: Target, sim: Simulator, sync: SyncFn, tmp_path: Path
) -> None:
    """After a tick every row of every stream table has `_loaded_at` within its run's start and
    end and a `_run_id` naming that stream's run in sync_runs, on every target."""
    settings = target_settings(sim, target)
    assert sync(settings).ok
    by_stream = {r.stream: r for r in runs(target)}
    defaults = [s for s in STREAMS.values() if s.enabled_by_default]  # opt-in ones did not run
    assert set(by_stream) == {s.name for s in defaults}
    checked = 0
    rows = tables_dicts(target, [t for stream in defaults for t in stream.tables])
    for stream in defaults:
        run = by_stream[stream.name]
        assert run.status == "ok"
        for table in stream.tables:
            assert table.column_names[-2:] == tuple(c.name for c in LOAD_METADATA)
            for row in rows[table.name]:
                assert row["_run_id"] == run.run_id, table.name
                assert run.finished_at is not None
                loaded = utc(row["_loaded_at"])
                assert utc(run.started_at) <= loaded <= utc(run.finished_at), table.name
                checked += 1
    assert checked > 1000


def test_a_row_read_again_gets_a_new_load_time_and_run(
    sim: Simulator, sync: SyncFn, tmp_path: Path
) -> None:
    """A register listed again by the next tick is upserted with the new commit's `_loaded_at`
    and the new run's `_run_id`; `first_seen_at` (kept on update) stays as it was."""
    target = Target("duckdb", f"duckdb:///{tmp_path / 'w.duckdb'}")
    settings = settings_for(sim, tmp_path / "w.duckdb", streams=["cash_registers"])
    [table] = CASH_REGISTERS.tables
    assert sync(settings).ok
    before = {r["registerid"]: r for r in dicts(target, table)}
    assert sync(settings).ok
    after = {r["registerid"]: r for r in dicts(target, table)}
    first, second = runs(target)
    assert set(after) == set(before)
    assert before
    for registerid, row in after.items():
        old = before[registerid]
        assert (old["_run_id"], row["_run_id"]) == (first.run_id, second.run_id)
        assert row["_loaded_at"] > old["_loaded_at"]
        assert row["first_seen_at"] == old["first_seen_at"]


def test_an_ok_tick_is_one_finished_run_with_its_counts_and_cursors(
    sim: Simulator, sync: SyncFn, tmp_path: Path
) -> None:
    """A POS z-report tick leaves one ok run: its rows are the report's, its requests what the
    simulator served, its cursor before empty and after the stored cursor."""
    target = Target("duckdb", f"duckdb:///{tmp_path / 'w.duckdb'}")
    settings = settings_for(sim, tmp_path / "w.duckdb", streams=["pos_z_reports"])
    report = sync(settings)
    [run] = runs(target)
    [state] = DuckDBWarehouse(settings.target_url).states()
    assert run.stream == "pos_z_reports"
    assert run.status == "ok"
    assert run.error is None
    assert run.partitions == 1
    assert run.partitions_moved == 1
    assert run.rows_loaded == report.rows > 0
    served = sim.requests_to("/pos-z-reports") + sim.requests_to("/store-z-reports/config")
    served += sim.requests_to("/sites.json") + sim.requests_to("/settings.json")  # site zones
    assert run.requests == served
    assert run.cursor_before is None
    assert run.cursor_after == state.cursor
    assert run.finished_at is not None
    assert run.finished_at >= run.started_at
    assert (run.host, run.pid) == (socket.gethostname(), os.getpid())


def test_the_summary_counts_a_streams_requests_as_its_run_does(
    sim: Simulator, sync: SyncFn, tmp_path: Path
) -> None:
    """The tick's summary line of a stream partitioned by sites counts the same requests as
    its `sync_runs` row, the listings no partition's result counts included (it said 9
    where the run said 12 for orders)."""
    target = Target("duckdb", f"duckdb:///{tmp_path / 'w.duckdb'}")
    settings = settings_for(sim, tmp_path / "w.duckdb", streams=["orders", "warehouse_items"])
    report = sync(settings)
    by_run = {run.stream: run.requests or 0 for run in runs(target)}
    assert by_run["orders"] > sum(r.requests for r in report.results if r.stream == "orders")
    for line in report.summary():
        stream = line.split(" ", 1)[0]
        if stream in by_run:
            assert line.split(", ")[-1].startswith(f"{by_run[stream]} requests"), line
    assert {s: report.stream_requests(s) for s in by_run} == by_run


def test_a_failed_tick_is_a_failed_run_and_the_next_is_ok(
    sim: Simulator, sync: SyncFn, tmp_path: Path
) -> None:
    """When the POS z-report endpoint keeps failing, the run ends failed with the error and no
    rows; the next tick, the fault gone, is a new run that ends ok from the same cursor."""
    target = Target("duckdb", f"duckdb:///{tmp_path / 'w.duckdb'}")
    settings = settings_for(
        sim, tmp_path / "w.duckdb", streams=["pos_z_reports"], http_max_attempts=2
    )
    sim.faults.queue("503", times=10, path="pos-z-reports")
    assert not sync(settings).ok
    [failed] = runs(target)
    assert failed.status == "failed"
    assert failed.error is not None
    assert "gave up after 2 attempts" in failed.error
    assert (failed.rows_loaded, failed.cursor_before, failed.cursor_after) == (0, None, None)
    assert failed.finished_at is not None
    sim.faults.clear()
    assert sync(settings).ok
    first, second = runs(target)
    assert first == failed
    assert (second.status, second.error) == ("ok", None)
    assert second.rows_loaded is not None
    assert second.rows_loaded > 0
    assert last_runs(target)["pos_z_reports"] == second


def test_a_stream_error_outside_the_partitions_still_finishes_its_run(
    sim: Simulator, tmp_path: Path
) -> None:
    """An exception escaping a stream's tick (here: a warehouse error) completes the run as
    failed with that error before it propagates, rather than leaving it running."""
    settings = settings_for(sim, tmp_path / "w.duckdb")
    warehouse = DuckDBWarehouse(settings.target_url)
    warehouse.ensure_schema(SYSTEM_TABLES)
    with (
        pytest.raises(RuntimeError, match="disk full"),
        record_run(warehouse, _no_client(), CASH_REGISTERS, [], Counter()),
    ):
        raise RuntimeError("disk full")
    [run] = warehouse.last_runs()
    warehouse.close()
    assert (run.status, run.error) == ("failed", "disk full")


def _no_client() -> Any:
    """A client stand-in that counts no request (record_run only reads its counter)."""

    class NoClient:
        def __init__(self) -> None:
            self.partition_requests: dict[tuple[str, str | None], int] = {}

        def get_json(self, *args: Any, **kwargs: Any) -> Any:
            raise AssertionError("no request expected")

    return NoClient()


def test_status_shows_each_streams_last_run(
    sim: Simulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`status` lists each stream's last run (when, status, rows, duration) after the
    partitions, and `status --json` gives it on each of the stream's rows."""
    db = tmp_path / "w.duckdb"
    use_simulator(monkeypatch, sim, db)
    monkeypatch.setenv("SITOO_STREAMS", "pos_z_reports")
    assert main(["run", "--once"]) == 0
    capsys.readouterr()
    target = Target("duckdb", f"duckdb:///{db}")
    [run] = runs(target)
    assert main(["status"]) == 0
    out = capsys.readouterr().out
    runs_block = out.split("\n\n")[1].splitlines()
    assert runs_block[0].split()[:4] == ["stream", "last", "run", "run"]
    [line] = runs_block[1:]
    assert line.split()[:4] == [
        "pos_z_reports",
        f"{utc(run.started_at):%Y-%m-%d}",
        f"{utc(run.started_at):%H:%M:%S}Z",
        "ok",
    ]
    assert str(run.rows_loaded) in line.split()
    assert run.run_id in line.split()
    assert main(["status", "--json"]) == 0
    [state] = json.loads(capsys.readouterr().out)
    last = state["last_run"]
    assert last["run_id"] == run.run_id
    assert last["status"] == "ok"
    assert last["rows_loaded"] == run.rows_loaded
    assert last["rows_loaded"] > 0
    assert run.finished_at is not None
    assert last["seconds"] == (run.finished_at - run.started_at).total_seconds()
    assert datetime.fromisoformat(last["started_at"]) == run.started_at


def run_cli(sim: Simulator, db: Path) -> subprocess.Popen[str]:
    return run_once_process(
        sim,
        {"SITOO_TARGET_URL": f"duckdb:///{db}"},
        SITOO_STREAMS="pos_z_reports",
        SITOO_LOAD_BATCH_SECONDS="0",
    )


@pytest.mark.slow
def test_a_killed_run_shows_as_interrupted_and_the_next_run_completes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGKILL mid-backfill leaves the run's row "running" with a dead pid: status shows it
    interrupted at once, and the next run marks it so in the table and ends ok itself."""
    config = SimConfig(seed=9, days=60, registers_per_store=4, malformed_every=0)
    db = tmp_path / "w.duckdb"
    target = Target("duckdb", f"duckdb:///{db}")
    with Simulator.create(config) as sim:
        sim.faults.latency = 0.25
        proc = run_cli(sim, db)
        log = PipeLines(proc.stderr)
        deadline = time.monotonic() + 180
        while not log.events("batch_loaded"):
            assert proc.poll() is None, "the sync finished before it could be killed"
            assert time.monotonic() < deadline, "no window was committed"
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
        log.finish()

        [killed] = runs(target)
        assert (killed.status, killed.pid, killed.finished_at) == ("running", proc.pid, None)
        loaded = {r["_run_id"] for r in dicts(target, POS_Z_REPORTS.tables[0])}
        assert loaded == {killed.run_id}  # its committed windows say which run wrote them

        use_simulator(monkeypatch, sim, db)
        assert main(["status", "--json"]) == 0
        [state] = json.loads(capsys.readouterr().out)
        stored = state["cursor"]
        assert (state["last_run"]["run_id"], state["last_run"]["status"]) == (
            killed.run_id,
            INTERRUPTED,
        )

        sim.faults.latency = 0.0
        rerun = run_cli(sim, db)
        PipeLines(rerun.stderr)
        assert rerun.wait(timeout=240) == 0
        first, second = runs(target)
        assert first.run_id == killed.run_id
        assert first.status == INTERRUPTED
        assert first.finished_at is None
        assert first.error is not None
        assert "ended during the run" in first.error
        assert (second.status, second.pid) == ("ok", rerun.pid)
        assert second.cursor_before == stored is not None
        assert last_runs(target)["pos_z_reports"].run_id == second.run_id


def test_an_existing_warehouse_gains_the_load_metadata_columns(
    target: Target, tmp_path: Path
) -> None:
    """A table made before the load metadata existed gets `_loaded_at` and `_run_id` added by
    the next schema check (its old rows NULL there), and the next load stamps its rows."""
    [old] = [t for t in POS_Z_REPORTS_NORMALIZED if not t.is_child]
    warehouse = open_warehouse(target.url, schema=target.schema)
    try:
        warehouse.ensure_schema([*SYSTEM_TABLES, old])
        record = vendor_example()
        with warehouse.transaction():
            warehouse.insert(old, normalize_window([record]).tables[old.name])
        warehouse.ensure_schema([*SYSTEM_TABLES, *POS_Z_REPORTS.tables])
    finally:
        warehouse.close()
    [row] = dicts(target, POS_Z_REPORTS.tables[0])
    assert (row["_loaded_at"], row["_run_id"]) == (None, None)
    warehouse = open_warehouse(target.url, schema=target.schema)
    try:
        load_window(warehouse, POS_Z_REPORTS, "p", normalize_window([record]), "1", run_id="r1")
    finally:
        warehouse.close()
    [row] = dicts(target, POS_Z_REPORTS.tables[0])
    assert row["_run_id"] == "r1"
    assert row["_loaded_at"] is not None
