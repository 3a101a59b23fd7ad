"""`sitoo-sync reset`: move a stream's cursors back, so the next tick reads again.

Rows are never deleted. What is read again is upserted on its key and its children are
replaced as a set, so a reset can only add what was missing and correct what changed:
the way to re-load a period after a fix, or to backfill from an earlier day.

That holds for an immutable stream (journals, warehouse transactions) too, whose ordinary
ticks skip the records they read again and have stored: the outcome `reset` marks each
partition reset, and until a tick of it reaches the present its ticks load every record
they read from its cursor on, stored or not (`StoredCursors`, partition.py). A tick cut
short (a stop, a kill, a failure) leaves the mark, so the next one goes on normalizing the
period again from where that one committed.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime

from sitoo_sync.errors import ConfigError, SitooSyncError
from sitoo_sync.settings import Settings
from sitoo_sync.streams.base import Stream
from sitoo_sync.warehouse.base import RESET, SYSTEM_TABLES, Warehouse
from sitoo_sync.warehouse.retry import retried


def reset_stream(
    settings: Settings,
    warehouse: Warehouse,
    stream: Stream,
    *,
    partition: str | None = None,
    since: date | None = None,
) -> list[str]:
    """Set the cursor of every (or one) partition of `stream`; the partitions reset ([]:
    nothing was there to reset).

    Without `since` the cursor is cleared, and the next tick starts as a first one does
    (where the stream's own `start` setting says, or the beginning): a partition no tick
    has read yet starts there anyway, so it is not reset. A stream whose partitions follow
    from the settings (the account, the sites) can be given a starting day before its
    first tick; listed partitions (registers) must have been seen once.
    """
    if stream.full_refresh:
        raise ConfigError(
            f"{stream.name} reads its whole listing on every tick: there is no cursor to reset"
        )
    warehouse.ensure_schema(SYSTEM_TABLES)
    # Partition `*` records a listing that failed, not a partition: it has no cursor, and
    # "reset" would hide that failure from `status` until the next tick.
    stored = {
        s.partition: s.cursor
        for s in warehouse.states()
        if s.stream == stream.name and s.partition != "*"
    }
    known = sorted(stored)
    named = [] if known else stream.partitions.values_from_settings(settings) or []
    if partition is not None:
        if partition not in known and partition not in named:
            raise ConfigError(
                f"{stream.name} has no partition {partition!r} (known: "
                f"{', '.join(known or named) or 'none yet'}; `sitoo-sync status` lists them)"
            )
        known = [partition] if partition in known or since is not None else []
    elif since is not None:
        known = known or named
    cursors = (
        {key: None for key in known}
        if since is None
        else _cursors_back_to(stream, since, stored, known)
    )
    detail = f"reset to read again from {since or 'the start'} by sitoo-sync reset"
    for key in known:

        def move(key: str = key) -> None:
            warehouse.set_cursor(stream.name, key, cursors[key], rows=0, windows=0)
            warehouse.record_outcome(stream.name, key, RESET, detail)

        # Run again whole after a conflict, or after DuckDB ran short of memory and raised
        # its limit (retry.py): a cursor moved and its outcome are one transaction.
        retried(warehouse, move, what="cursor reset", stream=stream.name, partition=key)
    return known


def _cursors_back_to(
    stream: Stream, since: date, stored: Mapping[str, str | None], partitions: list[str]
) -> dict[str, str | None]:
    """Each partition's cursor that resumes from `since` (keeping what its old one says
    must still be read again), refused where it would skip what is unread."""
    now = datetime.now(UTC)
    if since > now.date():
        raise ConfigError(f"--since {since} is in the future")
    cursors: dict[str, str | None] = {
        key: stream.cursor.resume_from(since, stored.get(key)) for key in partitions
    }
    lags = {key: _lag_of(stream, old, now) for key in partitions if (old := stored.get(key))}
    untold = [key for key, lag in lags.items() if lag is None]
    if untold:
        raise ConfigError(
            f"--since {since}: where {stream.name} has read to cannot be told by time "
            f"({', '.join(untold)}: a cursor without one, as an older version stored it), so a "
            "reset from a day could skip what is unread; reset without --since to read it "
            "again from the start"
        )
    ahead = [
        key
        for key, lag in lags.items()
        if (stream.cursor.lag_seconds(cursors[key], now) or 0.0) < (lag or 0.0)
    ]
    if ahead:
        raise ConfigError(
            f"--since {since} is past where {stream.name} has read to ({', '.join(ahead)}): "
            "a reset only moves back; what lies between would never be read"
        )
    return cursors


def _lag_of(stream: Stream, cursor: str, now: datetime) -> float | None:
    """How far a stored cursor is behind `now`: 0 for one its strategy cannot read (it
    tells nothing of where the stream has read to, and a reset is the way to replace it),
    None for one it reads that holds no time (a keyset's bare id: where it stands in time
    is unknown, so a day may be past it)."""
    try:
        return stream.cursor.lag_seconds(cursor, now)
    except (SitooSyncError, ValueError, TypeError):
        return 0.0
