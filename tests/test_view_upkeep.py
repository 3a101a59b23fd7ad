"""A tick creates a ready view again only when its definition changed, on every target."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine.reflection import Inspector

from sitoo_sync.normalize.tables import Table, integer, text
from sitoo_sync.warehouse import open_warehouse
from sitoo_sync.warehouse.base import SYNC_VIEWS
from sitoo_sync.warehouse.views import Sql, View, fingerprint, plan_views
from tests.targets import ALL_TARGETS, Target, target_for

THINGS = Table("things", (text("k", nullable=False), integer("n")), key=("k",))
THINGS_V2 = Table("things", (text("k", nullable=False), integer("n"), integer("m")), key=("k",))


def things_view(select: str = "k, n", reads: tuple[str, ...] = ("k", "n")) -> View:
    """`v_things`: `select` from the things table."""
    return View(
        name="v_things",
        description="Things, for a test.",
        columns=tuple((c.strip(), f"The {c.strip()}.") for c in select.split(",")),
        reads={"things": reads},
        select=lambda d: f"SELECT {select} FROM {d.t('things')}",
    )


@pytest.fixture(params=ALL_TARGETS)
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    """Each target in turn (servers skip when CI did not provide them)."""
    with target_for(request.param, tmp_path) as t:
        yield t


def tick(target: Target, table: Table, view: View) -> None:
    """What a tick does to the schema: ensure the table and the view."""
    warehouse = open_warehouse(target.url, schema=target.schema)
    try:
        warehouse.ensure_schema([table], [view])
    finally:
        warehouse.close()


def recorded(target: Target) -> dict[str, tuple[str, Any]]:
    """view -> (fingerprint, created_at), as `sync_views` holds them."""
    warehouse = open_warehouse(target.url, schema=target.schema)
    try:
        return {
            r["view_name"]: (r["fingerprint"], r["created_at"])
            for r in warehouse.read_table(SYNC_VIEWS)
        }
    finally:
        warehouse.close()


def in_schema(target: Target, sql: str) -> str:
    """`sql` with `v_things` named in the target's schema."""
    return sql.replace("v_things", f"{target.schema}.v_things") if target.schema else sql


def query(target: Target, sql: str) -> list[tuple[Any, ...]]:
    """Rows of `sql` (which reads `v_things`)."""
    warehouse = open_warehouse(target.url, schema=target.schema)
    try:
        return warehouse.query(in_schema(target, sql))
    finally:
        warehouse.close()


def drop_view(target: Target) -> None:
    """A user drops the view by hand."""
    warehouse = open_warehouse(target.url, schema=target.schema)
    try:
        warehouse.execute(in_schema(target, "DROP VIEW v_things"))
    finally:
        warehouse.close()


def test_a_second_tick_leaves_a_current_view_alone(target: Target) -> None:
    """The view is created and recorded once; a tick with the same definition writes neither."""
    tick(target, THINGS, things_view())
    first = recorded(target)
    tick(target, THINGS, things_view())
    assert recorded(target) == first
    assert list(first) == ["v_things"]
    assert query(target, "SELECT COUNT(*) FROM v_things") == [(0,)]


def test_a_changed_definition_or_a_dropped_view_is_created_again(target: Target) -> None:
    """A new definition (a new version of the tool) replaces the view and its record; a view
    dropped by hand comes back on the next tick."""
    tick(target, THINGS, things_view())
    old = recorded(target)["v_things"][0]
    tick(target, THINGS_V2, things_view("k, n, m", ("k", "n", "m")))
    new = recorded(target)["v_things"][0]
    assert new != old
    assert query(target, "SELECT k, n, m FROM v_things") == []
    drop_view(target)
    tick(target, THINGS_V2, things_view("k, n, m", ("k", "n", "m")))
    assert recorded(target)["v_things"][0] == new
    assert query(target, "SELECT COUNT(*) FROM v_things") == [(0,)]


