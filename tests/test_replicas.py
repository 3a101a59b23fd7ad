"""Replicas on one server target split a stream's partitions, and losing one loses nothing."""

from __future__ import annotations

import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from sitoo_sync.locks import shares_partitions
from sitoo_sync.normalize.journal_entries import TABLES
from sitoo_sync.settings import Settings
from sitoo_sync.simulator import SimConfig, Simulator
from sitoo_sync.sync import RunReport
from sitoo_sync.warehouse import open_warehouse
from sitoo_sync.warehouse.base import SYSTEM_TABLES, Claim, Warehouse
from tests.conftest import SyncFn
from tests.support import (
    PipeLines,
    assert_each_entry_once,
    partition_locks,
    settings_for,
    take_lock,
)
from tests.targets import Target, target_for
from tests.test_service import env_for, wait_for

ENTRIES = next(t for t in TABLES if t.name == "journal_entries")
SERVERS = ["postgres", "mysql"]
RUN_ONCE = [sys.executable, "-m", "sitoo_sync", "run", "--once"]
JOURNAL = "/v3/journal-entries"


@pytest.mark.parametrize("target_name", SERVERS)
def test_replicas_share_a_partitioned_stream_and_reset_waits_for_them(
    target_name: str, tmp_path: Path
) -> None:
    """Two syncs hold a register stream's lock together, `reset` (exclusive) is refused
    meanwhile and gets it after; an account stream's lock stays exclusive."""
    with target_for(target_name, tmp_path) as target:
        settings = Settings(**target.settings())
        assert shares_partitions(settings, "journal_entries")
        assert not shares_partitions(settings, "pos_z_reports")
        first = take_lock(settings, "journal_entries", shared=True)
        second = take_lock(settings, "journal_entries", shared=True)
        assert first is not None
        assert second is not None
        assert take_lock(settings, "journal_entries") is None
        first.release()
        second.release()
        reset = take_lock(settings, "journal_entries")
        assert reset is not None
        assert take_lock(settings, "journal_entries", shared=True) is None
        reset.release()
        account = take_lock(settings, "pos_z_reports")
        assert account is not None
        assert take_lock(settings, "pos_z_reports") is None
        account.release()


@pytest.mark.parametrize("target_name", SERVERS)
def test_a_partition_lock_excludes_other_sessions_until_released(
    target_name: str, tmp_path: Path
) -> None:
    """One holder's register is refused to another; other registers are not, and a
    released (or closed) holder's register is free again, its claim carrying the cursor the
    holder committed before letting it go."""
    with target_for(target_name, tmp_path) as target:
        settings = Settings(**target.settings())
        mine, theirs = (partition_locks(settings, "journal_entries") for _ in range(2))
        warehouse = open_warehouse(target.url, schema=target.schema)
        try:
            assert mine.try_acquire("r1") == Claim(None)
            assert mine.try_acquire("r2") == Claim(None)
            assert theirs.try_acquire("r1") is None
            assert theirs.try_acquire("r3") == Claim(None)
            warehouse.set_cursor("journal_entries", "r1", "1700000000", rows=1)
            mine.release("r1")
            assert theirs.try_acquire("r1") == Claim("1700000000", 1)
            mine.close()
            assert theirs.try_acquire("r2") == Claim(None)
        finally:
            theirs.close()
            warehouse.close()


@pytest.mark.parametrize("target_name", SERVERS)
def test_partitions_taken_at_once_by_many_threads_are_each_claimed_once(
    target_name: str, tmp_path: Path
) -> None:
    """Forty threads taking and freeing registers at once through one process's locks (their
    takes and frees go in shared rounds) each get exactly their own claims with the right
    cursors, and another process gets none of them until they are freed."""
    with target_for(target_name, tmp_path) as target:
        settings = Settings(**target.settings())
        mine, theirs = (partition_locks(settings, "journal_entries") for _ in range(2))
        warehouse = open_warehouse(target.url, schema=target.schema)
        registers = [f"r{i}" for i in range(200)]
        try:
            for r in registers[::2]:
                warehouse.set_cursor("journal_entries", r, f"c-{r}", rows=1)
            assert theirs.try_acquire("r7") == Claim(None)  # so r7 is refused to mine
            with ThreadPoolExecutor(40) as pool:
                claims = dict(zip(registers, pool.map(mine.try_acquire, registers), strict=True))
            assert claims.pop("r7") is None
            assert claims == {
                r: Claim(f"c-{r}", 1) if int(r[1:]) % 2 == 0 else Claim(None) for r in claims
            }
            assert all(theirs.try_acquire(r) is None for r in registers[:20] if r != "r7")
            with ThreadPoolExecutor(40) as pool:
                list(pool.map(mine.release, claims))
            mine.close()  # frees whatever a round still had to send
            assert all(theirs.try_acquire(r) is not None for r in registers[:20])
        finally:
            theirs.close()
            warehouse.close()


