"""Locks on files: `flock` on a lock file beside a DuckDB or SQLite database file, or, for a
target with no shared lock of its own, on a file in the temp directory (one host only).

The operating system frees a `flock` when its holder dies, so a lock left by a killed
process is recovered without anyone deleting anything. Server locks (PostgreSQL, MySQL)
are locks.py's; SQLite's schema upkeep holds `holding_file` (dialects.py).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from sitoo_sync.errors import WarehouseError
from sitoo_sync.log import get_logger
from sitoo_sync.warehouse import check_local_target
from sitoo_sync.warehouse.base import Lock

log = get_logger(__name__)

LOCK_PREFIX = "sitoo_sync"


def scoped_name(schema: str | None, name: str) -> str:
    """A lock's name on a server: tool, schema and the caller's name (a stream's)."""
    return f"{LOCK_PREFIX}:{schema or ''}:{name}"


class FileLock:
    """An exclusive `flock` on a file; the operating system frees it with the process."""

    def __init__(self, path: Path, handle: IO[str]) -> None:
        self.path = path
        self._handle = handle

    def release(self) -> None:
        """Unlock and close the file."""
        fcntl.flock(self._handle.fileno(), fcntl.LOCK_UN)
        self._handle.close()

    def watch(self, lost: threading.Event) -> None:
        """Nothing to watch: a `flock` lasts as long as its holder's file handle."""


def _lock_file(path: Path) -> IO[str]:
    """`path` opened for locking (created when missing); a file that cannot be (a read-only
    file system, a directory not ours) is a WarehouseError naming it, not a traceback."""
    try:
        return path.open("a+", encoding="utf-8")
    except OSError as exc:
        raise WarehouseError(
            f"cannot open the lock file {path} ({exc.strerror or exc}): sitoo-sync keeps its "
            "lock files there, so that directory must be writable"
        ) from exc


def try_file(path: Path) -> Lock | None:
    """The lock on `path` (created when missing, holding our pid), or None when held."""
    handle = _lock_file(path)
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
    except OSError as exc:  # a full disk: one line, as for a file that cannot be opened
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        handle.close()
        raise WarehouseError(
            f"cannot write the lock file {path} ({exc.strerror or exc}): sitoo-sync keeps its "
            "lock files there, so that file system must have room"
        ) from exc
    return FileLock(path, handle)


#: How long `holding_file` waits for a lock before the block runs without it (a holder
#: that hangs must not stall every later tick; MySQL's DDL lock gives up after as long).
FILE_WAIT_SECONDS = 300.0


@contextmanager
def holding_file(path: Path, *, wait: float = FILE_WAIT_SECONDS) -> Iterator[None]:
    """The lock on `path` (created when missing), held for the block: waited for (logged)
    up to `wait` seconds, after which the block runs without it, with a warning."""
    with _lock_file(path) as handle:
        held = _flock_within(handle, path, wait)
        try:
            yield
        finally:
            if held:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _flock_within(handle: IO[str], path: Path, wait: float) -> bool:
    """Take the exclusive lock on `handle` within `wait` seconds: True when taken."""
    deadline = time.monotonic() + wait
    logged = False
    while True:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                log.warning("lock_not_had", lock=path.name, waited_seconds=wait)
                return False
            if not logged:
                log.info("lock_wait", lock=path.name)
                logged = True
            time.sleep(0.05)


def file_lock(url: str, schema: str | None, name: str) -> Lock | None:
    """A `flock` beside a local database file, else one in the temp directory (one host)."""
    path = check_local_target(url)  # beside the file: never make its directory
    if path is not None:
        return try_file(Path(f"{path}.{name}.lock"))
    scheme = url.split("://", 1)[0].split("+", 1)[0].lower()
    digest = hashlib.sha256(f"{url}|{scoped_name(schema, name)}".encode()).hexdigest()[:16]
    log.warning("lock_is_host_local", stream=name, reason=f"no shared lock for {scheme}")
    return try_file(Path(tempfile.gettempdir()) / f"sitoo-sync-{digest}.lock")
