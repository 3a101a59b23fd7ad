"""Loading one window (or a batch of consecutive windows) with its cursor, in one transaction.

This is where the exactly-once rule lives: parents upsert on their natural key (or are
inserted when new), a parent's children are replaced as a set, a row superseded by a new key
of its replace group goes with its children, rejects are kept, and the cursor moves, all in
the same transaction of the target.

It is also where every row gets its load metadata: `_loaded_at` (when this commit ran) and
`_run_id` (the run that wrote it, `PartitionLoad.run_id`), stamped on the Arrow tables just
before they are written, so normalizers never see them and an upsert overwrites them.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from sitoo_sync.normalize.columns import ARROW_TYPES
from sitoo_sync.normalize.records import NormalizedWindow
from sitoo_sync.normalize.tables import LOADED_AT, RUN_ID, Kind, Table
from sitoo_sync.streams.base import Stream
from sitoo_sync.warehouse.base import Warehouse


def load_window(
    warehouse: Warehouse,
    stream: Stream,
    partition: str,
    normalized: NormalizedWindow,
    cursor: str,
    *,
    windows: int = 1,
    run_id: str | None = None,
) -> None:
    """Rows, rejects and the cursor of one window (or batch of windows), in one transaction."""
    with warehouse.transaction():
        _load_rows(warehouse, stream, stamped(stream, normalized, datetime.now(UTC), run_id))
        warehouse.set_cursor(
            stream.name, partition, cursor, rows=normalized.row_count(), windows=windows
        )


@dataclass(frozen=True)
class PartitionLoad:
    """One partition's part of a group load: its rows, the cursor past them, and how its
    tick ended when this is its last load (None: it goes on)."""

    partition: str
    normalized: NormalizedWindow
    cursor: str
    windows: int
    outcome: str | None = None
    #: The run (sync_runs.run_id) that loads it: stamped on every row as `_run_id`.
    run_id: str | None = None


def load_group(warehouse: Warehouse, stream: Stream, loads: Sequence[PartitionLoad]) -> None:
    """Several partitions' batches (disjoint keys), each with its cursor, in one transaction.

    What is exactly-once for one window holds for each: its rows and its cursor commit
    together. One transaction instead of one per partition is what lets a tick over many
    registers commit as fast as their pages arrive (a DuckDB commit alone takes ~10 ms).
    """
    with warehouse.transaction():
        at = datetime.now(UTC)
        if len({p.run_id for p in loads}) == 1:
            normalized = NormalizedWindow.concat([p.normalized for p in loads])
            normalized = stamped(stream, normalized, at, loads[0].run_id)
        else:
            normalized = NormalizedWindow.concat(
                [stamped(stream, p.normalized, at, p.run_id) for p in loads]
            )
        _load_rows(warehouse, stream, normalized)
        for p in loads:
            rows = p.normalized.row_count()
            warehouse.set_cursor(stream.name, p.partition, p.cursor, rows=rows, windows=p.windows)
            if p.outcome is not None:
                warehouse.record_outcome(stream.name, p.partition, p.outcome)


def stamped(
    stream: Stream, normalized: NormalizedWindow, at: datetime, run_id: str | None
) -> NormalizedWindow:
    """`normalized` with `_loaded_at` = `at` and `_run_id` = `run_id` on every row of every
    table the stream stores them in (a table that has them already is left as it is)."""
    tables = dict(normalized.tables)
    for table in stream.tables:
        data = tables.get(table.name)
        if data is not None:
            tables[table.name] = _stamp(table, data, at, run_id)
    return NormalizedWindow(tables, normalized.parent_keys, normalized.rejects, normalized.notes)


def _stamp(table: Table, data: pa.Table, at: datetime, run_id: str | None) -> pa.Table:
    if LOADED_AT not in table.column_names or LOADED_AT in data.column_names:
        return data
    rows = data.num_rows
    data = data.append_column(
        LOADED_AT, pa.repeat(pa.scalar(at, ARROW_TYPES[Kind.TIMESTAMP]), rows)
    )
    return data.append_column(RUN_ID, pa.repeat(pa.scalar(run_id, ARROW_TYPES[Kind.TEXT]), rows))


def _load_rows(warehouse: Warehouse, stream: Stream, normalized: NormalizedWindow) -> None:
    """Parents upserted (or inserted when new), children replaced as sets, rejects kept."""
    parent = next(t for t in stream.tables if not t.is_child)
    existing = warehouse.existing_keys(parent, normalized.parent_keys)
    if parent.replace_group and normalized.parent_keys.num_rows:
        # e.g. a store and day re-aggregated under a new id: the old report goes.
        superseded = warehouse.superseded_keys(parent, normalized.tables[parent.name])
        if superseded.num_rows:
            warehouse.delete_rows(parent, superseded, parent.key)
            existing = pa.concat_tables([existing, superseded.cast(existing.schema)])
    for table in stream.tables:
        data = normalized.tables[table.name]
        if table.is_child:
            warehouse.replace_children(table, existing, data)
        elif existing.num_rows:
            warehouse.upsert(table, data)
        else:
            warehouse.insert(table, data)
    warehouse.add_rejects(normalized.rejects)


@dataclass
class Batch:
    """Consecutive normalized windows that will commit together, with the last cursor.

    Loading several windows in one transaction costs far fewer statements than one each;
    the bounds keep memory and the work a crash can undo small. A window whose parent keys
    are already in the batch starts a new one, so a batch never holds a key twice.
    """

    max_rows: int
    max_seconds: float
    windows: list[NormalizedWindow] = field(default_factory=list)
    keys: set[tuple[Any, ...]] = field(default_factory=set)
    records: int = 0
    cursor: str = ""
    started: float = 0.0

    def accepts(self, keys: set[tuple[Any, ...]]) -> bool:
        """False when a window with these parent keys must go into a new batch."""
        return not self.windows or not (keys & self.keys)

    def add(
        self, window: NormalizedWindow, keys: set[tuple[Any, ...]], records: int, cursor: str
    ) -> None:
        """Append a window and move the batch's cursor to it."""
        if not self.windows:
            self.started = time.monotonic()
        self.windows.append(window)
        self.keys |= keys
        self.records += records
        self.cursor = cursor

    def full(self) -> bool:
        """True once the batch should be committed."""
        rows = sum(w.row_count() for w in self.windows)
        return rows >= self.max_rows or time.monotonic() - self.started >= self.max_seconds

    def clear(self) -> None:
        """Forget everything (after a commit)."""
        self.windows.clear()
        self.keys.clear()
        self.records = 0
