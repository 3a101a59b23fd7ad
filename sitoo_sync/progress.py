"""How far a long tick has come: a line per stream on a terminal, a log line off one.

`Progress` is an `on_window` callback (see `sync.run_once`): after every committed batch it
gets the partition's running result. Per stream it totals windows and rows over partitions,
turns the furthest-behind cursor into the date it stands at, and estimates the time left
from how fast that date has approached now. On a terminal the stream's line is rewritten in
place; elsewhere (cron, a container's log) a `backfill_progress` event is logged every
`every` seconds per stream.
"""

from __future__ import annotations

import os
import shutil
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TextIO

from sitoo_sync.log import get_logger, show_status_line
from sitoo_sync.results import PartitionResult

log = get_logger(__name__)

#: A terminal's progress line is drawn again at most this often.
DRAW_SECONDS = 0.2


def plural(count: int, word: str) -> str:
    """`1 window`, `2 windows`."""
    return f"{count:,} {word}{'' if count == 1 else 's'}"


def duration_text(seconds: float) -> str:
    """A rough duration a person reads at a glance: 45s, 12m, 3.5h, 2.1d."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}" if unit != "m" else f"{seconds / size:.0f}m"
    return f"{seconds:.0f}s"


def terminal_columns(out: TextIO) -> int:
    """How many columns wide the terminal `out` writes to is: COLUMNS, or 80, for one that
    does not say (a pseudo-terminal without a size); no limit for a stream that is no file
    (nothing to measure)."""
    try:
        columns = os.get_terminal_size(out.fileno()).columns
    except (AttributeError, OSError, ValueError):
        return sys.maxsize
    return columns if columns > 0 else shutil.get_terminal_size().columns


def fitted(line: str, columns: int) -> str:
    """`line` cut to fit a terminal `columns` wide, less one column: a line that wraps
    cannot be rewritten in place (`\r` goes back to its last row only)."""
    return line[: max(columns - 1, 1)]


@dataclass
class _StreamProgress:
    started: float
    partitions: dict[str, PartitionResult] = field(default_factory=dict)
    first_lag: float | None = None
    last_logged: float | None = None  # the first window is logged at once
    last_drawn: float | None = None  # on a terminal


class Progress:
    """Per-stream progress of one tick (thread-safe: partitions report from several threads)."""

    def __init__(
        self,
        out: TextIO,
        *,
        live: bool | None = None,
        every: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        columns: Callable[[], int] | None = None,
    ) -> None:
        self._out = out
        self._columns = columns or (lambda: terminal_columns(out))
        self._live = out.isatty() if live is None else live
        self._every = every
        self._clock = clock
        self._now = now
        self._lock = threading.Lock()
        self._streams: dict[str, _StreamProgress] = {}
        self._shown = ""
        self._stale = False  # the terminal's line leaves out a batch (see DRAW_SECONDS)
        self._line = ""  # what the terminal's last line shows now

    def __call__(self, result: PartitionResult) -> None:
        """on_window: the partition's running result after each committed batch.

        Describing the stream walks all its partitions, so it is done only when shown: on a
        terminal at most every DRAW_SECONDS, in the log every `every` seconds. (Done on
        every batch, it cost a 201-register tick 201 x 201 cursor lags.)
        """
        with self._lock:
            at = self._clock()
            state = self._streams.setdefault(result.stream, _StreamProgress(started=at))
            state.partitions[result.partition] = result
            if self._live:
                drawn = state.last_drawn
                recent = drawn is not None and at - drawn < DRAW_SECONDS
                if recent and self._shown == result.stream:
                    self._stale = True
                    return
                state.last_drawn = at
                self._draw(result.stream, state, at)
            elif state.last_logged is None or at - state.last_logged >= self._every:
                state.last_logged = at
                _line, fields = self._describe(result.stream, state, at)
                log.info("backfill_progress", stream=result.stream, **fields)

    def _draw(self, stream: str, state: _StreamProgress, at: float) -> None:
        """Show `stream`'s line on the terminal (below the last stream's, if another)."""
        line, _fields = self._describe(stream, state, at)
        if self._shown and self._shown != stream:
            print(file=self._out)
        if not self._shown:
            show_status_line(lambda: self._line)
        self._shown = stream
        self._line = fitted(f"  {line}", self._columns())  # read again: a terminal resizes
        self._stale = False
        print(f"\r\033[K{self._line}", end="", file=self._out, flush=True)

    def _describe(
        self, stream: str, state: _StreamProgress, at: float
    ) -> tuple[str, dict[str, object]]:
        from sitoo_sync.streams import STREAMS

        parts = state.partitions.values()
        windows = sum(r.windows for r in parts)
        rows = sum(r.rows for r in parts)
        many = f"{plural(len(parts), 'partition')}, " if len(parts) > 1 else ""
        line = f"{stream}: {many}{plural(windows, 'window')}, {plural(rows, 'row')}"
        fields: dict[str, object] = {"partitions": len(parts), "windows": windows, "rows": rows}
        known = STREAMS.get(stream)
        now = self._now()
        lags = [
            lag
            for r in parts
            if known is not None and (lag := known.cursor.lag_seconds(r.cursor, now)) is not None
        ]
        if not lags:
            return line, fields
        lag = max(lags)  # the partition furthest behind decides when the stream is done
        at_date = now - timedelta(seconds=lag)
        line += f", at {at_date:%Y-%m-%d %H:%M}Z ({duration_text(lag)} behind now)"
        fields.update(cursor_at=at_date.isoformat(timespec="seconds"), behind_seconds=int(lag))
        if state.first_lag is None:
            state.first_lag = lag
        elapsed = at - state.started
        gained = state.first_lag - lag
        if gained > 0 and elapsed > 0 and lag > 0:
            left = lag / (gained / elapsed)
            line += f", about {duration_text(left)} left"
            fields["seconds_left"] = int(left)
        return line, fields

    def done(self) -> None:
        """End the last line on a terminal (drawn again first when it is behind)."""
        with self._lock:
            if self._live and self._stale and self._shown:
                self._draw(self._shown, self._streams[self._shown], self._clock())
        if self._live and self._shown:
            show_status_line(None)
            print(file=self._out)
