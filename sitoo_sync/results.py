"""What one tick of one partition did: the record every report, metric and log line reads."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

Status = Literal["ok", "failed", "disabled"]


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
