"""When a stream counts as late: the one rule of `/healthz` and `status --check`.

Kept apart from metrics.py so that the commands that only need the rule (`status`, the
CLI's help) do not load the Prometheus client.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sitoo_sync.warehouse.base import StreamState

HEALTHY_WITHIN_INTERVALS = 3

#: Outcomes of a partition that no longer syncs: it cannot be late.
_AT_REST = ("disabled", "gone")


def is_late(last_success: float | None, interval: float, now: float) -> bool:
    """True when a stream's last success (Unix time; None: never) is older than
    HEALTHY_WITHIN_INTERVALS of its schedule's intervals."""
    return last_success is None or now - last_success > HEALTHY_WITHIN_INTERVALS * interval


def stored_last_success(
    states: Iterable[StreamState], partitions: Collection[str] | None = None
) -> float | None:
    """A stream's last success as its `sync_state` rows (`states`) keep it, in Unix time:
    the oldest last success of the partitions that sync (`partitions` when the settings
    name them, else every one stored; the listing's `*` row and those disabled or gone
    aside), so no partition is older. None when one of them never succeeded."""
    rows = [s for s in states if s.partition != "*"]
    if partitions is not None:
        if set(partitions) - {s.partition for s in rows}:
            return None  # a partition no tick has finished yet
        rows = [s for s in rows if s.partition in partitions]
    active = [s for s in rows if s.last_status not in _AT_REST]
    successes = [s.last_success_at.timestamp() for s in active if s.last_success_at]
    return min(successes) if active and len(successes) == len(active) else None
