"""DuckDB's memory limit in this process: where it starts, and how work that runs out of it
raises it.

DuckDB holds its own memory (buffer pool, caches) to a limit and spills what does not fit
to the file's temp directory. What it cannot spill can need more: a commit's blocks, more
for a bigger transaction (at 64 MB, 1M-row transactions failed after 6M rows; 50,000-row
ones ran to 20M rows at 32 MB; docs/benchmarks.md, eighteenth session). Running short:

- a statement raises `OutOfMemoryException` and aborts its transaction, which rolls back;
- a commit raises `TransactionException` ("Failed to commit: could not allocate block")
  and has either rolled back, or left the database invalidated (every later statement on
  the file in this process raises `FatalException` until it is opened again), and then
  whether it landed is known only to the next opening.

So the DuckDB target (duckdb.py) runs the work again under a doubled limit, up to
MEMORY_LIMIT_CEILING_MB: a transaction whole (`MemoryLimitRaised`, which `retry.retried`
runs again), a statement of its own in place; never after the database was invalidated,
nor a statement of its own whose commit failed. One limit per file: every connection of
the process to a file shares DuckDB's one instance of it, and its limit.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

import duckdb

from sitoo_sync.warehouse.retry import Recovered

#: DuckDB's limit for a file at first (the connections' config) ...
MEMORY_LIMIT_MB = 64
#: ... raised on demand up to this: a need beyond it is not a passing one.
MEMORY_LIMIT_CEILING_MB = 1024
#: The limit for a big read that asks for it (verify's time lines over a year of a chain:
#: 7.2 s with this, 13.3 s spilling at 64 MB).
BIG_READ_MEMORY_LIMIT_MB = 2048

#: How DuckDB words a commit that failed for want of memory.
_FAILED_COMMIT = "Failed to commit:"
_ALLOCATION = ("could not allocate block", "failed to pin block", "failed to allocate data")


class MemoryLimitRaised(duckdb.OutOfMemoryException, Recovered):
    """A transaction ran out of DuckDB's memory limit, rolled back, and the limit has
    been raised since: it can run again (`retry.retried` does)."""


def ran_out_of_memory(exc: BaseException) -> bool:
    """`exc` is a statement that ran out of DuckDB's memory limit, or a commit that failed
    for it (which may have invalidated the database: see the module doc)."""
    if isinstance(exc, duckdb.OutOfMemoryException):
        return True
    text = str(exc)
    return (
        isinstance(exc, duckdb.TransactionException)
        and _FAILED_COMMIT in text
        and any(word in text for word in _ALLOCATION)
    )


def file_key(path: str) -> str:
    """One key per database file however its path is spelled (`:memory:` as it is: the
    in-memory databases of a process share a limit, which only ever lets them have more)."""
    return path if path.startswith(":") else os.path.realpath(path)


class Limits:
    """The memory limit of each DuckDB file open in this process, raised and never lowered."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._mb: dict[str, int] = {}

    def of(self, key: str) -> int:
        """The file's limit now, in MB."""
        return self._mb.get(key, MEMORY_LIMIT_MB)

    def lift(self, key: str, mb: int, apply: Callable[[int], None]) -> None:
        """At least `mb` from now on (a big read's); `apply(mb)` sets it in DuckDB."""
        with self._lock:
            if mb > self.of(key):
                self._mb[key] = mb
                apply(mb)

    def raise_after(
        self, key: str, seen_mb: int, apply: Callable[[int], None]
    ) -> tuple[int, bool] | None:
        """After work on the file ran out under a limit of `seen_mb`: (the limit to run it
        again under, whether this call raised it), or None at MEMORY_LIMIT_CEILING_MB.

        A limit above `seen_mb` is the one to use (another thread or warehouse raised it
        meanwhile); else `seen_mb` doubled. Either is set by `apply(mb)` under the lock, so
        two raises never race and none lowers what another made, and `apply` is always
        run: it is what finds a database invalidated (it raises FatalException), which no
        work may run again on. The raised limit is kept even then: the next opening starts
        there.
        """
        with self._lock:
            current = self.of(key)
            if current > seen_mb:
                apply(current)
                return current, False
            if seen_mb >= MEMORY_LIMIT_CEILING_MB:
                return None
            raised = min(seen_mb * 2, MEMORY_LIMIT_CEILING_MB)
            self._mb[key] = raised
            apply(raised)
            return raised, True


#: Every DuckDB file's limit in this process.
LIMITS = Limits()
