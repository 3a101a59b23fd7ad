"""Warehouse behaviour a hand-made mutation showed the suite did not pin down."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from sitoo_sync.normalize.columns import rows_to_arrow
from sitoo_sync.normalize.tables import Table, integer, text, timestamp
from sitoo_sync.warehouse import open_warehouse
from tests.targets import ALL_TARGETS, Target, target_for


@pytest.fixture(params=ALL_TARGETS)
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    """Each target in turn (servers skip when CI did not provide them)."""
    with target_for(request.param, tmp_path) as t:
        yield t


def test_an_upsert_keeps_the_columns_declared_kept_on_every_target(target: Target) -> None:
    """A row listed again updates its other columns but keeps `first_seen_at` (declared
    `keep_on_update`) as the first load wrote it, on every target."""
    listed = Table(
        "listed",
        (integer("k", nullable=False), text("name"), timestamp("first_seen_at")),
        key=("k",),
        keep_on_update=("first_seen_at",),
    )
    first, later = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC)
    warehouse = open_warehouse(target.url, schema=target.schema)
    try:
        warehouse.ensure_schema([listed])
        with warehouse.transaction():
            warehouse.upsert(listed, rows_to_arrow(listed, [(1, "old", first)]))
        with warehouse.transaction():
            warehouse.upsert(listed, rows_to_arrow(listed, [(1, "new", later), (2, "b", later)]))
    finally:
        warehouse.close()
    rows = sorted(target.rows(listed))
    assert [(k, name) for k, name, _seen in rows] == [(1, "new"), (2, "b")]
    seen = {k: s.replace(tzinfo=UTC) if s.tzinfo is None else s for k, _name, s in rows}
    assert seen == {1: first, 2: later}
