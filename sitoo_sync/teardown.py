"""The end of a `sitoo-sync` process: what the interpreter need not do once a command is done.

When the interpreter exits, it clears every module and runs the cycle collector over every
object still alive: the ~400 modules a tick imports (SQLAlchemy, pyarrow, pydantic, httpx,
the streams' declarations) and what they hold. That cost 0.13-0.17 s of a `run --once`
against PostgreSQL on the 2-core development machine, paid by every CronJob tick and every
replica, with nothing left to release that exiting would not release anyway. Freezing the
collector's objects at exit (`gc.freeze`) keeps them out of that search; everything else still
happens in order: atexit handlers, module teardown, buffered output flushed, files closed.
"""

from __future__ import annotations

import atexit
import gc

_registered = False


def freeze_at_exit() -> None:
    """Once per process: at exit, keep the objects alive then from the final cycle search.

    Registered when a command starts, so it runs after the handlers registered later
    (atexit runs them last-in, first-out): any cleanup they do still finds what it needs.
    """
    global _registered  # noqa: PLW0603  # one registration per process, however often main runs
    if not _registered:
        atexit.register(gc.freeze)
        _registered = True
