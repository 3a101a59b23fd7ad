"""What a stream is: one declaration of an endpoint, everything the engine needs to sync it.

The engine (partition.py, sync.py, reset.py, service.py, cli.py) reads these fields and
nothing else; it knows no stream by name. A new endpoint is one module in streams/ with one
`Stream(...)`, its tables and rules in normalize/, and one line in the registry.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sitoo_sync.api.client import Api
from sitoo_sync.errors import SitooSyncError
from sitoo_sync.normalize.records import NormalizedWindow
from sitoo_sync.normalize.tables import Kind, Table, with_load_metadata
from sitoo_sync.streams.cursors import CursorStrategy
from sitoo_sync.streams.options import Option, option_values
from sitoo_sync.streams.partitions import ACCOUNT, Partitioning

Normalize = Callable[[Iterable[Any], Mapping[str, Any]], NormalizedWindow]


@dataclass(frozen=True)
class TickSources:
    """What a stream's `tick_context` hook may read, once at the start of its tick.

    `latest(table, by, value, order)`: per distinct `by` value, the non-null `value` of the
    row with the greatest `order` ({} before the table exists), in one query of the warehouse.
    `get(api, path)`: one GET of the Sitoo API (decoded JSON; SitooSyncError when it fails),
    safe to call from several threads at once.
    `concurrency`: how many of the hook's GETs may be in flight at once (SITOO_CONCURRENCY
    where the engine passes it; one at a time where nobody says).
    """

    latest: Callable[[Table, str, str, str], Mapping[Any, Any]]
    get: Callable[[Api, str], Any]
    now: datetime
    concurrency: int = 1


@dataclass(frozen=True)
class Stream:
    """One endpoint as data.

    The first of `tables` is the parent: its declared key is the stream's key (declared
    once, on the table). `items` unwraps a response: the tolerant reader accepts a bare
    array or an `{"items": [...]}` envelope.
    """

    name: str
    api: Api
    path: str  # `{siteid}`-style placeholders are filled from the partition
    cursor: CursorStrategy
    tables: tuple[Table, ...]
    normalize: Normalize
    description: str
    default_schedule: str = "15m"  # how often the service syncs it (SITOO_SCHEDULES overrides)
    #: What one cursor covers: see streams/partitions.py.
    partitions: Partitioning = ACCOUNT
    #: The stream's own settings: fields of `cursor` (streams/options.py).
    options: tuple[Option, ...] = ()
    #: Synced when SITOO_STREAMS is unset; an opt-in stream is off unless named there.
    enabled_by_default: bool = True
    #: Every tick lists everything: rows of the partition not seen get `missing_since`.
    full_refresh: bool = False
    #: The column that holds the partition in the parent table (for full refreshes).
    partition_column: str | None = None
    #: The parent's columns and values that hold one partition's rows, where one column
    #: does not (a partition `site/warehouse`): the scope of the missing marks.
    partition_scope: Callable[[str], Mapping[str, Any]] | None = None
    #: A record never changes once served (an event log): one re-read in the cursor's
    #: overlap whose key is stored already is skipped instead of loaded again.
    immutable: bool = False
    #: Called once per tick of the stream, before any partition syncs: what the normalizer
    #: context gains for this tick (e.g. each register's time zone). Errors it lets out fail
    #: the stream's tick; it should fall back by itself where the data is optional.
    tick_context: Callable[[TickSources], Mapping[str, Any]] | None = None

    #: Where values come from to split a crowded window (e.g. every register), if any.
    split_by: Partitioning | None = None
    #: How a page's bytes become its JSON value (None: plain decoding into dicts). A stream
    #: may decode into typed records that read like dicts, for a faster normalizer; it must
    #: raise ValueError for bytes that are not JSON.
    decode: Callable[[bytes], Any] | None = None
    #: Normalizes several partitions' windows in one call, one result each as `normalize`
    #: gives it (None: one call per window). A tick joins the windows of partitions that
    #: wait to be normalized together (turns.py), which saves a call's fixed cost a window.
    normalize_many: (
        Callable[[Sequence[tuple[list[Any], Mapping[str, Any]]]], list[NormalizedWindow]] | None
    ) = None

    def __post_init__(self) -> None:
        # The tables as stored: every one ends with the load metadata (_loaded_at, _run_id),
        # stamped by the commit, so no normalizer produces them.
        object.__setattr__(self, "tables", tuple(with_load_metadata(t) for t in self.tables))

    @property
    def parent(self) -> Table:
        """The table whose rows are the stream's records (the others are their children)."""
        return self.tables[0]

    @property
    def key(self) -> tuple[str, ...]:
        """The natural key of a record: the parent table's."""
        return self.parent.key

    def scope_of(self, partition: str) -> Mapping[str, Any] | None:
        """The parent's columns and values that hold `partition`'s rows, all the missing
        marks may touch (`partition_scope`, else `partition_column`); None: neither."""
        if self.partition_scope is not None:
            return self.partition_scope(partition)
        column = self.partition_column
        if column is None:
            return None
        kind = self.parent.column(column).kind
        return {column: int(partition) if kind is Kind.INT else partition}

    def lag_of(self, stored: str | None, now: datetime) -> float | None:
        """How far a stored cursor is behind `now`, in seconds; None before any load, and
        for a cursor the strategy cannot read (what a tick fails on and `reset` replaces),
        so that showing a lag never fails what shows it."""
        try:
            return self.cursor.lag_seconds(stored, now)
        except (SitooSyncError, ValueError, TypeError, OverflowError):
            return None

    def path_for(self, partition: str) -> str:
        """The request path for one partition."""
        path = self.path
        for name, value in self.partitions.path_params(partition).items():
            path = path.replace("{" + name + "}", value)
        return path

    def configured(self, stream_options: Mapping[str, Any]) -> Stream:
        """This stream with its own settings (`[streams.<name>]` and the environment)
        applied to its cursor strategy; a bad value is a ConfigError."""
        values = option_values(self.name, self.options, stream_options.get(self.name, {}))
        if not values:
            return self
        return dataclasses.replace(self, cursor=dataclasses.replace(self.cursor, **values))  # type: ignore[type-var]  # every strategy is a dataclass


def items_of(payload: Any) -> list[Any]:
    """The list of records in a response: a bare array or an `items` envelope."""
    if isinstance(payload, list):
        return payload
    if isinstance(payload, Mapping):
        items = payload.get("items")
        if isinstance(items, list):
            return items
        if items is None and not payload:
            return []
    raise ValueError(f"unexpected response shape: {type(payload).__name__}")
