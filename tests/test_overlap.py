"""The keys a tick's re-reads meet, read once: which partitions they answer, and when."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

from sitoo_sync.normalize.journal_entries import JOURNAL_ENTRIES
from sitoo_sync.normalize.tables import Table
from sitoo_sync.overlap import STALE_SECONDS, OverlapKeys
from sitoo_sync.warehouse.base import Warehouse

NOW = 1_800_000_000


class _Keys:
    """A warehouse that holds `keys` and counts how often it was asked for them."""

    def __init__(self, keys: set[tuple[Any, ...]] | None) -> None:
        self.keys = keys
        self.asked: list[datetime] = []

    def keys_since(
        self, table: Table, column: str, since: datetime, limit: int
    ) -> set[tuple[Any, ...]] | None:
        self.asked.append(since)
        return self.keys


def _entries(*times: int) -> list[dict[str, Any]]:
    return [{"registerid": "{R1}", "id": i, "dateadded": t} for i, t in enumerate(times)]


def _known(warehouse: _Keys, cursors: dict[str, str | None]) -> OverlapKeys:
    known = OverlapKeys.for_tick(
        cast(Warehouse, warehouse), JOURNAL_ENTRIES, "dateadded", cursors, overlap=600
    )
    assert known is not None
    return known


def test_the_read_starts_at_the_earliest_recent_cursor_less_the_overlap() -> None:
    """Cursors of the last day decide where the shared read starts; one far behind and
    registers never loaded do not pull it back through history."""
    far_behind = NOW - STALE_SECONDS - 1
    known = _known(
        _Keys(set()), {"a": str(NOW), "b": str(NOW - 300), "c": str(far_behind), "d": None}
    )
    assert known.since == NOW - 300 - 600


def test_records_older_than_the_read_are_left_to_the_warehouse() -> None:
    """A page reaching before the shared read gets None (ask the warehouse); a page inside
    it gets the keys, read once however many partitions ask."""
    warehouse = _Keys({("{R1}", 1)})
    known = _known(warehouse, {"a": str(NOW), "b": str(NOW - 300)})
    assert known.stored(_entries(known.since - 1, NOW)) is None
    assert warehouse.asked == []
    assert known.stored(_entries(known.since, NOW)) == {("{R1}", 1)}
    assert known.stored(_entries(NOW)) == {("{R1}", 1)}
    assert warehouse.asked == [datetime.fromtimestamp(known.since, UTC)]


def test_a_target_without_the_read_leaves_every_partition_to_ask() -> None:
    """When the warehouse answers None (too many keys, or a server), every page asks itself,
    and the warehouse is not asked again."""
    warehouse = _Keys(None)
    known = _known(warehouse, {"a": str(NOW)})
    assert known.stored(_entries(NOW)) is None
    assert known.stored(_entries(NOW)) is None
    assert len(warehouse.asked) == 1


def test_no_cursor_no_read() -> None:
    """A stream whose partitions were never loaded (a backfill) re-reads nothing."""
    assert (
        OverlapKeys.for_tick(
            cast(Warehouse, _Keys(set())), JOURNAL_ENTRIES, "dateadded", {"a": None}, overlap=600
        )
        is None
    )