@pytest.mark.parametrize("target_name", SERVERS)
def test_replicas_adding_new_registers_cursors_never_wait_for_each_other(
    target_name: str, tmp_path: Path
) -> None:
    """Two replicas' first commits of new registers: one adds a cursor row and keeps its
    transaction open, the other adds one in the same gap of the key and commits at once,
    then the first adds another and commits. (On MariaDB an UPDATE that matched no row
    locked the gap before its INSERT, so the second waited for the first's gap lock, and
    two such writers deadlocked: one replica exited 1 in the test below.)"""
    with target_for(target_name, tmp_path) as target:
        first, second = (open_warehouse(target.url, schema=target.schema) for _ in range(2))
        try:
            first.ensure_schema(SYSTEM_TABLES)

            def add(warehouse: Warehouse, register: str) -> None:
                with warehouse.transaction():
                    warehouse.set_cursor("journal_entries", register, "1", rows=1)

            with first.transaction(), ThreadPoolExecutor(1) as pool:
                add(first, "r1")
                pool.submit(add, second, "r2").result(timeout=15)  # a gap lock held it 50 s
                add(first, "r3")
            assert {s.partition for s in first.states()} == {"r1", "r2", "r3"}
        finally:
            first.close()
            second.close()


def _replica(sim: Simulator, target: Target) -> subprocess.Popen[str]:
    env = env_for(sim, target, SITOO_STREAMS="journal_entries", SITOO_CONCURRENCY="2")
    return subprocess.Popen(
        RUN_ONCE, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )


def _registers_asked(sim: Simulator) -> set[str]:
    """The registers whose journal pages have been asked for so far."""
    with sim.world.lock:
        asked = list(sim.log)
    return {q["register_id"] for path, q in asked if path == JOURNAL and "register_id" in q}


def _release_once_each_replica_has_a_register(sim: Simulator) -> None:
    """Answer the held journal pages as soon as three registers have been asked for: a
    replica (two request slots) asks for at most two while its pages are held, so the
    third is the other's, and each replica has a register of its own to load. Without
    that, each first page took its whole 10 s."""
    wait_for(lambda: len(_registers_asked(sim)) >= 3, 300, "both replicas to ask for pages")
    sim.faults.release()


def _clean_run(sim: Simulator, tmp_path: Path, sync: SyncFn) -> RunReport:
    """The same backfill by one process into a fresh DuckDB file."""
    settings = settings_for(sim, tmp_path / "clean.duckdb", streams=["journal_entries"])
    report = sync(settings)
    assert report.ok
    return report


def _loaded(log: PipeLines) -> dict[str, int]:
    """Rows each partition this replica synced loaded (logged when its tick ends)."""
    return {e["partition"]: e["rows"] for e in log.events("partition_synced")}


def _committed(log: PipeLines) -> bool:
    """Whether this replica has committed rows of a register yet (logged per batch, while
    its tick goes on)."""
    return any(e["rows"] for e in log.events("batch_loaded"))


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("target_name", SERVERS)
def test_two_replicas_split_the_registers_with_no_double_load(
    target_name: str, tmp_path: Path, sync: SyncFn
) -> None:
    """Two `run --once` at once: each loads some registers, none loads one the other
    loaded, and together they load what one process loads alone, each entry once."""
    with (
        Simulator.create(SimConfig(seed=61, days=3, registers_per_store=4)) as sim,
        target_for(target_name, tmp_path) as target,
    ):
        # Slow journal pages: one replica alone would need minutes (21 registers, two at a
        # time, 10 s a page), so however late a loaded machine starts the second (its start-up
        # and its wait for the first's schema creation have taken 30 s and more), both are
        # backfilling together; fast again once each has loaded a register.
        sim.faults.queue("slow", times=10_000, path="/journal-entries", seconds=10.0)
        procs = [_replica(sim, target) for _ in range(2)]
        logs = [PipeLines(p.stderr) for p in procs]
        _release_once_each_replica_has_a_register(sim)
        wait_for(
            lambda: all(_committed(log) for log in logs), 300, "each replica to load a register"
        )
        sim.faults.clear()
        sim.faults.release()  # the pages held now need not take their 10 s either
        codes = [p.wait(timeout=300) for p in procs]
        for log in logs:
            log.finish()
        if codes != [0, 0]:
            pytest.fail(_why_failed(codes, logs), pytrace=False)
        loaded = [{p: n for p, n in _loaded(log).items() if n} for log in logs]
        assert all(loaded)
        assert not set(loaded[0]) & set(loaded[1])
        registers = {r.registerid for r in sim.world.registers}
        assert set(loaded[0]) | set(loaded[1]) == registers
        clean = _clean_run(sim, tmp_path, sync)
        assert sum(loaded[0].values()) + sum(loaded[1].values()) == clean.rows
        assert_each_entry_once(sim, target.rows(ENTRIES))
        skipped = [e["reason"] for log in logs for e in log.events("partition_skipped")]
        assert set(skipped) <= {"held by another process", "synced by another process"}


