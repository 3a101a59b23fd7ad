"""Fault injection: what a hostile network and a busy API do to a client.

Two kinds of knob:
* scripted faults, queued for the next matching requests (`plan.queue("429", times=2)`),
  for tests that must see an exact sequence;
* background rates and latency (`FaultPlan(error_rate=0.05, latency=0.1)`), for demos
  and soak runs.

Kinds: an HTTP status the contract names (`429` with `Retry-After` when given, `500`,
`502`, `503`, `504`) with the vendor's error body; `html`, a 502 whose body is a proxy's
HTML page, not the vendor's error shape (a load balancer in front of the API answers so);
`drop`, the connection closed with no answer; `slow`, the answer after `seconds` (or at
`release`);
`truncate`, the real answer (its work done, e.g. orders settled after it was served) with
its full `Content-Length`, of which only the first half is sent before the connection
closes.
"""

from __future__ import annotations

import random
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Literal

FaultKind = Literal["429", "500", "502", "503", "504", "html", "drop", "slow", "truncate", "pass"]


@dataclass(frozen=True)
class Fault:
    """One injected fault for a request whose path contains `path`."""

    kind: FaultKind
    path: str = ""
    retry_after: float | None = None
    seconds: float = 0.0  # for "slow"


@dataclass
class FaultPlan:
    """Scripted faults first, then random ones at `error_rate`; `latency` on every request."""

    error_rate: float = 0.0
    latency: float = 0.0
    seed: int = 7
    #: What a background fault (at `error_rate`) is drawn from.
    random_kinds: tuple[FaultKind, ...] = ("429", "500", "503", "drop")
    _queue: deque[Fault] = field(default_factory=deque)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _rng: random.Random = field(init=False)
    #: `release` wakes the `slow` answers held at the time (a new generation).
    _held: threading.Condition = field(default_factory=threading.Condition)
    _generation: int = 0

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def queue(
        self,
        kind: FaultKind,
        *,
        times: int = 1,
        path: str = "",
        retry_after: float | None = None,
        seconds: float = 0.0,
        after: int = 0,
    ) -> None:
        """Make the next `times` requests to `path` fail with `kind`, `after` good ones."""
        with self._lock:
            for _ in range(after):
                self._queue.append(Fault("pass", path))
            for _ in range(times):
                self._queue.append(Fault(kind, path, retry_after, seconds))

    def clear(self) -> None:
        """Drop every scripted fault and the background rates."""
        with self._lock:
            self._queue.clear()
            self.error_rate = 0.0
            self.latency = 0.0

    def hold(self, seconds: float) -> None:
        """Hold a `slow` answer for `seconds`, or until `release` is called meanwhile."""
        with self._held:
            generation = self._generation
            self._held.wait_for(lambda: self._generation != generation, timeout=seconds)

    def release(self) -> None:
        """Answer every request a `slow` fault holds now, without waiting out its seconds;
        slow faults still queued hold their requests as before. A test done with slowness
        (after `clear`, say) need not wait for answers it no longer needs slow."""
        with self._held:
            self._generation += 1
            self._held.notify_all()

    def next_fault(self, path: str) -> Fault | None:
        """The fault for a request to `path`, if any."""
        with self._lock:
            for i, fault in enumerate(self._queue):
                if fault.path in path:
                    del self._queue[i]
                    return None if fault.kind == "pass" else fault
            if self.error_rate and self._rng.random() < self.error_rate:
                kind: FaultKind = self._rng.choice(self.random_kinds)
                return Fault(kind, retry_after=0 if kind == "429" else None)
        return None
