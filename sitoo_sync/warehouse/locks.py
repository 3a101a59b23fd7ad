"""Locks behind the warehouse seam: who may write what on a target, whoever starts it.

* PostgreSQL: session advisory locks (`pg_try_advisory_lock`) on a connection of their own.
* MySQL/MariaDB: named locks (`GET_LOCK(name, 0)`), likewise bound to their connection.
* DuckDB and SQLite files, and anything else: `flock` (file_locks.py).

A server lock lives on a connection of its own (autocommit, outside any pool of the loads):
it outlasts every load transaction, and the server frees it when its holder dies, as the
operating system frees a `flock`. So a lock left by a killed process is recovered without
anyone deleting anything. Which SQL takes and frees a lock is the dialect's (dialects.py).

The other side of that: a lock lives only as long as its session. Its session is set up not
to be ended for sitting idle (`lock_session_sql`), and a watched lock (`SessionLock.watch`:
a service tick's) is asked after on a heartbeat, so a holder whose session ended anyway
learns it and stops writing. Partition locks are not watched: their holder learns of an
ended session at its next take (the tick fails, `_lost_error`), and meanwhile whatever it
still commits of a partition another process claimed since is fenced off by the cursor it
moves from and the count of windows stored with it, both read with the claim (commit.py,
`CursorMove.fenced`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from sitoo_sync.errors import WarehouseError, first_line
from sitoo_sync.log import get_logger
from sitoo_sync.warehouse.base import Claim, Lock, StoredCursors
from sitoo_sync.warehouse.rounds import Rounds

if TYPE_CHECKING:  # SQLAlchemy is imported only for server targets (it costs ~25 MB)
    import sqlalchemy as sa

    from sitoo_sync.warehouse.dialects import SqlDialect

log = get_logger(__name__)

#: Opens the connection a lock lives on: (engine to dispose, autocommit connection).
Connect = Callable[[], "tuple[sa.Engine, sa.Connection]"]
#: Reads the stored cursors of some partitions of the stream, on the lock's connection.
ReadCursors = Callable[["sa.Connection", Sequence[str]], StoredCursors]


#: Seconds between two looks whether a watched lock's session is still there: a holder
#: whose session the server ended (and freed the lock with) learns it within this, and the
#: statement keeps a firewall or NAT from dropping the idle connection meanwhile.
HEARTBEAT_SECONDS = 5.0


#: Why a lock whose connection broke is not released by a statement.
LOST_CONNECTION = "its connection was lost; the server frees the lock with the session"


class SessionLock:
    """Named locks held on one connection; released (and the connection ended) together.

    Once watched (`watch`), a heartbeat thread asks the connection every HEARTBEAT_SECONDS
    whether it is still there until the lock is released.
    """

    def __init__(
        self,
        engine: sa.Engine,
        conn: sa.Connection,
        releases: list[tuple[str, object]],
        name: str = "",
    ) -> None:
        self._engine = engine
        self._conn = conn
        self._releases = releases
        self._name = name
        self._talking = threading.Lock()  # one statement at a time on the connection
        self._released = threading.Event()
        self._watching = threading.Lock()
        self._watchers: list[threading.Event] = []
        self._heartbeat: threading.Thread | None = None

    def watch(self, lost: threading.Event) -> None:
        """Set `lost` once a heartbeat finds the session ended (the server freed the lock)."""
        with self._watching:
            self._watchers.append(lost)
            if self._heartbeat is None:
                self._heartbeat = threading.Thread(
                    target=self._beat, name="sitoo-lock-heartbeat", daemon=True
                )
                self._heartbeat.start()

    def _beat(self) -> None:
        while not self._released.wait(HEARTBEAT_SECONDS):
            if not self._alive():
                with self._watching:
                    for lost in self._watchers:
                        lost.set()
                return

    def _alive(self) -> bool:
        """False when the connection is gone, and with it the session and its locks."""
        import sqlalchemy as sa

        with self._talking:
            if self._released.is_set():
                return True
            try:
                self._conn.execute(sa.text("SELECT 1")).all()
            except sa.exc.SQLAlchemyError as exc:
                log.error("lock_lost", lock=self._name, error=first_line(exc))
                return False
        return True

    def release(self) -> None:
        """Free every lock, then end the connection. A connection the server has ended
        already (a network cut, a restart) freed them with it: a warning, not an error."""
        import sqlalchemy as sa

        self._released.set()
        with self._talking:
            try:
                if self._conn.invalidated:  # a statement found it broken: asking again says no more
                    log.warning("lock_not_released", lock=self._name, error=LOST_CONNECTION)
                    return
                for sql, key in self._releases:
                    self._conn.execute(sa.text(sql), {"k": key})
            except sa.exc.SQLAlchemyError as exc:
                log.warning("lock_not_released", lock=self._name, error=first_line(exc))
            finally:
                _end(self._engine, self._conn)


def _end(engine: sa.Engine, conn: sa.Connection) -> None:
    """End a lock's connection and its engine."""
    try:
        conn.close()
    finally:
        engine.dispose()


