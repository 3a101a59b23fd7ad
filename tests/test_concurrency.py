"""Any SITOO_CONCURRENCY from 1 to 64 on every target, and ticks whose bookkeeping is cheap."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import duckdb
import pytest

from sitoo_sync.api.client import SitooClient
from sitoo_sync.cli import main
from sitoo_sync.commit import load_group
from sitoo_sync.errors import WarehouseError
from sitoo_sync.normalize.journal_entries import TABLES
from sitoo_sync.overlap import STALE_SECONDS
from sitoo_sync.settings import MAX_CONCURRENCY
from sitoo_sync.simulator import SimConfig, Simulator
from sitoo_sync.warehouse.base import PerThread
from sitoo_sync.warehouse.duckdb import DuckDBWarehouse
from tests.conftest import SyncFn
from tests.support import PipeLines, assert_each_entry_once, settings_for, target_settings
from tests.targets import ALL_TARGETS, SERVERS, target_for

ENTRIES = next(t for t in TABLES if t.name == "journal_entries")
#: On a server, a tick at concurrency 64 opens some 80 connections (PostgreSQL allows 100):
#: `make test` runs it alone, after the tests that run in parallel.
ALONE_ON_SERVERS = [
    pytest.param(t, marks=pytest.mark.alone) if t in SERVERS else t for t in ALL_TARGETS
]


@pytest.mark.slow
@pytest.mark.parametrize("target_name", ALONE_ON_SERVERS)
def test_concurrency_64_loads_every_entry_exactly_once(
    target_name: str, tmp_path: Path, sync: SyncFn
) -> None:
    """At the highest concurrency, with more registers than threads, no pool runs dry or
    deadlocks: every entry is loaded once, and a tick with nothing new adds nothing."""
    with (
        Simulator.create(SimConfig(seed=40, days=1, registers_per_store=14)) as sim,
        target_for(target_name, tmp_path) as target,
    ):
        sim.faults.latency = 0.02
        assert len(sim.world.registers) > MAX_CONCURRENCY
        settings = target_settings(
            sim, target, streams=["journal_entries"], concurrency=MAX_CONCURRENCY
        )
        for _tick in range(2):
            report = sync(settings)
            assert report.ok, [r.error for r in report.results if r.error]
            assert_each_entry_once(sim, target.rows(ENTRIES))
        assert sim.max_in_flight <= MAX_CONCURRENCY


@pytest.mark.parametrize("target_name", sorted(SERVERS))
def test_no_partition_thread_opens_a_connection_of_the_server(
    target_name: str, tmp_path: Path, sync: SyncFn, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A backfill and a tick of re-reads over more registers than request slots open the
    server's connections only on the tick's own thread and its writing thread (the rounds of
    re-read checks and the partition locks have one each): the tick's three threads a
    request slot (`tick_threads`) never ask the server for one connection each."""
    opened: list[str] = []
    get = PerThread.get

    def counted(self: PerThread[Any]) -> Any:
        mine = getattr(self._local, "conn", None)
        if mine is None or mine[0] != self._generation:
            opened.append(threading.current_thread().name)
        return get(self)

    monkeypatch.setattr(PerThread, "get", counted)
    with (
        Simulator.create(SimConfig(seed=42, days=2, registers_per_store=4)) as sim,
        target_for(target_name, tmp_path) as target,
    ):
        sim.faults.latency = 0.01
        settings = target_settings(sim, target, streams=["journal_entries"], concurrency=4)
        for _tick in range(2):  # the second re-reads each register's overlap
            assert sync(settings).ok
        assert_each_entry_once(sim, target.rows(ENTRIES))
    assert opened
    assert {name.split("_")[0] for name in opened} <= {"MainThread", "sitoo-turn"}, opened


