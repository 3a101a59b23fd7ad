"""No stream starves another: z-report ticks run beside a long journal backfill, and a BI
reader gets into the DuckDB file while that backfill runs."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import duckdb
import pytest

from sitoo_sync.normalize.journal_entries import TABLES
from sitoo_sync.normalize.tables import Table
from sitoo_sync.simulator import SimConfig, Simulator
from sitoo_sync.warehouse import open_warehouse
from sitoo_sync.warehouse.base import Warehouse
from tests.support import PipeLines, assert_each_entry_once
from tests.targets import target_for
from tests.test_service import (
    env_for,
    listening_port,
    metric,
    scrape,
    start_service,
    wait_for,
)

ENTRIES = next(t for t in TABLES if t.name == "journal_entries")


def _ticks(port: int, stream: str) -> float:
    """Finished ticks of `stream` (any status), 0 while /metrics does not answer."""
    try:
        text = scrape(port, "/metrics")[1]
    except OSError:
        return 0.0
    return sum(
        metric(text, "sitoo_ticks_total", stream=stream, status=status)
        for status in ("ok", "failed", "disabled")
    )


@pytest.mark.slow
@pytest.mark.timeout(600)  # its waits are generous, for a loaded machine
@pytest.mark.parametrize("target_name", ["duckdb", "postgres", "mysql"])
def test_z_report_ticks_complete_while_a_journal_backfill_is_in_flight(
    target_name: str, tmp_path: Path
) -> None:
    """With every journal page slow, two pos_z_reports ticks finish before the journal's
    first tick does (on a server, each tick loads on connections of its own, at the same
    time); SIGTERM then waits for the journal tick and exits 0."""
    with (
        Simulator.create(SimConfig(seed=63, days=3, registers_per_store=4)) as sim,
        target_for(target_name, tmp_path) as target,
    ):
        # 21 registers one after another at 3 s a page: the journal tick takes a minute.
        sim.faults.queue("slow", times=10_000, path="/journal-entries", seconds=3.0)
        env = env_for(
            sim,
            target,
            SITOO_STREAMS="journal_entries,pos_z_reports",
            SITOO_SCHEDULES=json.dumps({"pos_z_reports": "2s", "journal_entries": "1h"}),
            SITOO_SCHEDULE_JITTER_SECONDS="0",
            SITOO_CONCURRENCY="1",
            SITOO_METRICS_PORT="0",
        )
        proc, log = start_service(env)
        try:
            port = listening_port(lambda: log.events("metrics_listening"), proc)
            wait_for(lambda: _ticks(port, "pos_z_reports") >= 2, 300, "two pos_z_reports ticks")
            assert _ticks(port, "journal_entries") == 0  # its first tick is still running
            assert log.events("partition_synced")  # ... and it has been loading meanwhile
            journal_pages = sim.requests_to("/journal-entries")
            assert 0 < journal_pages < len(sim.world.registers)
            sim.faults.clear()
            proc.send_signal(signal.SIGTERM)  # while a journal page is held
            sim.faults.release()  # ... which need not take its 3 s for the tick to end
            assert proc.wait(timeout=120) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
        log.finish()
    events = [e["event"] for e in (json.loads(line) for line in log.lines)]
    assert "service_stopped" in events
    assert "stop_timeout" not in events


@pytest.mark.slow
@pytest.mark.timeout(600)  # its waits are generous, for a loaded machine
def test_a_reader_gets_into_the_duckdb_file_within_30_s_of_a_long_backfill(
    tmp_path: Path,
) -> None:
    """While a backfill that holds the file runs, a read-only open from this process (not
    the writer's) succeeds within 30 s, before the backfill ends; every entry loads once."""
    with (
        Simulator.create(SimConfig(seed=64, days=3, registers_per_store=4)) as sim,
        target_for("duckdb", tmp_path) as target,
    ):
        # 21 registers, two at a time, 8 s a page: the backfill takes 80 s or more.
        sim.faults.queue("slow", times=10_000, path="/journal-entries", seconds=8.0)
        env = env_for(sim, target, SITOO_STREAMS="journal_entries", SITOO_CONCURRENCY="2")
        proc = subprocess.Popen(
            [sys.executable, "-m", "sitoo_sync", "run", "--once"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        log = PipeLines(proc.stderr)
        path = target.url.removeprefix("duckdb:///")
        # The first two pages need not take their 8 s: the first batch then loads at once,
        # and the pages after them, still 8 s each, keep the backfill long.
        wait_for(lambda: sim.requests_to("/journal-entries") >= 2, 300, "the first pages")
        sim.faults.release()

        def read_only_open() -> bool:
            try:
                duckdb.connect(path, read_only=True).close()
            except duckdb.IOException:  # the writer holds it
                return False
            return True

        try:
            wait_for(lambda: bool(log.events("batch_loaded")), 300, "the backfill to load")
            wait_for(lambda: not read_only_open(), 60, "the writer to hold the file")
            asked = time.monotonic()
            wait_for(read_only_open, 120, "a read-only open", every=0.05)
            waited = time.monotonic() - asked
            assert proc.poll() is None, "the backfill ended before the reader got in"
            assert waited <= 30, f"the reader waited {waited:.1f} s"
            sim.faults.clear()
            sim.faults.release()
            assert proc.wait(timeout=300) == 0, log.lines
        finally:
            if proc.poll() is None:
                proc.kill()
        log.finish()
        assert log.events("warehouse_released")
        warehouse = open_warehouse(target.url)
        try:
            rows = warehouse.query("SELECT registerid, id FROM journal_entries")
        finally:
            warehouse.close()
    assert_each_entry_once(sim, rows)


def test_two_warehouses_of_one_process_load_side_by_side_and_release_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two ticks' warehouses on one file (one process) create their tables at the same
    time without a conflict, and a warehouse held past its budget lets go after a commit."""
    from sitoo_sync.warehouse import duckdb as duckdb_module
    from sitoo_sync.warehouse.base import SYSTEM_TABLES

    monkeypatch.setattr(duckdb_module, "HOLD_SECONDS", 0.0)
    monkeypatch.setattr(duckdb_module, "GAP_SECONDS", 0.0)
    url = f"duckdb:///{tmp_path / 'w.duckdb'}"
    warehouses = [open_warehouse(url) for _ in range(2)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def create(warehouse: Warehouse, tables: list[Table]) -> None:
        try:
            barrier.wait(timeout=30)
            warehouse.ensure_schema([*SYSTEM_TABLES, *tables])
            with warehouse.transaction():
                warehouse.set_cursor(str(id(warehouse)), "p", "1", rows=1)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [
        threading.Thread(target=create, args=(warehouses[0], list(TABLES))),
        threading.Thread(target=create, args=(warehouses[1], [])),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    # Opening with another configuration fails while this process has the file open.
    reader = duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True)
    try:
        [(states,)] = reader.execute("SELECT count(*) FROM sync_state").fetchall()
    finally:
        reader.close()
    assert states == 2
