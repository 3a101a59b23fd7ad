"""The cycle collector during a tick: what was alive when the tick started is not searched.

CPython's cycle collector searches every object it tracks whenever it collects its oldest
generation, which it does once enough objects have outlived the younger ones. A tick starts
with ~100,000 objects it will not free (the ~400 modules it imported, the settings, a
service's state), and a no-op journal tick over 201 registers on PostgreSQL made enough
objects of its own for one such collection: 65-72 ms with the interpreter lock held, in
the middle of its requests (`gc.callbacks`). `gc.freeze()` when a tick starts moves what is
alive into a generation the collector leaves alone (in constant time); the tick's own
objects are collected as before, and that tick has no full collection left. Its wall time,
over eight alternating pairs: no change at concurrency 16, 1.13 -> 1.02 s at 32 (the
medians 1.07 -> 1.00 s; docs/benchmarks.md).

When the last tick under way ends, `gc.unfreeze()` hands everything back. That alone would
not free the cycles that died meanwhile among the frozen objects (a service's warehouse,
opened before its tick and closed at its end): an idle service allocates too little for a
full collection to run before the next tick freezes them again, so each tick would keep
its predecessor's. A long-lived process therefore calls `collect_if_idle()` after each
tick (service.py): one full collection while no tick is under way, off every tick's path.
A one-shot process (`run --once`, a CronJob) exits instead.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_ticks = 0  # ticks under way in this process (a service runs streams' ticks side by side)


@contextmanager
def frozen_before() -> Iterator[None]:
    """Inside, what was alive when the first tick under way began is not searched for
    cycles; after the last one ends, it is again."""
    global _ticks  # noqa: PLW0603  # one count per process, as the collector is one
    with _lock:
        if _ticks == 0:
            gc.freeze()
        _ticks += 1
    try:
        yield
    finally:
        with _lock:
            _ticks -= 1
            if _ticks == 0:
                gc.unfreeze()


def collect_if_idle() -> bool:
    """A full collection, unless a tick is under way (it runs after that one ends); True
    when it ran."""
    with _lock:
        if _ticks:
            return False
    gc.collect()
    return True
