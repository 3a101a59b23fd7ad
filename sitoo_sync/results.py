"""What one tick of one partition did: the record every report, metric and log line reads."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

#: "gone": the API no longer knows the partition (404) and the tick's full listing no longer
#: shows it (a warehouse deleted in Sitoo): not a failure, and tried again next tick.
Status = Literal["ok", "failed", "disabled", "gone"]


@dataclass
class PartitionResult:
    """What one tick of one (stream, partition) did."""

    stream: str
    partition: str
    status: Status = "ok"
    windows: int = 0
    rows: int = 0
    rejects: int = 0
    requests: int = 0
    cursor: str | None = None
    error: str | None = None
    seconds: float = 0.0
    notes: Counter[str] = field(default_factory=Counter)
    #: The API answered 404 for it: gone, when the tick's listing no longer shows it either.
    not_found: bool = False
    #: A stop (SIGTERM, a lost lock) ended it between windows, short of the present: what it
    #: loaded is committed, but it is not caught up (its log line says "stopped").
    stopped: bool = False