def _why_failed(codes: list[int], logs: list[PipeLines], tail: int = 15) -> str:
    """What each replica that did not exit 0 said: its error events, then its last lines
    (pytest.fail: an assert's message is cut to a few lines)."""
    parts = []
    for i, (code, log) in enumerate(zip(codes, logs, strict=True)):
        if code == 0:
            continue
        errors = [line for line in log.lines if '"level": "error"' in line]
        parts.append(f"replica {i} exited {code}; its errors:\n{''.join(errors)}")
        parts.append(f"replica {i}'s last {tail} lines:\n{''.join(log.lines[-tail:])}")
    return "\n".join(parts)


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("target_name", SERVERS)
def test_a_replica_killed_mid_backfill_loses_nothing(
    target_name: str, tmp_path: Path, sync: SyncFn
) -> None:
    """kill -9 one of two replicas mid-backfill: the other finishes, and a rerun leaves the
    target equal to a clean run's, every entry once."""
    with (
        Simulator.create(SimConfig(seed=62, days=3, registers_per_store=4)) as sim,
        target_for(target_name, tmp_path) as target,
        target_for(target_name, tmp_path) as clean,
    ):
        # 10 s a page, as above: the survivor alone cannot finish before a victim that a
        # loaded machine started late has loaded a register.
        sim.faults.queue("slow", times=10_000, path="/journal-entries", seconds=10.0)
        victim, survivor = _replica(sim, target), _replica(sim, target)
        logs = [PipeLines(victim.stderr), PipeLines(survivor.stderr)]
        _release_once_each_replica_has_a_register(sim)
        wait_for(lambda: _committed(logs[0]), 300, "the victim to load a register")
        victim.send_signal(signal.SIGKILL)
        assert victim.wait(timeout=60) == -signal.SIGKILL
        sim.faults.clear()
        sim.faults.release()
        code = survivor.wait(timeout=300)
        logs[1].finish()
        if code != 0:
            pytest.fail(_why_failed([code], logs[1:]), pytrace=False)
        rerun = _replica(sim, target)
        rerun_log = PipeLines(rerun.stderr)
        code = rerun.wait(timeout=300)
        rerun_log.finish()
        if code != 0:
            pytest.fail(_why_failed([code], [rerun_log]), pytrace=False)
        assert_each_entry_once(sim, target.rows(ENTRIES))
        assert sync(settings_for(sim, tmp_path / "x.duckdb", **clean.settings())).ok
        got, want = target.bags(TABLES), clean.bags(TABLES)
        for table in TABLES:
            assert got[table.name] == want[table.name], table.name


def test_the_summary_counts_partitions_left_to_other_processes() -> None:
    """Skipped partitions are added up per reason, also for a stream this process synced
    none of."""
    from sitoo_sync.results import PartitionResult

    report = RunReport(results=[PartitionResult("journal_entries", "r1", rows=3)])
    report.skipped["journal_entries", "held by another process"] += 2
    report.skipped["journal_entries", "synced by another process"] += 1
    report.skipped["cash_registers", "held by another process"] += 5
    journal, registers = report.summary()
    assert journal.endswith(
        "; 2 skipped (held by another process), 1 skipped (synced by another process)"
    )
    assert registers == "cash_registers: 5 skipped (held by another process)"
