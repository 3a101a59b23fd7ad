"""One writer per stream and target, whoever starts it: service, cron tick, a second host.

* PostgreSQL: a session advisory lock (`pg_try_advisory_lock`) on a connection of its own.
* MySQL/MariaDB: a named lock (`GET_LOCK(name, 0)`), likewise bound to its connection.
* DuckDB and SQLite: `flock` on a lock file beside the database file.
* Anything else: `flock` on a file in the temp directory (protects one host only).

Each is released by the operating system or the database server when its holder dies, so a
lock left by a killed process is recovered without anyone deleting anything. A lock that is
held makes the tick skip the stream, which is not an error.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import tempfile
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
        self, engine: sa.Engine, conn: sa.Connection, release_sql: str, key: object
    ) -> None:
        self._engine = engine
        self._conn = conn
        self._release_sql = release_sql
        self._key = key

    def release(self) -> None:
        import sqlalchemy as sa

        try:
            self._conn.execute(sa.text(self._release_sql), {"k": self._key})
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


def try_lock(settings: Settings, stream: str) -> StreamLock | None:
    """The stream's lock on the settings' target, or None when another writer holds it."""
    url = settings.target_url
    scheme = url.split("://", 1)[0].split("+", 1)[0].lower()
    name = lock_name(settings, stream)
    if scheme in ("duckdb", "sqlite"):
        path = check_local_target(url)  # beside the file: never make its directory
        if path is not None:
            return _try_file(Path(f"{path}.{stream}.lock"))
    if scheme in ("postgresql", "postgres", "mysql", "mariadb"):
        import sqlalchemy as sa
        from sqlalchemy.exc import SQLAlchemyError

        from sitoo_sync.warehouse.sqla import make_engine

        engine = make_engine(url)
        try:
            conn = engine.connect()
        except SQLAlchemyError as exc:
            engine.dispose()
            raise unreachable(url, exc) from exc
        key: object
        if engine.dialect.name == "postgresql":
            key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
            got = conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar()
            release = "SELECT pg_advisory_unlock(:k)"
        else:
            key = name[:64]  # MySQL lock names are at most 64 characters
            got = conn.execute(sa.text("SELECT GET_LOCK(:k, 0)"), {"k": key}).scalar() == 1
            release = "SELECT RELEASE_LOCK(:k)"
        conn.commit()
        if got:
            return _SessionLock(engine, conn, release, key)
        conn.close()
        engine.dispose()
        return None
    digest = hashlib.sha256(f"{url}|{name}".encode()).hexdigest()[:16]
    log.warning("lock_is_host_local", stream=stream, reason=f"no shared lock for {scheme}")
    return _try_file(Path(tempfile.gettempdir()) / f"sitoo-sync-{digest}.lock")
