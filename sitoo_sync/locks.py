"""Who may write what on a target, whoever starts it: service, cron tick, a replica.

* PostgreSQL: session advisory locks (`pg_try_advisory_lock`) on a connection of their own.
* MySQL/MariaDB: named locks (`GET_LOCK(name, 0)`), likewise bound to their connection.
* DuckDB and SQLite: `flock` on a lock file beside the database file.
* Anything else: `flock` on a file in the temp directory (protects one host only).

On PostgreSQL and MySQL a stream split into partitions (sites, registers) is shared: every
process that syncs it holds the stream's lock in shared mode, and each partition is locked
on its own (`PartitionLocks`), so replicas split the partitions between them. `reset` takes
the stream's lock exclusively, so it never moves cursors that a tick is moving. A stream of
one partition (the account) and every stream of a file target keep one exclusive lock: one
partition cannot be split, and one process writes a file anyway.

Each is released by the operating system or the database server when its holder dies, so a
lock left by a killed process is recovered without anyone deleting anything. A lock that is
held makes the tick skip the stream (or the partition), which is not an error.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import tempfile
import threading
from pathlib import Path
from typing import IO, TYPE_CHECKING, Protocol

from sitoo_sync.log import get_logger
from sitoo_sync.settings import Settings
from sitoo_sync.warehouse import check_local_target, unreachable

if TYPE_CHECKING:  # SQLAlchemy is imported only for server targets (it costs ~25 MB)
    import sqlalchemy as sa

log = get_logger(__name__)


class StreamLock(Protocol):
    """A held lock."""

    def release(self) -> None:
        """Let the next writer in."""


class _FileLock:
    def __init__(self, path: Path, handle: IO[str]) -> None:
        self.path = path
        self._handle = handle

    def release(self) -> None:
        fcntl.flock(self._handle.fileno(), fcntl.LOCK_UN)
        self._handle.close()


class _SessionLock:
    def __init__(
        self, engine: sa.Engine, conn: sa.Connection, releases: list[tuple[str, object]]
    ) -> None:
        self._engine = engine
        self._conn = conn
        self._releases = releases

    def release(self) -> None:
        import sqlalchemy as sa

        try:
            for sql, key in self._releases:
                self._conn.execute(sa.text(sql), {"k": key})
        finally:
            self._conn.close()
            self._engine.dispose()


def _try_file(path: Path) -> StreamLock | None:
    handle = path.open("a+", encoding="utf-8")
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return _FileLock(path, handle)


def lock_name(settings: Settings, stream: str) -> str:
    """The lock's name: target, schema and stream."""
    return f"sitoo_sync:{settings.target_schema or ''}:{stream}"


_SERVERS = ("postgresql", "postgres", "mysql", "mariadb")
#: MySQL has no shared named lock: a shared holder takes one of these slots, an exclusive
#: holder takes every one. A ninth replica finds no free slot and skips the stream.
MYSQL_SLOTS = 8


def _scheme(url: str) -> str:
    return url.split("://", 1)[0].split("+", 1)[0].lower()