def test_a_concurrency_outside_its_range_is_a_one_line_config_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """SITOO_CONCURRENCY=0 or 65 exits 2 with one line that names the variable."""
    for value in ("0", str(MAX_CONCURRENCY + 1)):
        monkeypatch.setenv("SITOO_CONCURRENCY", value)
        assert main(["status"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1
        assert "SITOO_CONCURRENCY" in err
        assert "Traceback" not in err


def idle_tick_settings(sim: Simulator, tmp_path: Path, **extra: Any) -> Any:
    return settings_for(sim, tmp_path / "w.duckdb", streams=["journal_entries"], **extra)


def test_a_tick_with_nothing_new_loads_nothing_and_writes_its_outcomes_together(
    tmp_path: Path, sync: SyncFn, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Re-read entries already stored are not loaded again; every register's "ok" is
    stamped, all in one write for the stream instead of one per register."""
    with Simulator.create(SimConfig(seed=41, days=2, registers_per_store=3)) as sim:
        settings = idle_tick_settings(sim, tmp_path)
        assert sync(settings).ok
        before = _states(settings)
        loads: list[str] = []
        single: list[str] = []
        batches: list[list[str]] = []
        monkeypatch.setattr(
            "sitoo_sync.commit.load_group",
            lambda _w, _s, group, **_kw: loads.extend(p.partition for p in group),
        )
        real_outcome = DuckDBWarehouse.record_outcome
        real_outcomes = DuckDBWarehouse.record_outcomes

        def one(self: DuckDBWarehouse, stream: str, partition: str, *a: Any) -> None:
            single.append(partition)
            real_outcome(self, stream, partition, *a)

        def many(self: DuckDBWarehouse, stream: str, outcomes: Any) -> None:
            batches.append([p for p, _s, _d in outcomes])
            real_outcomes(self, stream, outcomes)

        monkeypatch.setattr(DuckDBWarehouse, "record_outcome", one)
        monkeypatch.setattr(DuckDBWarehouse, "record_outcomes", many)
        asked = sim.requests_to("/journal-entries")
        report = sync(settings)
        assert report.ok
        assert sim.requests_to("/journal-entries") - asked == len(sim.world.registers)
        assert sum(r.windows for r in report.results) == len(sim.world.registers)
        assert loads == []
        assert single == []
        assert [sorted(b) for b in batches] == [sorted(r.registerid for r in sim.world.registers)]
        after = _states(settings)
        for register, (cursor, rows, success) in before.items():
            assert after[register][:2] == (cursor, rows)
            assert after[register][2] > success


def _states(settings: Any) -> dict[str, tuple[Any, ...]]:
    warehouse = DuckDBWarehouse(settings.target_url)
    try:
        return {
            s.partition: (s.cursor, s.rows_loaded, s.last_success_at)
            for s in warehouse.states()
            if s.stream == "journal_entries"
        }
    finally:
        warehouse.close()


def test_new_entries_beside_stored_re_reads_load_exactly_once(tmp_path: Path, sync: SyncFn) -> None:
    """Entries added in the very second of a register's cursor come back with the stored
    ones of that second: the new ones load, the stored ones are not duplicated."""
    with Simulator.create(SimConfig(seed=42, days=2, registers_per_store=2)) as sim:
        settings = idle_tick_settings(sim, tmp_path)
        assert sync(settings).ok
        register = sim.world.registers[1].registerid
        newest = max(
            e["dateadded"] for e in sim.world.journal.all_entries() if e["registerid"] == register
        )
        sim.world.journal.offline_burst(register, 30, newest, hours_old=2)
        assert sync(settings).ok
        assert_each_entry_once(sim, _rows(settings))


def test_a_tick_reads_the_keys_its_re_reads_meet_once_for_every_register(
    tmp_path: Path, sync: SyncFn, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On DuckDB a tick with nothing new reads the stored keys of the overlap in one query
    for all registers instead of one per register, and still loads nothing; only a register
    whose cursor is a day behind the newest (overlap.STALE_SECONDS) asks for its own."""
    with Simulator.create(SimConfig(seed=43, days=2, registers_per_store=3)) as sim:
        settings = idle_tick_settings(sim, tmp_path)
        assert sync(settings).ok
        # Which registers fall behind depends on the hour the simulator's world ends at.
        cursors = [int(cursor) for cursor, _rows, _at in _states(settings).values() if cursor]
        behind = sum(1 for c in cursors if c < max(cursors) - STALE_SECONDS)
        assert len(cursors) - behind >= 2  # registers that share the one read
        calls: Counter[str] = Counter()
        for name in ("keys_since", "stored_keys"):
            real = getattr(DuckDBWarehouse, name)

            def counted(self: DuckDBWarehouse, *a: Any, _real: Any = real, _n: str = name) -> Any:
                calls[_n] += 1
                return _real(self, *a)

            monkeypatch.setattr(DuckDBWarehouse, name, counted)
        loads: list[str] = []
        monkeypatch.setattr(
            "sitoo_sync.commit.load_group",
            lambda _w, _s, group, **_kw: loads.extend(p.partition for p in group),
        )
        assert sync(settings).ok
        assert calls["keys_since"] == 1
        assert calls["stored_keys"] == behind
        assert loads == []


def test_the_keys_read_since_a_time_are_the_stored_ones_up_to_a_limit(
    tmp_path: Path, sync: SyncFn
) -> None:
    """keys_since returns exactly the keys stored at or after the time, and None (ask per
    register) when there are more than the limit."""
    with Simulator.create(SimConfig(seed=44, days=1, registers_per_store=2)) as sim:
        settings = idle_tick_settings(sim, tmp_path)
        assert sync(settings).ok
        warehouse = DuckDBWarehouse(settings.target_url)
        try:
            rows = warehouse.query("SELECT registerid, id, dateadded FROM journal_entries")
            middle = sorted(r[2] for r in rows)[len(rows) // 2]
            expected = {(r[0], r[1]) for r in rows if r[2] >= middle}
            assert warehouse.keys_since(ENTRIES, "dateadded", middle, len(rows)) == expected
            assert warehouse.keys_since(ENTRIES, "dateadded", middle, len(expected) - 1) is None
        finally:
            warehouse.close()


def _rows(settings: Any) -> list[tuple[Any, ...]]:
    warehouse = DuckDBWarehouse(settings.target_url)
    try:
        return warehouse.query("SELECT registerid, id FROM journal_entries")
    finally:
        warehouse.close()


def test_the_register_listing_overlaps_the_known_registers_requests(
    tmp_path: Path, sync: SyncFn, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Known registers' journals are asked for while the sites are still being listed."""
    spans: list[tuple[str, float, float]] = []
    guard = threading.Lock()
    real_get = SitooClient.get_json

    def timed(self: SitooClient, api: Any, path: str, *args: Any, **kwargs: Any) -> Any:
        started = time.monotonic()
        try:
            return real_get(self, api, path, *args, **kwargs)
        finally:
            with guard:
                spans.append((path, started, time.monotonic()))

    with Simulator.create(SimConfig(seed=43, days=1, registers_per_store=3)) as sim:
        settings = idle_tick_settings(sim, tmp_path, concurrency=8)
        assert sync(settings).ok  # the registers are known from now on
        # The listing is slow (2 s a request), so a loaded host's start-up cannot hide
        # whether the known registers wait for it: they must not.
        sim.faults.queue("slow", times=100, path="/cashregisters", seconds=2.0)
        monkeypatch.setattr(SitooClient, "get_json", timed)
        assert sync(settings).ok
    listing_done = max(end for path, _s, end in spans if path.endswith("cashregisters.json"))
    journal_first = min(start for path, start, _e in spans if path == "/journal-entries")
    assert journal_first < listing_done


def test_registers_already_started_finish_when_the_listing_fails(
    tmp_path: Path, sync: SyncFn
) -> None:
    """A listing that fails is reported, and the known registers are synced all the same."""
    with Simulator.create(SimConfig(seed=44, days=1, registers_per_store=2)) as sim:
        settings = idle_tick_settings(sim, tmp_path)
        assert sync(settings).ok
        sim.faults.queue("500", times=1000, path="/cashregisters")
        report = sync(settings)
    failed = [r for r in report.results if r.status == "failed"]
    assert [(r.partition, "cashregisters" in (r.error or "")) for r in failed] == [("*", True)]
    synced = {r.partition for r in report.results if r.status == "ok"}
    assert synced == {r.registerid for r in sim.world.registers}


def test_concurrent_registers_commit_in_groups_each_with_its_cursor(
    tmp_path: Path, sync: SyncFn, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Batches of registers that arrive together commit in one transaction, and each
    register's cursor is the newest entry it loaded."""
    sizes: list[int] = []
    real_group = load_group

    def counted(warehouse: Any, stream: Any, loads: Any, **kwargs: Any) -> bool:
        sizes.append(len(loads))
        time.sleep(0.02)  # a slow commit: the registers arriving meanwhile form a group
        return real_group(warehouse, stream, loads, **kwargs)

    monkeypatch.setattr("sitoo_sync.commit.load_group", counted)
    with Simulator.create(SimConfig(seed=45, days=2, registers_per_store=4)) as sim:
        settings = idle_tick_settings(sim, tmp_path, concurrency=8)
        assert sync(settings).ok
        entries = sim.world.journal.all_entries()
    assert max(sizes) > 1
    assert sum(sizes) == len(sim.world.registers)
    newest: dict[str, int] = {}
    for e in entries:
        newest[e["registerid"]] = max(newest.get(e["registerid"], 0), e["dateadded"])
    cursors = {p: int(c or 0) for p, (c, _r, _s) in _states(settings).items()}
    assert cursors == newest
    assert_each_entry_once(sim, _rows(settings))


def test_a_failed_group_commit_fails_every_register_in_it(
    tmp_path: Path, sync: SyncFn, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When a group's transaction fails, no register of it keeps rows or a cursor, and the
    tick ends with the warehouse error."""

    def broken(warehouse: Any, stream: Any, loads: Any, **kwargs: Any) -> None:
        raise duckdb.IOException("disk full")

    monkeypatch.setattr("sitoo_sync.commit.load_group", broken)
    with Simulator.create(SimConfig(seed=46, days=1, registers_per_store=2)) as sim:
        settings = idle_tick_settings(sim, tmp_path, concurrency=4)
        with pytest.raises(WarehouseError, match="disk full"):
            sync(settings)
    assert _rows(settings) == []
    assert all(cursor is None for cursor, _r, _s in _states(settings).values())


@pytest.mark.slow
@pytest.mark.parametrize("target_name", ["duckdb", "postgres"])
def test_sigkill_during_a_concurrent_journal_backfill_loses_and_duplicates_nothing(
    target_name: str, tmp_path: Path
) -> None:
    """Kill -9 while registers load in groups; the rerun holds every entry exactly once."""
    with (
        Simulator.create(SimConfig(seed=47, days=20, registers_per_store=6)) as sim,
        target_for(target_name, tmp_path) as target,
    ):
        sim.faults.latency = 0.15
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("SITOO_")},
            **sim.settings_env(),
            **target.env(),
            "SITOO_STREAMS": "journal_entries",
            "SITOO_CONCURRENCY": "8",
            "SITOO_LOG_FORMAT": "json",
        }
        cmd = [sys.executable, "-m", "sitoo_sync", "run", "--once"]
        quiet = subprocess.DEVNULL
        proc = subprocess.Popen(cmd, env=env, stdout=quiet, stderr=subprocess.PIPE, text=True)
        logs = PipeLines(proc.stderr)
        deadline = time.monotonic() + 60
        # Killed once a group has committed (its batches are logged after the commit): a
        # fixed pause after the first requests came before any commit on a loaded machine.
        while not logs.events("batch_loaded"):
            assert proc.poll() is None, "the sync finished before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
        loaded = Counter(r[:2] for r in target.rows(ENTRIES))
        expected = {(e["registerid"], e["id"]) for e in sim.world.journal.all_entries()}
        assert 0 < len(loaded) < len(expected), "the kill was not mid-run"
        sim.faults.latency = 0.0
        rerun = subprocess.Popen(cmd, env=env, stdout=quiet, stderr=quiet)
        assert rerun.wait(timeout=120) == 0
        assert_each_entry_once(sim, target.rows(ENTRIES))