def column_reads(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """From now on, the tables whose columns SQLAlchemy reflects, one list per reading."""
    reads: list[Any] = []
    real = Inspector.get_multi_columns

    def counted(self: Inspector, *args: Any, **kwargs: Any) -> Any:
        reads.append(kwargs.get("filter_names"))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Inspector, "get_multi_columns", counted)
    return reads


def test_an_up_to_date_schema_reads_the_tables_columns_once_a_tick(
    target: Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A tick's upkeep of an up-to-date SQL schema (its tables, their comments, the views)
    reads the tables' columns from the catalog once, not once for each."""
    if target.name == "duckdb":
        pytest.skip("DuckDB's upkeep reads its own catalog functions, not SQLAlchemy's")
    tick(target, THINGS, things_view())
    reads = column_reads(monkeypatch)
    tick(target, THINGS, things_view())
    assert len(reads) == 1
    assert "things" in reads[0]
    assert query(target, "SELECT COUNT(*) FROM v_things") == [(0,)]


def test_an_upkeep_without_views_reads_only_its_own_tables_columns(
    target: Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Schema upkeep that keeps no views (`reset`, `verify`) reads the columns of the tables
    it keeps, not of every table a shared schema holds."""
    if target.name == "duckdb":
        pytest.skip("DuckDB's upkeep reads its own catalog functions, not SQLAlchemy's")
    tick(target, THINGS, things_view())
    warehouse = open_warehouse(target.url, schema=target.schema)
    try:
        other = f"{target.schema}.someone_elses" if target.schema else "someone_elses"
        warehouse.execute(f"CREATE TABLE {other} (x INTEGER)")
        reads = column_reads(monkeypatch)
        warehouse.ensure_schema([THINGS])
    finally:
        warehouse.close()
    assert reads == [["things"]]


def test_a_view_waits_for_its_columns_and_goes_when_they_do() -> None:
    """A view whose columns are missing is not created; once they are it is; a view whose
    columns went is dropped and its record with it."""
    sql = Sql("duckdb", lambda name: f'"{name}"')
    view = things_view("k, m", ("k", "m"))

    def plan(columns: set[str], present: set[str], marks: dict[str, str]) -> Any:
        return plan_views(
            [view],
            sql,
            {"things": columns},
            lambda name: f'"{name}"',
            comments=False,
            present=present,
            recorded=marks,
        )

    waiting = plan({"k", "n"}, set(), {})
    assert (waiting.statements, waiting.created, waiting.gone) == ([], {}, [])
    ready = plan({"k", "n", "m"}, set(), {})
    assert ready.statements[0] == 'DROP VIEW IF EXISTS "v_things"'
    assert ready.statements[1].startswith('CREATE VIEW "v_things" AS SELECT k, m FROM')
    assert ready.created == {"v_things": fingerprint(ready.statements[1:])}
    current = plan({"k", "n", "m"}, {"v_things"}, ready.created)
    assert current.statements == []
    assert not current.changed()
    gone = plan({"k", "n"}, {"v_things"}, ready.created)
    assert (gone.statements, gone.created, gone.gone) == (
        ['DROP VIEW IF EXISTS "v_things"'],
        {},
        ["v_things"],
    )


def test_a_bi_query_reading_a_view_does_not_hold_back_the_next_tick(tmp_path: Path) -> None:
    """On PostgreSQL a reader's open transaction on a view holds a lock a DROP VIEW waits
    for: the next tick's schema step must not take it, so it ends while the reader reads."""
    with target_for("postgres", tmp_path) as target:
        tick(target, THINGS, things_view())
        engine = sa.create_engine(target.url.replace("postgresql://", "postgresql+psycopg://"))
        try:
            with engine.connect() as reader:
                reader.execute(sa.text(f"SELECT * FROM {target.schema}.v_things"))  # lock held
                done = threading.Event()

                def next_tick() -> None:
                    tick(target, THINGS, things_view())
                    done.set()

                ticking = threading.Thread(target=next_tick, daemon=True)
                ticking.start()
                finished = done.wait(timeout=15)
                reader.rollback()  # lets a blocked tick go on, so the test ends either way
                ticking.join(timeout=30)
            assert finished, "the tick waited for the reader's lock on the view"
        finally:
            engine.dispose()
