"""What a stream is: a declaration of one endpoint, its key, tables and cursor strategy."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from sitoo_sync.api.client import Api
from sitoo_sync.normalize.records import NormalizedWindow
from sitoo_sync.normalize.tables import Table
from sitoo_sync.streams.cursors import CursorStrategy


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