def _opened(connect: Connect, dialect: SqlDialect) -> tuple[sa.Engine, sa.Connection]:
    """A lock's connection (`connect`), its session set up to outlast any idle time
    (`lock_session_sql`): a server that ends idle sessions would free its locks mid-tick,
    and another process would take them while this one still loads."""
    import sqlalchemy as sa

    engine, conn = connect()
    try:
        for sql in dialect.lock_session_sql:
            conn.execute(sa.text(sql))
    except BaseException:
        _end(engine, conn)
        raise
    return engine, conn


def try_session(connect: Connect, dialect: SqlDialect, name: str, *, shared: bool) -> Lock | None:
    """The server lock `name`, shared or exclusive, on a connection of its own; None when
    another process holds it.

    Where the server has no shared named lock (`dialect.lock_slots`), a shared holder takes
    one of the slots and an exclusive holder every one: a holder beyond the slots skips.
    """
    engine, conn = _opened(connect, dialect)
    try:
        return _take_session(engine, conn, dialect, name, shared=shared)
    except BaseException:  # what it took is freed with the session
        _end(engine, conn)
        raise


def slot_name(name: str, slot: int) -> str:
    """One slot of the lock `name` where the server has no shared lock. Never a partition's
    lock name (`{name}:{partition}`, see SessionPartitionLocks): slot 1 named `{name}:1`
    was site 1's lock, which a replica's shared hold then kept from every replica."""
    return f"slot:{name}:{slot}"


def _take_session(
    engine: sa.Engine, conn: sa.Connection, dialect: SqlDialect, name: str, *, shared: bool
) -> Lock | None:
    """`try_session` on the connection `conn`, which is ended unless a lock is returned."""
    import sqlalchemy as sa

    def run(sql: str, key: object) -> bool:
        return bool(conn.execute(sa.text(sql), {"k": key}).scalar() == 1)

    releases: list[tuple[str, object]] = []
    if not dialect.lock_slots:
        take, free, key = dialect.session_lock(name, shared=shared)
        if run(take, key):
            releases.append((free, key))
    else:
        slots = [
            dialect.session_lock(slot_name(name, i), shared=False)
            for i in range(dialect.lock_slots)
        ]
        for take, free, key in slots:
            if run(take, key):
                releases.append((free, key))
                if shared:
                    break
            elif not shared:  # one slot is held: so is the stream
                break
        if not shared and len(releases) < len(slots):
            SessionLock(engine, conn, releases, name).release()
            return None
    if releases:
        return SessionLock(engine, conn, releases, name)
    _end(engine, conn)
    return None


