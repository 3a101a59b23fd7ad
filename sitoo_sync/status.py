"""What `sitoo-sync status` shows: `sync_state` read back, made current, judged, rendered,
and each stream's last run from `sync_runs`.

Pure functions over `StreamState` and `RunRow` rows: the CLI opens the target, reads the rows
and prints what these return (a run whose process is gone shows as interrupted, see runs.py).
"Late" is the rule `/healthz` uses (`metrics.is_late`), so the two agree.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sitoo_sync.errors import ConfigError
from sitoo_sync.health import HEALTHY_WITHIN_INTERVALS, is_late
from sitoo_sync.normalize.tables import Table
from sitoo_sync.runs import RUNNING, shown
from sitoo_sync.service import stream_schedules
from sitoo_sync.settings import Settings
from sitoo_sync.streams import STREAMS, select_streams
from sitoo_sync.streams.base import Stream
from sitoo_sync.streams.cursors import epoch_time, json_cursor_time
from sitoo_sync.verify.source import to_utc
from sitoo_sync.warehouse.base import RunRow, StreamState


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


def cursor_text(state: StreamState, now: datetime) -> str:
    """A cursor as a reader wants it: an epoch cursor as its UTC time, a day as itself, a
    JSON cursor (a keyset's, a modified feed's: long, up to thousands of open ids) as the
    time it stands for (`status --json` has the cursor itself)."""
    cursor = state.cursor
    if cursor is None:
        return "-"
    if cursor.isdigit():  # out of range (milliseconds an older version stored): as is
        at = epoch_time(cursor)
        return cursor if at is None else f"{at:%Y-%m-%d %H:%M:%SZ}"
    if not cursor.startswith("{"):
        return cursor
    stream = STREAMS.get(state.stream)
    at = None if stream is None else json_cursor_time(stream.cursor, cursor, now)
    return "-" if at is None else f"{at:%Y-%m-%d %H:%M:%SZ}"


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


def stream_problems(
    settings: Settings,
    states: Sequence[StreamState],
    now: datetime,
    stored_sites: Mapping[str, Mapping[str, int]] | None = None,
    listed: Mapping[str, Mapping[str, datetime]] | None = None,
    *,
    runs: Mapping[str, RunRow] | None = None,
) -> list[str]:
    """Why `status --check` fails: per enabled stream, a failing partition, no success
    within HEALTHY_WITHIN_INTERVALS of its schedule's intervals (the /healthz rule), or a
    partition its listing showed that long ago and no tick has synced (an interrupted
    first backfill). `stored_sites` gives, per stream, the site of each partition whose
    value does not say it (a register's, from its table: `stored_sites_of`); `listed`,
    per stream, when each partition its table holds was first listed (`listed_since_of`);
    `runs`, each stream's last run as shown (`last_runs`): one still running is a first
    backfill under way, not an interrupted one."""
    streams = select_streams(settings.streams)
    schedules = stream_schedules(settings, streams)
    problems: list[str] = []
    for stream in streams:
        judged = _judged(settings, stream, (stored_sites or {}).get(stream.name, {}))
        mine = [s for s in states if s.stream == stream.name and judged(s.partition)]
        interval = schedules[stream.name].interval_seconds
        within = HEALTHY_WITHIN_INTERVALS * interval
        run = (runs or {}).get(stream.name)
        running = run.started_at if run is not None and run.status == RUNNING else None
        unsynced = _never_synced(
            (listed or {}).get(stream.name, {}), mine, judged, now, within, running_since=running
        )
        if unsynced:
            problems.append(f"{stream.name}: {unsynced}")
            continue
        failed = [s for s in mine if s.last_status == "failed"]
        if failed:
            where = ", ".join(s.partition for s in failed[:3]) + (" ..." if len(failed) > 3 else "")
            problems.append(f"{stream.name}: failing ({where}): {failed[0].last_status_detail}")
            continue
        active = [s for s in mine if s.last_status not in ("disabled", "gone")]
        if mine and not active:
            continue
        successes = [s.last_success_at.timestamp() for s in active if s.last_success_at]
        last = min(successes) if successes and len(successes) == len(active) else None
        if is_late(last, interval, now.timestamp()):
            limit = lag_text(within)
            age = "never" if last is None else f"{lag_text(now.timestamp() - last)} ago"
            problems.append(f"{stream.name}: late: last success {age}, limit {limit}")
    return problems


def _never_synced(
    listed: Mapping[str, datetime],
    states: Sequence[StreamState],
    judged: Callable[[str], bool],
    now: datetime,
    limit: float,
    *,
    running_since: datetime | None = None,
) -> str | None:
    """What to say of the partitions first listed more than `limit` seconds ago that have
    no `sync_state` row (no tick ever finished a window of them), if any: a first backfill
    interrupted, or one still running (since `running_since`) that has not got to them."""
    synced = {s.partition for s in states}
    due = now.timestamp() - limit
    never = sorted(
        (at, p)
        for p, at in listed.items()
        if judged(p) and p not in synced and at.timestamp() < due
    )
    if not never:
        return None
    shown_ = ", ".join(p for _, p in never[:3]) + (" ..." if len(never) > 3 else "")
    why = (
        "an interrupted first backfill: run it again"
        if running_since is None
        else f"a first backfill still running, since {when_text(running_since)}"
    )
    return (
        f"never synced: {len(never)} {'partition' if len(never) == 1 else 'partitions'} "
        f"({shown_}), listed since {when_text(never[0][0])} (limit {lag_text(limit)}; {why})"
    )


def listed_since_of(
    settings: Settings, latest: Callable[[Table, str, str, str], dict[Any, Any]]
) -> dict[str, dict[str, datetime]]:
    """Per enabled stream whose partitions its own listing table holds with `first_seen_at`
    (a register's listing row), when each partition still listed was first listed;
    `latest` is the warehouse's latest_values."""
    out: dict[str, dict[str, datetime]] = {}
    for stream in select_streams(settings.streams):
        stored = stream.partitions.stored
        if stored is None or "first_seen_at" not in stored[0].column_names:
            continue
        table, column = stored
        first = latest(table, column, "first_seen_at", "first_seen_at")
        gone = latest(table, column, "missing_since", "missing_since")
        out[stream.name] = {
            str(p): at
            for p, value in first.items()
            if p not in gone and isinstance(value, datetime | str) and (at := to_utc(value))
        }
    return out


def stored_sites_of(
    settings: Settings, latest: Callable[[Table, str, str, str], dict[Any, Any]]
) -> dict[str, dict[str, int]]:
    """Per enabled stream whose partitions' table names their site (a register's listing
    row, `Partitioning.stored_site`), each partition's site; `latest` is the warehouse's
    latest_values. Read only when SITOO_SITE_IDS narrows the sites."""
    if not settings.site_ids:
        return {}
    return {
        s.name: s.partitions.stored_sites(latest)
        for s in select_streams(settings.streams)
        if s.partitions.stored_site is not None
    }


def _judged(settings: Settings, stream: Stream, stored: Mapping[str, int]) -> Callable[[str], bool]:
    """Which of `stream`'s partitions count: those the settings name (the account, the
    sites of SITOO_SITE_IDS), and of listed ones those of a configured site where the
    partition says its site (a warehouse's `2/5`) or its table does (a register's); every
    one where nothing narrows it. A
    partition of a site taken out of SITOO_SITE_IDS is never synced again, so it cannot be
    late: its row stays in `sync_state` and in the table, but not in the judgment."""
    try:
        named = stream.partitions.values_from_settings(settings)
    except ConfigError:  # no account without an API ID: status needs none, so judge all
        return lambda _partition: True
    if named:
        chosen = set(named)
        return lambda partition: partition in chosen or partition == "*"
    sites = set(settings.site_ids)
    site_of = stream.partitions.sites_of(stored)

    def judged(partition: str) -> bool:
        site = None if partition == "*" else site_of(partition)
        return not sites or site is None or site in sites

    return judged


def _lag(state: StreamState, now: datetime) -> float | None:
    """How far the partition's cursor is behind `now`; None when unknown, also for a cursor
    its strategy cannot read (what a tick fails on and `reset` replaces): status shows it."""
    stream = STREAMS.get(state.stream)
    return None if stream is None else stream.lag_of(state.cursor, now)


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value else None


def _seconds(run: RunRow) -> float | None:
    if run.finished_at is None:
        return None
    return (run.finished_at - run.started_at).total_seconds()


def last_runs(runs: Sequence[RunRow]) -> dict[str, RunRow]:
    """Each stream's last run as a reader should see it (a dead "running" one interrupted)."""
    return {r.stream: shown(r) for r in runs}


def run_record(run: RunRow) -> dict[str, Any]:
    """One run for `status --json`: when, status, counts, duration, cursors, error."""
    return {
        "run_id": run.run_id,
        "started_at": _iso(run.started_at),
        "finished_at": _iso(run.finished_at),
        "status": run.status,
        "seconds": _seconds(run),
        "partitions": run.partitions,
        "rows_loaded": run.rows_loaded,
        "requests": run.requests,
        "rejects": run.rejects,
        "cursor_before": run.cursor_before,
        "cursor_after": run.cursor_after,
        "error": run.error,
    }


def runs_table(runs: Mapping[str, RunRow]) -> list[str]:
    """`status`: one aligned line per stream's last run, under a header."""
    header = ("stream", "last run", "run status", "rows", "requests", "took", "run id", "error")
    rows = [
        (
            r.stream,
            when_text(r.started_at),
            r.status,
            "-" if r.rows_loaded is None else str(r.rows_loaded),
            "-" if r.requests is None else str(r.requests),
            lag_text(_seconds(r)),
            r.run_id,
            detail_text(r.error, 60),
        )
        for r in runs.values()
    ]
    return _aligned(header, rows)


def _aligned(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> list[str]:
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
    return [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in (header, *rows)
    ]


def as_records(
    states: Sequence[StreamState], now: datetime, runs: Mapping[str, RunRow] | None = None
) -> list[dict[str, Any]]:
    """`status --json`: every field of every row, times in ISO 8601, details whole; with
    `runs`, each row also carries its stream's last run (`last_run`, null before any), and a
    stream that ran without a partition row yet (killed or failed before its first commit)
    is one row of its own: `partition` and every state field null, its `last_run` set."""
    last = runs or {}
    seen = {s.stream for s in states}
    blank = dict.fromkeys(_record(_NO_STATE, now, None))  # a row's every field, null
    unrecorded = [
        {**blank, "stream": name, "last_run": run_record(run)}
        for name, run in sorted(last.items())
        if name not in seen
    ]
    return unrecorded + [_record(s, now, last.get(s.stream)) for s in states]


def _record(s: StreamState, now: datetime, run: RunRow | None) -> dict[str, Any]:
    """One `status --json` row: a partition's state and its stream's last run."""

    def iso(value: datetime | None) -> str | None:
        return value.isoformat() if value else None

    return {
        "stream": s.stream,
        "partition": s.partition,
        "cursor": s.cursor,
        "cursor_text": None if s.cursor is None else cursor_text(s, now),
        "rows_loaded": s.rows_loaded,
        "windows_loaded": s.windows_loaded,
        "updated_at": iso(s.updated_at),
        "last_success_at": iso(s.last_success_at),
        "last_error_at": iso(s.last_error_at),
        "last_error": s.last_error,
        "last_status": s.last_status,
        "last_status_detail": s.last_status_detail,
        "lag_seconds": _lag(s, now),
        "last_run": None if run is None else run_record(run),
    }


#: A state with nothing in it, whose `_record` names the fields of a row.
_NO_STATE = StreamState(
    stream="",
    partition="",
    cursor=None,
    rows_loaded=0,
    windows_loaded=0,
    updated_at=None,
    last_success_at=None,
    last_error_at=None,
    last_error=None,
)


def as_table(states: Sequence[StreamState], now: datetime) -> list[str]:
    """`status`: one aligned line per stream and partition, under a header."""
    header = ("stream", "partition", "status", "cursor", "lag", "last success", "rows", "detail")
    rows = [
        (
            s.stream,
            s.partition,
            s.last_status or "-",
            cursor_text(s, now),
            lag_text(_lag(s, now)),
            when_text(s.last_success_at),
            str(s.rows_loaded),
            detail_text(s.last_status_detail),
        )
        for s in states
    ]
    return _aligned(header, rows)


def as_text(
    states: Sequence[StreamState], runs: Mapping[str, RunRow], now: datetime, *, nothing: str = ""
) -> list[str]:
    """`status`: the partitions' table (`nothing` instead when there is no partition yet),
    then (after a blank line) each stream's last run: also a run that committed nothing,
    killed or failed before its first commit."""
    lines = as_table(states, now) if states or not nothing else [nothing]
    if runs:
        lines += ["", *runs_table(runs)]
    return lines
