"""A replica whose partition locks' session dies mid-tick: its late commits are fenced.

The server frees every partition lock of a process whose lock session it ended (a restart
of the backend, `pg_terminate_backend`, a network cut, MariaDB's `KILL`); another replica
then claims those registers and loads the same windows while the first one still does.
These tests end that session at a chosen moment, from a third connection, between two
in-process ticks against one simulator, and look at what the two writers leave.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import structlog

from sitoo_sync import commit
from sitoo_sync.api.client import make_client
from sitoo_sync.normalize.journal_entries import TABLES
from sitoo_sync.settings import Settings
from sitoo_sync.simulator import Simulator
from sitoo_sync.streams import STREAMS
from sitoo_sync.streams.base import Stream
from sitoo_sync.sync import RunReport, run_once
from sitoo_sync.warehouse import open_warehouse
from sitoo_sync.warehouse.base import Warehouse
from sitoo_sync.warehouse.dialects import mysql_lock_name, pg_key
from sitoo_sync.warehouse.file_locks import scoped_name
from sitoo_sync.warehouse.sqla import make_engine
from tests.support import assert_each_entry_once, target_settings
from tests.targets import Target, target_for

SERVERS = ["postgres", "mysql"]
ENTRIES = next(t for t in TABLES if t.name == "journal_entries")
JOURNAL = STREAMS["journal_entries"]


def _paged(stream: Stream, num: int) -> Stream:
    """`stream` asking for pages of `num` entries (several windows a register)."""
    cursor: Any = stream.cursor
    fixed = tuple((k, num if k == "num" else v) for k, v in cursor.fixed)
    return dataclasses.replace(stream, cursor=dataclasses.replace(cursor, fixed=fixed))


def _inner(warehouse: Any) -> Any:
    """The warehouse under a SerializedWarehouse (MySQL's concurrent partitions)."""
    return getattr(warehouse, "_inner", warehouse)


class Tick:
    """One in-process tick of `stream` on a thread of its own: its report, or what it raised."""

    def __init__(self, sim: Simulator, settings: Settings, stream: Stream) -> None:
        self.warehouse: Warehouse = open_warehouse(
            settings.target_url, schema=settings.target_schema
        )
        self.report: RunReport | None = None
        self.raised: BaseException | None = None
        self._sim, self._settings, self._stream = sim, settings, stream
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        now = datetime.fromtimestamp(self._sim.world.config.now, UTC)
        try:
            with make_client(self._settings, sleep=lambda _s: None) as client:
                self.report = run_once(
                    self._settings, self.warehouse, client, [self._stream], clock=lambda: now
                )
        except BaseException as exc:  # the test looks at it
            self.raised = exc

    def start(self) -> Tick:
        self._thread.start()
        return self

    def join(self, timeout: float = 120) -> Tick:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the tick never ended"
        return self


@contextmanager
def _admin(target: Target) -> Iterator[sa.Connection]:
    """A third connection to the target's server, autocommit."""
    engine = make_engine(target.url)
    try:
        with engine.connect() as conn:
            yield conn.execution_options(isolation_level="AUTOCOMMIT")
    finally:
        engine.dispose()


def _lock_name(target: Target, partition: str) -> str:
    """The name a tick's partition lock on `partition` of the journal has (locks.py)."""
    return f"{scoped_name(target.schema, JOURNAL.name)}:{partition}"


def _holder(server: str, conn: sa.Connection, target: Target, partition: str) -> int | None:
    """The server session (pid, connection id) holding `partition`'s lock, if any."""
    name = _lock_name(target, partition)
    if server == "postgres":
        key = pg_key(name) & 0xFFFF_FFFF_FFFF_FFFF
        return conn.execute(
            sa.text(
                "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
                "AND classid = CAST(:hi AS oid) AND objid = CAST(:lo AS oid) AND objsubid = 1"
            ),
            {"hi": key >> 32, "lo": key & 0xFFFF_FFFF},
        ).scalar()
    holder = conn.execute(sa.text("SELECT IS_USED_LOCK(:k)"), {"k": mysql_lock_name(name)}).scalar()
    return None if holder is None else int(holder)


def _wait(what: str, done: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _end_lock_session(server: str, target: Target, partitions: Sequence[str]) -> None:
    """End, from a third connection, the one session holding every lock of `partitions` (a
    backend restart, an administrator's kill), and wait until the server has freed them."""
    with _admin(target) as conn:
        holders = {_holder(server, conn, target, p) for p in partitions}
        [session] = holders
        assert session is not None
        if server == "postgres":
            conn.execute(sa.text("SELECT pg_terminate_backend(:p)"), {"p": session})
        else:
            conn.execute(sa.text(f"KILL {int(session)}"))
        _wait(
            "the locks to be freed",
            lambda: all(_holder(server, conn, target, p) is None for p in partitions),
        )


def _someone_waits_for_a_row_lock(server: str, conn: sa.Connection, target: Target) -> bool:
    """A statement on the test's schema is waiting for a lock another transaction holds (on
    MariaDB: has run for two seconds, as its INNODB_TRX does not always list the wait)."""
    like = f"%{target.schema}%"
    if server == "postgres":
        sql = (
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND query LIKE :like"
        )
    else:
        sql = (
            "SELECT count(*) FROM information_schema.PROCESSLIST WHERE command = 'Query' "
            "AND time >= 2 AND info LIKE :like AND id <> CONNECTION_ID()"
        )
    return bool(conn.execute(sa.text(sql), {"like": like}).scalar())


def _cursors(target: Target) -> dict[str, str | None]:
    warehouse = open_warehouse(target.url, schema=target.schema)
    try:
        return warehouse.get_cursors(JOURNAL.name)
    finally:
        warehouse.close()


def _caught_up(sim: Simulator) -> dict[str, str | None]:
    """Each register's cursor once all of its journal is loaded: its newest entry's time."""
    newest: dict[str, int] = {}
    for entry in sim.world.journal.all_entries():
        register = entry["registerid"]
        newest[register] = max(newest.get(register, 0), entry["dateadded"])
    return {r: str(t) for r, t in newest.items()}


def _settings(sim: Simulator, target: Target, **overrides: Any) -> Settings:
    return target_settings(sim, target, streams=[JOURNAL.name], **overrides)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("server", SERVERS)
def test_a_stale_holders_group_commit_racing_the_new_holder_fails_nothing_else(
    server: str, sim: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Replica A has ten registers' journals in one pending group commit when its partition
    locks' session is ended; replica B claims the registers and commits them window by
    window, and holds one window's transaction open while A's group commit runs. A's
    commit of the registers B has moved is fenced (no duplicate-key error fails A's whole
    group, the other registers' batches with it, and its tick), each such register stops
    with one `partition_taken_over` warning, and the two leave every entry once, every
    register caught up."""
    registers = sorted(r.registerid for r in sim.world.registers)
    with target_for(server, tmp_path) as target:
        # A: every register claimed at once, each one window; B: pages of 50, each window
        # its own commit.
        a = Tick(sim, _settings(sim, target, concurrency=16, load_batch_seconds=600), JOURNAL)
        b = Tick(
            sim,
            _settings(sim, target, concurrency=4, load_batch_rows=1),
            _paged(JOURNAL, 50),
        )
        handed = threading.Semaphore(0)  # A's partitions that handed their batch over
        a_waits, go_a = threading.Event(), threading.Event()
        b_holds, go_b = threading.Event(), threading.Event()
        groups: list[list[str]] = []
        real_commit, real_load_group = commit.GroupWriter.commit, commit.load_group

        def group_commit(writer: commit.GroupWriter, load: Any, keys: Any) -> None:
            if _inner(writer.warehouse) is a.warehouse:
                handed.release()
            real_commit(writer, load, keys)

        def load_group(warehouse: Any, stream: Any, loads: Any, *, new: bool = False) -> bool:
            if _inner(warehouse) is a.warehouse and len(groups) < 2:
                groups.append([p.partition for p in loads])
                if len(groups) == 1:  # the first one alone: the others gather behind it
                    for _ in registers:
                        assert handed.acquire(timeout=120)
                else:
                    a_waits.set()
                    assert go_a.wait(120)
            return real_load_group(warehouse, stream, loads, new=new)

        monkeypatch.setattr(commit.GroupWriter, "commit", group_commit)
        monkeypatch.setattr(commit, "load_group", load_group)
        real_set_cursors = b.warehouse.set_cursors
        b_moves: list[str] = []

        def set_cursors(stream: str, moves: Any) -> Any:
            moved = real_set_cursors(stream, moves)
            b_moves.extend(m.partition for m in moves)
            if a_waits.is_set() and b_moves.count(groups[1][0]) == 2 and not b_holds.is_set():
                b_holds.set()  # its transaction open, the victim's cursor (and rows) in it
                assert go_b.wait(120)
            return moved

        b.warehouse.set_cursors = set_cursors  # type: ignore[method-assign]
        with structlog.testing.capture_logs() as events, _admin(target) as admin:
            a.start()
            assert a_waits.wait(120), "A never committed a second group"
            assert sorted(groups[0] + groups[1]) == registers
            _end_lock_session(server, target, groups[1])
            b.start()
            assert b_holds.wait(120), "B never committed the victim's second window"
            go_a.set()
            _wait(  # A's commit meets B's open transaction
                "A to wait for B's locks",
                lambda: _someone_waits_for_a_row_lock(server, admin, target),
                timeout=120,
            )
            go_b.set()
            a.join()
            b.join()
        assert a.raised is None, f"A's tick failed: {a.raised}"
        assert b.raised is None, f"B's tick failed: {b.raised}"
        assert a.report is not None
        assert a.report.ok, a.report  # none of its partitions failed
        taken = Counter(e["partition"] for e in events if e["event"] == "partition_taken_over")
        assert groups[1][0] in taken
        assert set(taken.values()) == {1}, taken  # one warning each
        assert_each_entry_once(sim, target.rows(ENTRIES))
        assert _cursors(target) == _caught_up(sim)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("server", SERVERS)
def test_a_stale_holder_never_moves_a_cursor_back(
    server: str, sim: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Replica A loses its partition locks' session with its second group commit pending;
    replica B then loads every register to the end. A's late commit of windows B has loaded
    since moves no cursor back to where A was (which would have the next tick read again
    what B loaded, and `status` show a lag that was never there): it is fenced, A's tick
    ends without an error, and every entry is stored once."""
    registers = sorted(r.registerid for r in sim.world.registers)
    paged = _paged(JOURNAL, 50)
    with target_for(server, tmp_path) as target:
        a = Tick(sim, _settings(sim, target, concurrency=16, load_batch_rows=1), paged)
        b = Tick(sim, _settings(sim, target, concurrency=4, load_batch_rows=1), paged)
        a_waits, go_a = threading.Event(), threading.Event()
        after: list[dict[str, str | None]] = []  # the cursors once A's late commit is done
        groups = 0
        real_load_group = commit.load_group

        def load_group(warehouse: Any, stream: Any, loads: Any, *, new: bool = False) -> bool:
            nonlocal groups
            if _inner(warehouse) is not a.warehouse:
                return real_load_group(warehouse, stream, loads, new=new)
            groups += 1
            if groups == 2:
                a_waits.set()
                assert go_a.wait(120)
            new = real_load_group(warehouse, stream, loads, new=new)
            if groups == 2:
                after.append(_cursors(target))
            return new

        monkeypatch.setattr(commit, "load_group", load_group)
        with structlog.testing.capture_logs() as events, _admin(target) as admin:
            a.start()
            assert a_waits.wait(120), "A never committed a second group"
            _wait(
                "A to hold every register",
                lambda: None not in {_holder(server, admin, target, r) for r in registers},
            )
            _end_lock_session(server, target, registers)
            b.start().join()
            assert b.raised is None, f"B's tick failed: {b.raised}"
            assert _cursors(target) == _caught_up(sim)
            go_a.set()
            a.join()
        assert after == [_caught_up(sim)]
        assert a.raised is None, f"A's tick failed: {a.raised}"
        assert a.report is not None
        assert a.report.ok, a.report
        taken = Counter(e["partition"] for e in events if e["event"] == "partition_taken_over")
        assert set(taken.values()) == {1}, taken  # one warning each
        assert_each_entry_once(sim, target.rows(ENTRIES))
        assert _cursors(target) == _caught_up(sim)


@pytest.mark.parametrize("server", SERVERS)
def test_a_fenced_cursor_move_is_made_only_from_the_cursor_it_expects(
    server: str, tmp_path: Path
) -> None:
    """`set_cursors` makes a fenced move where the stored cursor is the one it expects (a
    new partition, an outcome-only row and a stored cursor alike), leaves a cursor another
    process has moved as it is (counts too) and returns its partition, and still makes
    unfenced moves as they come, all in one call."""
    from sitoo_sync.warehouse.base import SYSTEM_TABLES, CursorMove

    with target_for(server, tmp_path) as target:
        warehouse = open_warehouse(target.url, schema=target.schema)
        try:
            warehouse.ensure_schema(SYSTEM_TABLES)
            with warehouse.transaction():
                warehouse.set_cursor("s", "mine", "10", rows=1)
                warehouse.set_cursor("s", "moved", "30", rows=1)
                warehouse.record_outcome("s", "outcome_only", "failed", "boom")
                warehouse.set_cursor("s", "unfenced", "5", rows=1)
            with warehouse.transaction():
                left = warehouse.set_cursors(
                    "s",
                    [
                        CursorMove("mine", "20", 2, 1, fenced=True, since="10"),
                        CursorMove("moved", "20", 2, 1, fenced=True, since="10"),
                        CursorMove("new", "20", 2, 1, fenced=True, since=None),
                        CursorMove("outcome_only", "20", 2, 1, fenced=True, since=None),
                        CursorMove("unfenced", "20", 2, 1),
                    ],
                )
            assert set(left or ()) == {"moved"}
            states = {s.partition: (s.cursor, s.rows_loaded) for s in warehouse.states()}
            assert states == {
                "mine": ("20", 3),
                "moved": ("30", 1),
                "new": ("20", 2),
                "outcome_only": ("20", 2),
                "unfenced": ("20", 3),
            }
        finally:
            warehouse.close()


@pytest.mark.parametrize("server", SERVERS)
def test_partition_locks_whose_session_ended_refuse_claims_in_one_line(
    server: str, tmp_path: Path
) -> None:
    """Once the server has ended the session a process's partition locks live on, its next
    claim raises one WarehouseError that says so (the tick fails in one line that names
    the lost locks, not the driver's "terminating connection"), said once as
    `partition_locks_lost`; its frees and its close then say nothing more (each one
    warned, with SQLAlchemy's "Can't reconnect until invalid transaction is rolled
    back")."""
    from sitoo_sync.errors import WarehouseError
    from tests.support import partition_locks

    with target_for(server, tmp_path) as target:
        settings = Settings(target_url=target.url, target_schema=target.schema)
        locks = partition_locks(settings, JOURNAL.name)
        assert locks.try_acquire("r1") is not None
        _end_lock_session(server, target, ["r1"])
        with structlog.testing.capture_logs() as events:
            for partition in ("r2", "r3"):
                with pytest.raises(WarehouseError, match=r"partition locks .* ended"):
                    locks.try_acquire(partition)
            locks.release("r1")
            locks.close()
        assert [(e["event"], e["log_level"]) for e in events] == [("partition_locks_lost", "error")]
        theirs = partition_locks(settings, JOURNAL.name)
        try:
            assert theirs.try_acquire("r1") is not None
        finally:
            theirs.close()
