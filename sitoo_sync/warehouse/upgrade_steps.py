"""The upgrade steps: what the rows an older version left need once, run by the first tick's
upkeep of a warehouse at an older schema revision (catalog.py, `SCHEMA_REVISION`), in that
upkeep's transaction, before this code's revision is recorded.

A step is given the target's SQL text, the tables and columns as they were before the
upkeep, the views (their backfills), and every table this version declares (`declared`,
handed down by the tick: the warehouse knows no stream). Each step is idempotent: a crash
before the revision is recorded runs it again.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass

from sitoo_sync.log import get_logger
from sitoo_sync.normalize.tables import Kind, Table
from sitoo_sync.warehouse import catalog
from sitoo_sync.warehouse.views import Sql, View, backfills

log = get_logger(__name__)


@dataclass(frozen=True)
class Upgrade:
    """What an upgrade step works with: the target's SQL text (`sql`, names qualified), the
    tables and their columns as the warehouse had them before this upkeep (`before`: a table
    or column the upkeep made holds no old row), the views the upkeep was given (their
    backfills), every table this version declares (`declared`, the caller's: a step runs
    once, for every table there, whichever streams the upgrading process syncs), and `run`,
    which runs one statement in the upkeep's transaction and returns the rows it changed."""

    sql: Sql
    before: Mapping[str, Collection[str]]
    views: Sequence[View]
    declared: Sequence[Table]
    run: Callable[[str], int]
    #: MariaDB rather than MySQL (both are dialect "mysql"): its JSON is text.
    mariadb: bool = False


@dataclass(frozen=True)
class Step:
    """What the rows an older version left need once, run by the first upkeep of a
    warehouse at an older revision than `revision` by code at `revision` or newer."""

    revision: int
    name: str
    apply: Callable[[Upgrade], None]


def _each_once(tables: Sequence[Table]) -> list[Table]:
    """`tables` without a second table of a name already there (streams may share one): a
    step's statement runs once a table."""
    seen: dict[str, Table] = {}
    for table in tables:
        seen.setdefault(table.name, table)
    return list(seen.values())


#: JSON columns whose JSON null is a value, not nothing: `rejects.raw` (warehouse/base.py)
#: keeps a record the API sent as null as it was received.
_NULL_KEPT = frozenset({("rejects", "raw")})


def _json_null(up: Upgrade) -> None:
    """MySQL/MariaDB: a JSON column that holds nothing is SQL NULL, as on every other target;
    before revision 1 it was stored as the JSON text 'null' (SQLAlchemy's JSON types store
    Python None so unless told `none_as_null`), which `WHERE extra IS NULL` misses. Each
    table's 'null's become NULL in one UPDATE. (The JSON of a row is never JSON null
    otherwise: a value the vendor sent as null is stored as NULL.) But for `rejects`: its
    `raw` is the rejected record as sent, never None, and 'null' there is a record the API
    sent as JSON null, which this version keeps so too."""
    if up.sql.dialect not in ("mysql", "mariadb"):
        return

    def empty(column: str) -> str:
        # MariaDB's JSON is text; MySQL's is a type of its own, which text compares with as
        # a JSON string
        return f"{column} = 'null'" if up.mariadb else f"JSON_TYPE({column}) = 'NULL'"

    changed: dict[str, int] = {}
    read = 0  # tables with a JSON column before the upkeep
    for table in _each_once(up.declared):
        there = up.before.get(table.name, ())
        columns = [
            f"`{c.name}`"
            for c in table.columns
            if c.kind is Kind.JSON and c.name in there and (table.name, c.name) not in _NULL_KEPT
        ]
        if not columns:
            continue
        read += 1
        sets = ", ".join(f"{c} = CASE WHEN {empty(c)} THEN NULL ELSE {c} END" for c in columns)
        where = " OR ".join(empty(c) for c in columns)
        rows = up.run(f"UPDATE {up.sql.t(table.name)} SET {sets} WHERE {where}")
        if rows:
            changed[table.name] = rows
    if read:  # (a new warehouse has no old row)
        log.info("json_nulls_cleared", rows=sum(changed.values()), tables=changed)


def _backfills_again(up: Upgrade) -> None:
    """The views' backfills once more, over every table that had their column before this
    upkeep: a process of a version from before that column, still running after the upkeep
    that added it (before revisions were recorded, nothing stopped it), wrote rows the
    backfill never saw. A backfill changes only rows still as an old version stores them."""
    had = [(table, column) for table, columns in up.before.items() for column in columns]
    for fill in backfills(up.views, had, up.before):
        rows = sum(up.run(statement) for statement in fill.statements(up.sql))
        log.info("column_backfilled", table=fill.table, column=fill.column, rows=rows, again=True)


#: The upgrade steps, by the revision that brought them, in the order they run.
STEPS: tuple[Step, ...] = (
    Step(1, "json_null", _json_null),
    Step(1, "backfills_again", _backfills_again),
)


def upgrade(revision: int | None, up: Upgrade) -> None:
    """Run the steps of every revision after `revision` (None: none recorded) up to this
    code's, in order."""
    for step in STEPS:
        if (revision or 0) < step.revision <= catalog.SCHEMA_REVISION:
            step.apply(up)
