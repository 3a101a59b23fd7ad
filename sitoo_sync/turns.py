"""Where a partition's work after a page arrives runs: inline, or on the tick's workers.

Partitions of a tick fetch side by side. On an in-process engine (DuckDB, SQLite) or a
single writer (MySQL), what follows a page takes turns: see `sync._load_turn` for why.
`Turns` are those turns as two threads: one normalizes every partition's pages, one runs
every transaction. Each partition hands its work to them and waits, so the work runs in
the order it would under a lock, and normalizing (Python) still overlaps loading (the
engine, which lets go of the GIL). But it allocates on two threads instead of on whichever
of forty partition threads held the lock, and each thread that allocates keeps caches of
its own: at SITOO_CONCURRENCY=32 a 300k-entry journal backfill into DuckDB peaked at
350-358 MB instead of 390-397 MB, in the same time.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


class Inline:
    """No turn to take: the work runs on the partition's own thread (PostgreSQL)."""

    def run(self, work: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Run `work` here."""
        return work(*args, **kwargs)

    def close(self) -> None:
        """Nothing to stop."""


class Worker(Inline):
    """One thread that runs the work of every partition, one piece at a time."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="sitoo-turn")
        self._ident: int | None = None

    def run(self, work: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Run `work` on the worker and wait for it (inline when called from the worker);
        what it raises is raised here."""
        if threading.get_ident() == self._ident:
            return work(*args, **kwargs)
        return self._pool.submit(self._call, work, args, kwargs).result()

    def _call(self, work: Callable[..., T], args: Any, kwargs: Any) -> T:
        self._ident = threading.get_ident()
        return work(*args, **kwargs)

    def close(self) -> None:
        """Stop the thread once the work handed to it is done."""
        self._pool.shutdown(wait=True)


INLINE = Inline()


class Turns:
    """Where a tick's partitions normalize (`normalize`) and run transactions (`write`)."""

    def __init__(self, normalize: Inline, write: Inline) -> None:
        self.normalize = normalize
        self.write = write

    @classmethod
    def workers(cls) -> Turns:
        """One thread for each."""
        return cls(Worker(), Worker())

    def close(self) -> None:
        """Stop the threads once their work is done."""
        self.normalize.close()
        self.write.close()


ANY_THREAD = Turns(INLINE, INLINE)  # each partition works on its own thread