def _pg_key(name: str) -> int:
    """A PostgreSQL advisory lock key (64 bits) for a lock name."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


def _mysql_name(name: str) -> str:
    """A MySQL lock name (at most 64 characters) for a lock name of any length."""
    return f"sitoo_sync:{hashlib.sha256(name.encode()).hexdigest()[:48]}"


def shares_partitions(settings: Settings, stream: str) -> bool:
    """True when processes split `stream`'s partitions: a server target and a stream of
    several partitions (sites, registers)."""
    from sitoo_sync.streams import STREAMS

    known = STREAMS.get(stream)
    shared_target = _scheme(settings.target_url) in _SERVERS
    return shared_target and known is not None and not known.partitions.single


def _connect(url: str) -> tuple[sa.Engine, sa.Connection]:
    """An engine and one connection in autocommit mode (a lock must not hold a snapshot)."""
    from sqlalchemy.exc import SQLAlchemyError

    from sitoo_sync.warehouse.sqla import make_engine

    engine = make_engine(url)
    try:
        conn = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
    except SQLAlchemyError as exc:
        engine.dispose()
        raise unreachable(url, exc) from exc
    return engine, conn


def _try_server(settings: Settings, stream: str, *, shared: bool) -> StreamLock | None:
    import sqlalchemy as sa

    name = lock_name(settings, stream)
    engine, conn = _connect(settings.target_url)

    def run(sql: str, key: object) -> bool:
        return bool(conn.execute(sa.text(sql), {"k": key}).scalar() == 1)

    releases: list[tuple[str, object]] = []
    if engine.dialect.name == "postgresql":
        mode = "_shared" if shared else ""
        if run(f"SELECT pg_try_advisory_lock{mode}(:k)::int", _pg_key(name)):
            releases.append((f"SELECT pg_advisory_unlock{mode}(:k)", _pg_key(name)))
    else:
        slots = [_mysql_name(f"{name}:{i}") for i in range(MYSQL_SLOTS)]
        for slot in slots:
            if run("SELECT GET_LOCK(:k, 0)", slot):
                releases.append(("SELECT RELEASE_LOCK(:k)", slot))
                if shared:
                    break
            elif not shared:  # one slot is held: so is the stream
                break
        if not shared and len(releases) < len(slots):
            _SessionLock(engine, conn, releases).release()
            return None
    if releases:
        return _SessionLock(engine, conn, releases)
    conn.close()
    engine.dispose()
    return None


def try_lock(settings: Settings, stream: str, *, exclusive: bool = False) -> StreamLock | None:
    """The stream's lock on the settings' target, or None when another writer holds it.

    Shared for a stream whose partitions processes split (see `shares_partitions`) unless
    `exclusive`, which `reset` asks for: it waits for no tick, and no tick starts during it.
    """
    url = settings.target_url
    scheme = _scheme(url)
    if scheme in ("duckdb", "sqlite"):
        path = check_local_target(url)  # beside the file: never make its directory
        if path is not None:
            return _try_file(Path(f"{path}.{stream}.lock"))
    if scheme in _SERVERS:
        shared = not exclusive and shares_partitions(settings, stream)
        return _try_server(settings, stream, shared=shared)
    name = lock_name(settings, stream)
    digest = hashlib.sha256(f"{url}|{name}".encode()).hexdigest()[:16]
    log.warning("lock_is_host_local", stream=stream, reason=f"no shared lock for {scheme}")
    return _try_file(Path(tempfile.gettempdir()) / f"sitoo-sync-{digest}.lock")


class PartitionLocks:
    """Locks on single partitions of one stream, all held on one connection of the process.

    A session lock belongs to the connection that took it and one connection can hold many,
    so a tick over hundreds of registers costs one connection, not one per register. A
    partition is locked from before its cursor is read until its last commit; the server
    frees every lock of a process that dies, and its cursor moved only with its rows.
    """

    def __init__(self, settings: Settings, stream: str) -> None:
        self._engine, self._conn = _connect(settings.target_url)
        self._postgres = self._engine.dialect.name == "postgresql"
        self._prefix = lock_name(settings, stream)
        self._lock = threading.Lock()  # one connection: one statement at a time

    def _key(self, partition: str) -> object:
        name = f"{self._prefix}:{partition}"
        return _pg_key(name) if self._postgres else _mysql_name(name)

    def _run(self, sql: str, partition: str) -> bool:
        import sqlalchemy as sa

        with self._lock:
            value = self._conn.execute(sa.text(sql), {"k": self._key(partition)}).scalar()
        return bool(value == 1)

    def try_acquire(self, partition: str) -> bool:
        """True when this process now holds `partition`; False when another one does."""
        if self._postgres:
            return self._run("SELECT pg_try_advisory_lock(:k)::int", partition)
        return self._run("SELECT GET_LOCK(:k, 0)", partition)

    def release(self, partition: str) -> None:
        """Let another process have `partition`."""
        if self._postgres:
            self._run("SELECT pg_advisory_unlock(:k)::int", partition)
        else:
            self._run("SELECT RELEASE_LOCK(:k)", partition)

    def close(self) -> None:
        """End the connection: the server frees whatever it still holds."""
        with self._lock:
            self._conn.close()
            self._engine.dispose()


def partition_locks(settings: Settings, stream: str) -> PartitionLocks | None:
    """Per-partition locks when processes split `stream` (see `shares_partitions`), else
    None: the stream's exclusive lock covers its partitions."""
    if not shares_partitions(settings, stream):
        return None
    return PartitionLocks(settings, stream)
