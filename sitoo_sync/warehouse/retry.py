"""A transaction that lost a conflict with another one is run again, whole, a few times.

Two writers on one server (replicas splitting a stream, the service's ticks) can meet on a
lock: a deadlock (MySQL/MariaDB 1213, PostgreSQL 40P01), a lock wait that timed out (1205)
or a serialization failure (40001). The server has then rolled back one side's work (or
one statement of it), and the cure is the one the server names: roll the transaction back
and run it again. DuckDB has one more such failure of its own: running out of its memory
limit, which it raises before the re-run. What is a conflict is the target's to say
(`Warehouse.conflict`, the dialect's for SQLAlchemy targets); anything else is raised at
once.

A body run here must be safe to run twice: everything it reads, it reads again inside the
transaction, and whatever it changes in memory it changes only after `retried` returns.
Inside a transaction the thread already has, the body joins it and is not retried alone:
the outer transaction is the one to run again.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any, TypeVar

from sitoo_sync.log import get_logger
from sitoo_sync.warehouse.base import Warehouse

log = get_logger(__name__)

T = TypeVar("T")

#: Runs of one transaction at most: the first and three more.
ATTEMPTS = 4
#: The pause before the first re-run; each next one doubles, every pause jittered +-50%.
FIRST_PAUSE = 0.05


class TransactionConflict(Exception):
    """A transaction kept losing conflicts with other writers and was given up."""


class Recovered(Exception):
    """Mixed into the error a warehouse raises for a transaction that failed for a cause
    it has removed since (DuckDB: its memory limit, raised): `retried` runs it again at
    once, without counting the run against `attempts`; the warehouse bounds how often it
    can recover (DuckDB's limit stops at a ceiling)."""


def pause_before(attempt: int, *, first: float = FIRST_PAUSE) -> float:
    """Seconds to wait before re-running after failed attempt `attempt` (1-based): short,
    growing, and jittered so two writers that met once do not meet again in step."""
    return first * 2.0 ** (attempt - 1) * random.uniform(0.5, 1.5)  # noqa: S311  (no secret)


def retried(
    warehouse: Warehouse,
    body: Callable[[], T],
    *,
    what: str,
    attempts: int = ATTEMPTS,
    sleep: Callable[[float], None] = time.sleep,
    **context: Any,
) -> T:
    """`body()` in one transaction of `warehouse`, run again whole after a conflict.

    Each re-run logs one `transaction_retried` warning (`what` and `context` say which
    transaction; no row data). After `attempts` runs that all lost a conflict, raises
    TransactionConflict (one of `warehouse.errors`, so a tick ends as on any warehouse
    failure); a run the warehouse `Recovered` from is not counted; any other error is
    raised as it is, at once.
    """
    if warehouse.in_transaction():  # joined: the outer transaction is re-run, not this part
        with warehouse.transaction():
            return body()
    run = counted = 0
    while True:
        run += 1
        try:
            with warehouse.transaction():
                return body()
        except warehouse.errors as exc:
            conflict = warehouse.conflict(exc)
            if conflict is None:
                raise
            recovered = isinstance(exc, Recovered)
            counted += not recovered
            if counted == attempts:
                log.error(
                    "transaction_given_up",
                    what=what,
                    conflict=conflict,
                    attempts=attempts,
                    **context,
                )
                raise TransactionConflict(
                    f"{what}: given up after {attempts} attempts, each ended by a conflict "
                    f"with another writer ({conflict}); the last: {str(exc).splitlines()[0]}"
                ) from exc
            pause = 0.0 if recovered else pause_before(counted)
            # A conflict's attempt is counted against `attempts`; a recovered run is not.
            count = {"run": run} if recovered else {"attempt": counted, "attempts": attempts}
            log.warning(
                "transaction_retried",
                what=what,
                conflict=conflict,
                **count,
                pause_seconds=round(pause, 3),
                **context,
            )
            sleep(pause)
