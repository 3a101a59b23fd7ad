"""What a stream is: a declaration of one endpoint, its key, tables and cursor strategy."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sitoo_sync.api.client import Api
from sitoo_sync.normalize.records import NormalizedWindow
from sitoo_sync.normalize.tables import Table, with_load_metadata
from sitoo_sync.streams.cursors import CursorStrategy


@dataclass(frozen=True)
class TickSources:
    """What a stream's `tick_context` hook may read, once at the start of its tick.

    `latest(table, by, value, order)`: per distinct `by` value, the non-null `value` of the
    row with the greatest `order` ({} before the table exists), in one query of the warehouse.
    `get(api, path)`: one GET of the Sitoo API (decoded JSON; SitooSyncError when it fails).
    """

    latest: Callable[[Table, str, str, str], Mapping[Any, Any]]
    get: Callable[[Api, str], Any]
    now: datetime


@dataclass(frozen=True)
class Stream:
    """One endpoint as data: the sync engine reads these fields and nothing else.

    `items` unwraps a response: the tolerant reader accepts a bare array or an
    `{"items": [...]}` envelope.
    """

    name: str
    api: Api
    path: str
    key: tuple[str, ...]
    cursor: CursorStrategy
    tables: tuple[Table, ...]
    normalize: Callable[[Iterable[Any], Mapping[str, Any]], NormalizedWindow]
    description: str
    default_schedule: str = "15m"  # how often the service syncs it (SITOO_SCHEDULES overrides)
    #: What one cursor covers: the whole account, one site (`{siteid}` in the path) or one
    #: register (its id passed as the strategy's partition parameter).
    partitions: Literal["account", "site", "register"] = "account"
    #: Every tick lists everything: rows of the partition not seen get `missing_since`.
    full_refresh: bool = False
    #: The column that holds the partition in the stream's table (for full refreshes).
    partition_column: str | None = None
    #: A record never changes once served (an event log): one re-read in the cursor's
    #: overlap whose key is stored already is skipped instead of loaded again.
    immutable: bool = False
    #: Called once per tick of the stream, before any partition syncs: what the normalizer
    #: context gains for this tick (e.g. each register's time zone). Errors it lets out fail
    #: the stream's tick; it should fall back by itself where the data is optional.
    tick_context: Callable[[TickSources], Mapping[str, Any]] | None = None

    def __post_init__(self) -> None:
        # The tables as stored: every one ends with the load metadata (_loaded_at, _run_id),
        # stamped by the commit, so no normalizer produces them.
        object.__setattr__(self, "tables", tuple(with_load_metadata(t) for t in self.tables))

    def path_for(self, partition: str) -> str:
        """The request path for one partition."""
        return self.path.replace("{siteid}", partition)


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
