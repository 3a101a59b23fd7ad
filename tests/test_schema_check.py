"""A schema as the last whole check left it is only looked at; anything missing is made again."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import pytest

from sitoo_sync.normalize.tables import Table, integer, text
from sitoo_sync.warehouse import open_warehouse
from sitoo_sync.warehouse.base import SYNC_SCHEMA
from sitoo_sync.warehouse.schema_check import fingerprint, in_place
from sitoo_sync.warehouse.views import Sql, View
from tests.targets import ALL_TARGETS, Target, target_for

THINGS = Table(
    "things", (text("k", nullable=False), integer("n"), integer("m")), key=("k",), description="T."
)
OTHERS = Table("others", (text("k", nullable=False),), key=("k",))


def things_view(select: str = "k, n") -> View:
    """`v_things`: `select` from the things table."""
    return View(
        name="v_things",
        description="Things, for a test.",
        columns=tuple((c.strip(), f"The {c.strip()}.") for c in select.split(",")),
        reads={"things": ("k", "n")},
        select=lambda d: f"SELECT {select} FROM {d.t('things')}",
    )


@pytest.fixture(params=ALL_TARGETS)
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    """Each target in turn (servers skip when CI did not provide them)."""
    with target_for(request.param, tmp_path) as t:
        yield t


def tick(target: Target, tables: list[Table], views: list[View]) -> list[tuple[str, datetime]]:
    """What a tick does to the schema; then `sync_schema`'s rows (fingerprint, checked_at)."""
    warehouse = open_warehouse(target.url, schema=target.schema)
    try:
        warehouse.ensure_schema(tables, views)
        return [(r["fingerprint"], r["checked_at"]) for r in warehouse.read_table(SYNC_SCHEMA)]
    finally:
        warehouse.close()


def by_hand(target: Target, sql: str) -> None:
    """A user changes the schema by hand: `sql`, with {} standing for the schema's prefix."""
    warehouse = open_warehouse(target.url, schema=target.schema)
    try:
        warehouse.execute(sql.format(f"{target.schema}." if target.schema else ""))
    finally:
        warehouse.close()


def test_an_unchanged_schema_is_not_checked_again(target: Target) -> None:
    """A second tick with the same declarations finds its fingerprint and every table in
    place and leaves the record of the whole check as it was; the first wrote one row."""
    first = tick(target, [THINGS, OTHERS], [things_view()])
    assert len(first) == 1
    assert tick(target, [THINGS, OTHERS], [things_view()]) == first


def test_other_declarations_are_checked_in_full_and_recorded_alone(target: Target) -> None:
    """A declaration the last check did not make (a new table, another view) runs the whole
    check, which makes it and replaces the record: one row, the latest fingerprint."""
    (first,) = tick(target, [THINGS], [things_view()])
    (second,) = tick(target, [THINGS, OTHERS], [things_view()])
    (third,) = tick(target, [THINGS, OTHERS], [things_view("k")])
    assert len({first[0], second[0], third[0]}) == 3
    assert first[1] < second[1] < third[1]  # each checked in full
    by_hand(target, "INSERT INTO {}others (k) VALUES ('a')")  # the new table was made


@pytest.mark.parametrize(
    "drop",
    [
        "DROP TABLE {}others",
        "DROP VIEW {}v_things",
        "ALTER TABLE {}things DROP COLUMN m",
    ],
    ids=["table", "view", "column"],
)
def test_what_was_dropped_by_hand_is_made_again(target: Target, drop: str) -> None:
    """A table, a recorded view or a column dropped by hand is seen by the quick check, and
    the whole check makes it again."""
    (before,) = tick(target, [THINGS, OTHERS], [things_view()])
    by_hand(target, drop)
    (after,) = tick(target, [THINGS, OTHERS], [things_view()])
    assert after[0] == before[0]
    assert after[1] > before[1]  # checked in full again
    by_hand(target, "INSERT INTO {}others (k) VALUES ('a')")
    by_hand(target, "INSERT INTO {}things (k, n, m) VALUES ('a', 1, 2)")
    by_hand(target, "SELECT k, n FROM {}v_things")


def test_a_schema_checked_elsewhere_first_is_checked_in_full() -> None:
    """Nothing is taken on trust: a stored fingerprint alone is not enough; every declared
    table and column and every recorded view must be in the catalog too."""
    mark = "f" * 16
    catalog = {"things": {"k", "n", "m"}, "v_things": {"k", "n"}}

    def check(tables: list[Table], found: dict[str, set[str]], marks: str, views: bool) -> bool:
        recorded = ["v_things"] if views else []
        return in_place(tables, found, mark=mark, recorded_marks=[marks], recorded_views=recorded)

    assert check([THINGS], catalog, mark, views=True)
    assert not check([THINGS], catalog, "0" * 16, views=True)  # another fingerprint
    assert not check([THINGS], {"things": {"k", "n"}}, mark, views=False)  # a column gone
    assert not check([THINGS], {"things": {"k", "n", "m"}}, mark, views=True)  # the view
    assert not check([THINGS, OTHERS], catalog, mark, views=True)  # a table


def test_the_fingerprint_follows_every_declared_detail() -> None:
    """Equal declarations give equal fingerprints; a column, a comment, a key, a view's
    statement or the dialect each give another."""
    sql = Sql("postgresql", lambda name: name)
    base = fingerprint([THINGS], [things_view()], sql)
    assert fingerprint([THINGS], [things_view()], sql) == base
    changed = [
        fingerprint([replace(THINGS, columns=THINGS.columns[:2])], [things_view()], sql),
        fingerprint([replace(THINGS, description="Other.")], [things_view()], sql),
        fingerprint([replace(THINGS, key=("k", "n"))], [things_view()], sql),
        fingerprint([THINGS], [things_view("k")], sql),
        fingerprint([THINGS], [], sql),
        fingerprint([THINGS], [things_view()], Sql("sqlite", lambda name: name)),
    ]
    assert base not in changed
    assert len(set(changed)) == len(changed)
