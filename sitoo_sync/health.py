"""When a stream counts as late: the one rule of `/healthz` and `status --check`.

Kept apart from metrics.py so that the commands that only need the rule (`status`, the
CLI's help) do not load the Prometheus client.
"""

from __future__ import annotations

HEALTHY_WITHIN_INTERVALS = 3


def is_late(last_success: float | None, interval: float, now: float) -> bool:
    """True when a stream's last success (Unix time; None: never) is older than
    HEALTHY_WITHIN_INTERVALS of its schedule's intervals."""
    return last_success is None or now - last_success > HEALTHY_WITHIN_INTERVALS * interval
