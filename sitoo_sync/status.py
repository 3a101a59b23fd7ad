"""What `sitoo-sync status` shows: `sync_state` read back, made current, judged, rendered.

Pure functions over `StreamState` rows: the CLI opens the target, reads the rows and prints
what these return. "Late" is the rule `/healthz` uses (`metrics.is_late`), so the two agree.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sitoo_sync.metrics import HEALTHY_WITHIN_INTERVALS, is_late
from sitoo_sync.service import stream_schedules
from sitoo_sync.settings import Settings
from sitoo_sync.streams import STREAMS, select_streams
from sitoo_sync.warehouse.base import StreamState


def when_text(value: datetime | None) -> str:
    """A UTC time to the second, or `-`."""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ") if value else "-"


def lag_text(seconds: float | None) -> str:
    """A duration in its largest unit: `3.0d`, `1.5h`, `12.0m`, `40s`; `-` when unknown."""
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


def cursor_text(cursor: str | None) -> str:
    """A cursor as a reader wants it: an epoch cursor as its UTC time, a day as itself."""
    if cursor is None:
        return "-"
    if cursor.isdigit():
        return f"{datetime.fromtimestamp(int(cursor), UTC):%Y-%m-%d %H:%M:%SZ}"
    return cursor


def detail_text(detail: str | None, width: int = 80) -> str:
    """The status detail cut at a word, with an ellipsis, when it is longer than `width`."""
    return textwrap.shorten(detail, width, placeholder=" ...") if detail else "-"


def current_states(states: Sequence[StreamState]) -> list[StreamState]:
    """`sync_state` rows without a listing failure (partition *) that a later success of the
    same stream has superseded: the listing works again once a partition succeeded after it."""
    latest: dict[str, datetime] = {}
    for s in states:
        if s.partition != "*" and s.last_success_at is not None:
            latest[s.stream] = max(latest.get(s.stream, s.last_success_at), s.last_success_at)
    return [
        s
        for s in states
        if s.partition != "*"
        or s.last_error_at is None
        or s.stream not in latest
        or s.last_error_at > latest[s.stream]
    ]


def stream_problems(settings: Settings, states: Sequence[StreamState], now: datetime) -> list[str]:
    """Why `status --check` fails: per enabled stream, a failing partition, or no success
    within HEALTHY_WITHIN_INTERVALS of its schedule's intervals (the /healthz rule)."""
    streams = select_streams(settings.streams)
    schedules = stream_schedules(settings, streams)
    problems: list[str] = []
    for stream in streams:
        mine = [s for s in states if s.stream == stream.name]
        failed = [s for s in mine if s.last_status == "failed"]
        if failed:
            where = ", ".join(s.partition for s in failed[:3]) + (" ..." if len(failed) > 3 else "")
            problems.append(f"{stream.name}: failing ({where}): {failed[0].last_status_detail}")
            continue
        active = [s for s in mine if s.last_status != "disabled"]
        if mine and not active:
            continue
        successes = [s.last_success_at.timestamp() for s in active if s.last_success_at]
        interval = schedules[stream.name].interval_seconds
        last = min(successes) if successes and len(successes) == len(active) else None
        if is_late(last, interval, now.timestamp()):
            limit = lag_text(HEALTHY_WITHIN_INTERVALS * interval)
            age = "never" if last is None else f"{lag_text(now.timestamp() - last)} ago"
            problems.append(f"{stream.name}: late: last success {age}, limit {limit}")
    return problems


def _lag(state: StreamState, now: datetime) -> float | None:
    stream = STREAMS.get(state.stream)
    return stream.cursor.lag_seconds(state.cursor, now) if stream else None


def as_records(states: Sequence[StreamState], now: datetime) -> list[dict[str, Any]]:
    """`status --json`: every field of every row, times in ISO 8601, details whole."""

    def iso(value: datetime | None) -> str | None:
        return value.isoformat() if value else None

    return [
        {
            "stream": s.stream,
            "partition": s.partition,
            "cursor": s.cursor,
            "cursor_text": None if s.cursor is None else cursor_text(s.cursor),
            "rows_loaded": s.rows_loaded,
            "windows_loaded": s.windows_loaded,
            "updated_at": iso(s.updated_at),
            "last_success_at": iso(s.last_success_at),
            "last_error_at": iso(s.last_error_at),
            "last_error": s.last_error,
            "last_status": s.last_status,
            "last_status_detail": s.last_status_detail,
            "lag_seconds": _lag(s, now),
        }
        for s in states
    ]


def as_table(states: Sequence[StreamState], now: datetime) -> list[str]:
    """`status`: one aligned line per stream and partition, under a header."""
    header = ("stream", "partition", "status", "cursor", "lag", "last success", "rows", "detail")
    rows = [
        (
            s.stream,
            s.partition,
            s.last_status or "-",
            cursor_text(s.cursor),
            lag_text(_lag(s, now)),
            when_text(s.last_success_at),
            str(s.rows_loaded),
            detail_text(s.last_status_detail),
        )
        for s in states
    ]
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
    return [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in (header, *rows)
    ]