class SessionPartitionLocks:
    """Locks on single partitions of one stream, all held on one connection of the process.

    A session lock belongs to the connection that took it and one connection can hold many,
    so a tick over hundreds of registers costs one connection, not one per register. A
    partition is locked from before its cursor is read until its last commit; the server
    frees every lock of a process that dies, and its cursor moved only with its rows.

    The connection runs one statement at a time, so the partitions of a tick hand their
    takes and frees over, and whoever finds no statement under way runs everything handed
    over meanwhile in one round (one statement each way where the dialect can). A round also
    reads the cursors of the partitions it took, which each partition read on its own
    before. A take and a free per register, each waiting its turn on the connection, cost
    a no-op tick over 201 registers at concurrency 32 41 ms of each register's ~165 (its
    request 106). A free is only handed over (it is sent with the next round, or now when
    none is under way): the partition does not wait for it.
    """

    def __init__(
        self, connect: Connect, dialect: SqlDialect, prefix: str, cursors: ReadCursors
    ) -> None:
        self._engine, self._conn = _opened(connect, dialect)
        self._dialect = dialect
        self._prefix = prefix
        self._cursors = cursors
        self._rounds: Rounds[tuple[bool, str], Claim | None] = Rounds(self._round)
        #: Why the connection was found ended (None: it was not): the server freed every
        #: lock with the session, so a take raises and a free has nothing left to free.
        self._lost: str | None = None

    def _name(self, partition: str) -> str:
        return f"{self._prefix}:{partition}"

    def try_acquire(self, partition: str) -> Claim | None:
        """The claim on `partition` when this process now holds it (its cursor read after);
        None when another process does."""
        return self._rounds.ask((True, partition))

    def release(self, partition: str) -> None:
        """Let another process have `partition` (with the next round)."""
        self._rounds.tell((False, partition))

    def _round(self, items: Sequence[tuple[bool, str]]) -> list[Claim | None]:
        """Free the round's partitions to free, then take those to take (see `_take`)."""
        import sqlalchemy as sa

        frees = [self._name(p) for take, p in items if not take]
        if frees and self._lost is None:
            try:
                self._dialect.free_locks(self._conn, frees)
            except sa.exc.SQLAlchemyError as exc:  # the server frees them with the session
                if not self._found_lost(exc):
                    log.warning("partition_locks_not_released", error=first_line(exc))
        takes = [p for take, p in items if take]
        if takes and self._lost is not None:
            raise self._lost_error()
        try:
            claims = iter(self._take(takes))
        except sa.exc.SQLAlchemyError as exc:
            if self._found_lost(exc):
                raise self._lost_error() from exc
            raise
        return [next(claims) if take else None for take, _p in items]

    def _found_lost(self, exc: BaseException) -> bool:
        """Whether `exc` found the connection ended (said once, as an error): the server
        freed every partition lock of this process with it, and another process may be
        loading them now. What this one still commits of them is fenced (commit.py)."""
        if not self._conn.invalidated:
            return False
        if self._lost is None:
            self._lost = first_line(exc)
            log.error("partition_locks_lost", lock=self._prefix, error=self._lost)
        return True

    def _lost_error(self) -> WarehouseError:
        """What a take raises once the session is found ended: one line that says so."""
        return WarehouseError(
            f"the session holding this process's partition locks of {self._prefix} ended "
            f"({self._lost}): the server freed them and other processes may claim them; "
            "this tick claims no more, the next one claims them again"
        )

    def _take(self, partitions: Sequence[str]) -> list[Claim | None]:
        """Take `partitions`, then read the cursors of those taken: the read comes after the
        take, so it sees every commit of a process that held one before."""
        if not partitions:
            return []
        taken = self._dialect.take_locks(self._conn, [self._name(p) for p in partitions])
        held = [p for p, got in zip(partitions, taken, strict=True) if got]
        cursors = self._cursors(self._conn, held) if held else StoredCursors()
        return [cursors.claim(p) if got else None for p, got in zip(partitions, taken, strict=True)]

    def close(self) -> None:
        """Free every partition still held, then end the connection.

        Ending the connection alone frees them too, but only once the server has noticed
        (asynchronously): freeing them first makes them free when `close` returns.
        """
        import sqlalchemy as sa

        self._rounds.close()
        try:
            if self._lost is None:  # (else the server freed them with the session)
                self._conn.execute(sa.text(self._dialect.release_all_sql()))
        except sa.exc.SQLAlchemyError as exc:  # the server frees them with the session
            log.warning("partition_locks_not_released", error=first_line(exc))
        finally:
            _end(self._engine, self._conn)
