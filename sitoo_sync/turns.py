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

The normalizing thread (`Joining`) also normalizes the windows waiting together in one
call, where the stream can. PostgreSQL's partitions work on their own threads, and gather
the windows handed over meanwhile into one call without a thread of their own (`Gathered`).
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeAlias, TypeVar

from sitoo_sync.warehouse.rounds import Rounds

T = TypeVar("T")


#: A stream's normalizer of one window: (records, context) -> its tables.
One: TypeAlias = Callable[[list[Any], Mapping[str, Any]], Any]
#: One partition's window handed to a normalizer: its records and the normalizer's context.
Window: TypeAlias = tuple[list[Any], Mapping[str, Any]]
#: A stream's normalizer of several partitions' windows at once, one result each.
Many: TypeAlias = Callable[[Sequence[Window]], list[Any]]


class Inline:
    """No turn to take: the work runs on the partition's own thread (PostgreSQL's loads)."""

    def run(self, work: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Run `work` here."""
        return work(*args, **kwargs)

    def normalize(
        self, one: One, many: Many | None, records: list[Any], context: Mapping[str, Any]
    ) -> Any:
        """A window normalized by `one` (a turn that serves many partitions may join it
        with other partitions' windows waiting at the same time, through `many`)."""
        return self.run(one, records, context)

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


class Joining(Inline):
    """One thread that normalizes every partition's windows, in the order they come; the
    windows waiting when it is free are normalized in one call where the stream can (`many`).

    Partitions that fetch side by side hand their windows over faster than one thread
    normalizes them one at a time when windows are small (a tick of 200 registers with a
    few dozen new entries each): each window then paid a normalizer call's fixed cost, and
    the thread was the tick's bottleneck. Joined, the call's cost is shared (journals: 2.2
    ms a 70-entry window alone, 0.6 ms eight at a time).
    """

    def __init__(self) -> None:
        self._jobs: deque[_Job] = deque()
        self._ready = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._serve, name="sitoo-normalize", daemon=True)
        self._thread.start()

    def run(self, work: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Run `work` on the thread and wait for it (inline when called from the thread);
        what it raises is raised here."""
        if threading.get_ident() == self._thread.ident:
            return work(*args, **kwargs)
        return self._wait(_Job(functools.partial(work, *args, **kwargs)))  # type: ignore[no-any-return]

    def normalize(
        self, one: One, many: Many | None, records: list[Any], context: Mapping[str, Any]
    ) -> Any:
        """`records` normalized on the thread, joined with the windows of other partitions
        waiting with it when the stream has `many`."""
        if many is None or threading.get_ident() == self._thread.ident:
            return self.run(one, records, context)
        return self._wait(
            _Job(functools.partial(one, records, context), (one, many), (records, context))
        )

    def _wait(self, job: _Job) -> Any:
        with self._ready:
            if self._closed:
                raise RuntimeError("the normalizing thread is closed")
            self._jobs.append(job)
            self._ready.notify()
        return job.done.result()

    def _serve(self) -> None:
        while self._serve_next():
            pass

    def _serve_next(self) -> bool:
        """Run the next job, or the jobs waiting that join it; False once closed and done.

        A call of its own, so the windows it normalized are not kept alive by this thread
        while it waits for the next (their pages are no longer in the tick's buffer)."""
        with self._ready:
            while not self._jobs and not self._closed:
                self._ready.wait()
            if not self._jobs:
                return False
            jobs = [self._jobs.popleft()]
            joins = jobs[0].joins
            while joins is not None and self._jobs and self._jobs[0].joins == joins:
                jobs.append(self._jobs.popleft())
        if joins is None or len(jobs) == 1:
            jobs[0].call()
            return True
        answers = _together(*joins, [job.window for job in jobs if job.window is not None])
        for job, answer in zip(jobs, answers, strict=True):
            if isinstance(answer, Exception):
                job.done.set_exception(answer)
            else:
                job.done.set_result(answer)
        return True

    def close(self) -> None:
        """Stop the thread once the work handed to it is done."""
        with self._ready:
            self._closed = True
            self._ready.notify()
        self._thread.join()


class Gathered(Inline):
    """No thread of its own: a partition normalizes its window on its own thread, and the
    windows other partitions hand over meanwhile are normalized with the next one, in one
    call where the stream can (`many`), by whichever of them finds none under way (Rounds).

    For a target whose partitions load on their own threads (PostgreSQL): a window alone
    costs no hand-over to another thread (a `Joining` thread cost a 201-register backfill
    at concurrency 4 1-4 % more time), and windows that arrive together still share a call.
    """

    def __init__(self) -> None:
        self._rounds: dict[tuple[One, Many], Rounds[Window, Any]] = {}
        self._lock = threading.Lock()

    def normalize(
        self, one: One, many: Many | None, records: list[Any], context: Mapping[str, Any]
    ) -> Any:
        """`records` normalized here, or in a round with other partitions' windows."""
        if many is None:
            return one(records, context)
        with self._lock:
            rounds = self._rounds.get((one, many))
            if rounds is None:
                rounds = Rounds(functools.partial(_together, one, many))
                self._rounds[one, many] = rounds
        return rounds.ask((records, context))


def _together(one: One, many: Many, windows: Sequence[Window]) -> list[Any]:
    """Each window normalized: by `many` in one call, or by `one` alone (a lone window, or
    every window when `many` fails); what a window's `one` raises is its answer, raised to
    that window's partition alone."""
    if len(windows) > 1:
        with contextlib.suppress(Exception):  # one window's fault: each goes alone below
            return many(windows)
    answers: list[Any] = []
    for records, context in windows:
        try:
            answers.append(one(records, context))
        except Exception as exc:
            answers.append(exc)
    return answers


@dataclass
class _Job:
    """A piece of work handed to a `Joining` thread, and its outcome once done."""

    work: Callable[[], Any]
    #: A window's normalizers (one, many) when it may be joined with others, and the window.
    joins: tuple[One, Many] | None = None
    window: Window | None = None
    done: Future[Any] = field(default_factory=Future)

    def call(self) -> None:
        """Run `work`, keeping what it returns or raises."""
        try:
            self.done.set_result(self.work())
        except BaseException as exc:  # raised in the partition's thread, which waits
            self.done.set_exception(exc)


INLINE = Inline()


class Turns:
    """Where a tick's partitions normalize (`normalize`) and run transactions (`write`)."""

    def __init__(self, normalize: Inline, write: Inline) -> None:
        self.normalize = normalize
        self.write = write

    @classmethod
    def workers(cls) -> Turns:
        """One thread for each."""
        return cls(Joining(), Worker())

    def close(self) -> None:
        """Stop the threads once their work is done."""
        self.normalize.close()
        self.write.close()


ANY_THREAD = Turns(INLINE, INLINE)  # each partition works on its own thread
