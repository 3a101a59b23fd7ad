"""What a tick holds between the network and the warehouse, bounded in bytes.

Memory is bounded by bytes in flight, never by history, rows or partitions: a tick's
partitions share one `Buffer` (SITOO_BUFFER_MB), half of it for pages fetched and not yet
normalized, half for normalized rows waiting in batches for their commit.

- A page is held from before its request until its partition has taken its window
  (normalized it, and committed the batch when that window filled it: the parsed records
  live until then), at its wire size times `PARSED_FACTOR` (what the parsed JSON costs as
  Python objects; msgspec's structs cost ~2x, so this errs on the safe side). Before a
  request the fetcher holds the largest page seen so far (at least `FIRST_PAGE`) and waits
  until that fits, or until nothing is held (a page larger than the whole half goes
  alone). Once the page is in, and before it is parsed, the hold grows to the page's real
  cost, waiting again until that fits; if every byte held belongs to fetchers waiting to
  grow, one of them goes on. So the pages held pass their half by at most one page, never
  by how many partitions run, also when the first pages of a tick are larger than the
  least a request holds.
- Rows are counted at their Arrow size. A batch is committed early when the rows of all
  batches together pass their half; it never waits, so no fetcher or commit can deadlock
  on the other. The rows held pass their half by at most the windows being normalized at
  that moment: one on an in-process target, where partitions normalize in turn.
"""

from __future__ import annotations

import threading
import time

from sitoo_sync.log import get_logger

log = get_logger(__name__)

#: A parsed journal page of 1,000 entries: 0.43 MB on the wire, 1.5 MB as Python objects.
PARSED_FACTOR = 3.5
_MB = 1024 * 1024
#: The least a request holds, and all it holds before any page was seen: small, so that
#: the first requests of a tick at high concurrency do not wait on each other (at 100 ms
#: per request that wait would show in every tick); it grows to the largest page seen.
FIRST_PAGE = 256 * 1024


class ByteBudget:
    """Bytes held against a limit, shared by threads; records the most ever held."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self.peak = 0
        self.largest = 0  # the largest single hold ever grown to (see `grow`)
        self.waits = 0  # acquisitions that had to wait for bytes to be given back
        self._growing = 0  # bytes held by threads waiting in `grow`
        self._growers = 0  # how many wait there
        self._cond = threading.Condition()

    def acquire(
        self, size: int, cancelled: threading.Event | None = None, *, patience: float = 60.0
    ) -> bool:
        """Wait until `size` more bytes fit (or nothing is held) and hold them; False when
        `cancelled` is set first (nothing is held then).

        After `patience` seconds it holds them anyway and says so: a safety valve against a
        hold nobody gives back, which would otherwise stop the tick.
        """
        deadline = time.monotonic() + patience
        with self._cond:
            if self._must_wait(size):
                self.waits += 1
            while self._must_wait(size):
                if cancelled is not None and cancelled.is_set():
                    return False
                if time.monotonic() >= deadline:
                    log.warning("buffer_wait_exceeded", held=self.used, limit=self.limit)
                    break
                self._cond.wait(0.1)
            self._hold(size)
            return True

    def _must_wait(self, size: int) -> bool:
        # Pages already fetched and waiting to grow go first: a new request would only add
        # one more page that cannot be parsed.
        return bool(self.used) and (self.used + size > self.limit or self._growers > 0)

    def grow(
        self,
        held: int,
        size: int,
        cancelled: threading.Event | None = None,
        *,
        patience: float = 60.0,
    ) -> None:
        """Turn a hold of `held` bytes into one of `size` (the real size, once known),
        waiting while a larger one does not fit.

        Waiting stops when it fits, when every byte held belongs to threads waiting here
        (none of them would give any back, so one goes on: the limit is passed by at most
        that one's growth), when `cancelled` is set, or after `patience` seconds.
        """
        extra = size - held
        deadline = time.monotonic() + patience
        with self._cond:
            self.largest = max(self.largest, size)
            if extra > 0 and self.used + extra > self.limit:
                self.waits += 1
                self._growing += held
                self._growers += 1
                self._cond.notify_all()  # those waiting here re-check who holds what
                try:
                    while self.used + extra > self.limit and self.used > self._growing:
                        if cancelled is not None and cancelled.is_set():
                            break
                        if time.monotonic() >= deadline:
                            log.warning("buffer_wait_exceeded", held=self.used, limit=self.limit)
                            break
                        self._cond.wait(0.1)
                finally:
                    self._growing -= held
                    self._growers -= 1
            self._hold(extra)
            if extra < 0 or self._growers:
                self._cond.notify_all()

    def add(self, size: int) -> None:
        """Hold `size` more bytes now, whatever is held (see `over`)."""
        with self._cond:
            self._hold(size)

    def release(self, size: int) -> None:
        """Give back `size` bytes held."""
        with self._cond:
            self.used -= size
            self._cond.notify_all()

    def over(self) -> bool:
        """True while more than the limit is held."""
        return self.used > self.limit

    def _hold(self, size: int) -> None:
        self.used += size
        self.peak = max(self.peak, self.used)


class Buffer:
    """A tick's bytes in flight: `pages` fetched and not yet normalized, `rows` batched."""

    def __init__(self, megabytes: float) -> None:
        half = int(megabytes * _MB / 2)
        self.pages = ByteBudget(half)
        self.rows = ByteBudget(half)

    @staticmethod
    def page_cost(wire_bytes: int) -> int:
        """What a page of `wire_bytes` holds once parsed."""
        return int(wire_bytes * PARSED_FACTOR)

    def page_estimate(self) -> int:
        """What to hold before a request: the largest page seen, at least `FIRST_PAGE`."""
        return max(self.pages.largest, FIRST_PAGE)

    def summary(self) -> dict[str, float]:
        """The most held of each half, and each half's limit, in MB (for the tick's log)."""
        return {
            "pages_peak_mb": round(self.pages.peak / _MB, 1),
            "rows_peak_mb": round(self.rows.peak / _MB, 1),
            "half_mb": round(self.pages.limit / _MB, 1),
        }
