"""The keys a tick's re-reads will meet, read once for every partition of an immutable stream.

Every tick of an immutable stream paged by time (journals) starts `SITOO_OVERLAP_SECONDS`
before each partition's cursor, so its first page is mostly entries loaded already; each
partition used to ask the warehouse which of its keys it holds. On DuckDB that question is
one query per register: 2.4 ms of a no-op partition's ~7 ms of CPU at concurrency 32. Here
the tick asks once for every key stored since the earliest of those windows (DuckDB's zone
maps keep that to the newest row groups) and each partition looks its keys up in memory.

What is found here is stored: the set is read from committed rows, and rows of an
immutable stream are never deleted by a tick. A key missing from it is loaded again, which
upserts make harmless. A partition whose window starts before the set's (a cursor far
behind the others) asks the warehouse itself, and so does every partition when the set
would hold more than `limit` keys or the target has no such query (a server, whose key
index answers each partition cheaply).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sitoo_sync.log import get_logger
from sitoo_sync.normalize.tables import Table
from sitoo_sync.streams.cursors import record_times
from sitoo_sync.warehouse.base import Warehouse

log = get_logger(__name__)

#: Cursors further behind the newest than this ask the warehouse themselves, so one stale
#: register does not make the shared read reach back through history.
STALE_SECONDS = 86_400
#: The most keys the shared read may hold (~250 bytes each as Python tuples: ~12 MB); past
#: it every partition asks. 201 registers at a 10-minute overlap read ~15,000.
LIMIT = 50_000


class OverlapKeys:
    """The keys of `table` whose `column` is at or after `since` (Unix seconds), read on first
    use by whichever partition needs them first. `column` is also the records' time field
    (the stream's cursor reads it)."""

    def __init__(
        self, warehouse: Warehouse, table: Table, column: str, since: int, limit: int = LIMIT
    ) -> None:
        self.warehouse = warehouse
        self.table = table
        self.column = column
        self.since = since
        self.limit = limit
        self._lock = threading.Lock()
        self._read = False
        self._keys: set[tuple[Any, ...]] | None = None

    @classmethod
    def for_tick(
        cls,
        warehouse: Warehouse,
        table: Table,
        column: str,
        cursors: Mapping[str, str | None],
        overlap: int,
    ) -> OverlapKeys | None:
        """The shared read for the partitions whose cursor (Unix seconds) is recent; None
        when no partition has one."""
        times = [int(c) for c in cursors.values() if c is not None and c.isdigit()]
        if not times:
            return None
        newest = max(times)
        recent = [t for t in times if t >= newest - STALE_SECONDS]
        return cls(warehouse, table, column, min(recent) - overlap)

    def stored(self, records: list[Any]) -> set[tuple[Any, ...]] | None:
        """The stored keys, when `records` (raw, their time in `column`) all fall in the read
        (else None: ask the warehouse)."""
        times = record_times(records, self.column)
        if times and min(times) < self.since:
            return None
        with self._lock:
            if not self._read:
                since = datetime.fromtimestamp(self.since, UTC)
                self._keys = self.warehouse.keys_since(self.table, self.column, since, self.limit)
                self._read = True
                log.debug(
                    "overlap_keys_read",
                    table=self.table.name,
                    since=since.isoformat(),
                    keys=None if self._keys is None else len(self._keys),
                )
        return self._keys
