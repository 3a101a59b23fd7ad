"""Ready views for BI, rendered and created on every target: the dialect side of them.

What a view says (its SELECT, its columns and their meaning) is declared with the streams'
tables (sitoo_sync/views.py); here is how it reaches a database. `Sql` writes the parts
that differ per dialect (SQLite has no decimal type, date arithmetic differs).

Every `ensure_schema` given the views keeps them current (`plan_views`): a view whose tables
and columns all exist is created (a target that syncs only some streams gets the views of
those streams; a view's optional joins are made where their tables exist), described in
comments where the target keeps them, and recorded in `sync_views` with a fingerprint of
the statements that made it. The next tick leaves a view alone while it is there and its
statements are the same, so a new version of the tool brings its new definitions (and a
stream newly synced, the joins it allows) and nothing else happens.

A view may declare `Backfill`s: what a column it reads holds for rows an older version
loaded, before that column existed, derived from what those rows stored (their `extra`,
their parent row). They run in the upkeep that adds the column to a table that has rows,
right after it is added and before the views are made (`backfills`), never again: the
rows the column was added to are all old ones, and a fresh table has none. Dropping and creating
every view on every tick, as this did before, took an exclusive lock on each: on PostgreSQL
a tick waited behind any BI query reading a view, and every query after it queued behind
the tick.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sitoo_sync.log import get_logger
from sitoo_sync.warehouse.comments import duckdb_batch

if TYPE_CHECKING:
    import duckdb
    import sqlalchemy as sa
    from sqlalchemy.engine import Connection

    from sitoo_sync.warehouse.catalog import Catalog

log = get_logger(__name__)


class Sql:
    """The dialect-dependent pieces of SQL text for one target (views, verify's queries)."""

    def __init__(
        self, dialect: str, table: Callable[[str], str], tables: frozenset[str] = frozenset()
    ) -> None:
        self.dialect = dialect
        self.t = table
        self.tables = tables

    def has(self, *tables: str) -> bool:
        """Whether the target has all of `tables` (a view's optional reads) to join."""
        return set(tables) <= self.tables

    def having(self, tables: frozenset[str]) -> Sql:
        """This, for a target that has `tables`."""
        return Sql(self.dialect, self.t, tables)

    def cents(self, column: str) -> str:
        """An exact integer count of cents of a money column."""
        if self.dialect == "sqlite":  # money is exact text there: "12.50" -> 1250
            return f"CAST(REPLACE({column}, '.', '') AS INTEGER)"
        return column

    def integer_cents(self, column: str) -> str:
        """An exact integer count of cents of a money column, as an integer type everywhere."""
        if self.dialect == "sqlite":
            return f"CAST(REPLACE({column}, '.', '') AS INTEGER)"
        if self.dialect in ("mysql", "mariadb"):
            return f"CAST({column} * 100 AS SIGNED)"
        return f"CAST({column} * 100 AS BIGINT)"

    def money(self, cents: str) -> str:
        """Money from an expression of `cents()` values: DECIMAL, or exact text on SQLite."""
        if self.dialect != "sqlite":
            return cents
        c = f"({cents})"
        return (
            f"(CASE WHEN {c} IS NULL THEN NULL ELSE (CASE WHEN {c} < 0 THEN '-' ELSE '' END) "
            f"|| (ABS({c}) / 100) || '.' || printf('%02d', ABS({c}) % 100) END)"
        )

    def quantity(self, column: str) -> str:
        """A DECIMAL(18,3) quantity as a number that sums (SQLite keeps it as text)."""
        return f"CAST({column} AS NUMERIC)" if self.dialect == "sqlite" else column

    def quantity_sum(self, quantities: str) -> str:
        """SUM of `quantity()` values, exact to a quantity's 3 decimals: SQLite sums them as
        binary floats (0.1 + 0.2 is 0.30000000000000004 there), so its total is rounded."""
        total = f"SUM({quantities})"
        return f"ROUND({total}, 3)" if self.dialect == "sqlite" else total

    def whole_number(self, column: str) -> str:
        """A text column as a BIGINT (INTEGER on SQLite) where it is the digits of a whole
        number up to 18 digits without sign or leading zero, else NULL: never an error, and
        two different texts never give the same number."""
        digits = "0|[1-9][0-9]{0,17}"
        if self.dialect == "sqlite":  # no regular expressions: GLOB and the length
            fits = (
                f"{column} = '0' OR ({column} GLOB '[1-9]*' "
                f"AND {column} NOT GLOB '*[^0-9]*' AND length({column}) <= 18)"
            )
            return f"(CASE WHEN {fits} THEN CAST({column} AS INTEGER) END)"
        if self.dialect in ("mysql", "mariadb"):  # (its `$` also matches before a last \n)
            fits = f"{column} REGEXP '^({digits})$' AND LOCATE(CHAR(10), {column}) = 0"
            return f"(CASE WHEN {fits} THEN CAST({column} AS SIGNED) END)"
        if self.dialect == "duckdb":
            return (
                f"(CASE WHEN regexp_full_match({column}, '{digits}') "
                f"THEN TRY_CAST({column} AS BIGINT) END)"
            )
        return f"(CASE WHEN {column} ~ '^({digits})$' THEN CAST({column} AS BIGINT) END)"

    def concat(self, *parts: str) -> str:
        """The text of `parts` joined (numbers as their digits); CONCAT is not SQLite's."""
        if self.dialect == "sqlite":
            return "(" + " || ".join(parts) + ")"
        return f"CONCAT({', '.join(parts)})"

    def days_since(self, at: str) -> str:
        """Whole days from the UTC instant `at` to now."""
        now = {"sqlite": "'now'", "mysql": "UTC_TIMESTAMP()", "mariadb": "UTC_TIMESTAMP()"}
        return self.days_between(at, now.get(self.dialect, "now()"))

    def json_integer(self, column: str, key: str) -> str:
        """The member `key` of the JSON object `column` as a BIGINT when it is a JSON integer
        number, else NULL (absent, text, a fraction, a boolean ...)."""
        if self.dialect == "sqlite":
            member = f"json_extract({column}, '$.{key}')"
            return f"(CASE WHEN json_type({column}, '$.{key}') = 'integer' THEN {member} END)"
        if self.dialect in ("mysql", "mariadb"):
            member = f"JSON_EXTRACT({column}, '$.{key}')"
            return (
                f"(CASE WHEN JSON_TYPE({member}) IN ('INTEGER', 'UNSIGNED INTEGER') "
                f"THEN CAST({member} AS SIGNED) END)"
            )
        if self.dialect == "duckdb":
            return (
                f"(CASE WHEN json_type({column}, '$.{key}') IN ('BIGINT', 'UBIGINT') "
                f"THEN TRY_CAST(json_extract_string({column}, '$.{key}') AS BIGINT) END)"
            )
        if self.dialect == "postgresql":
            return (
                f"(CASE WHEN jsonb_typeof({column} -> '{key}') = 'number' "
                f"AND ({column} ->> '{key}') ~ '^-?[0-9]{{1,18}}$' "
                f"THEN CAST({column} ->> '{key}' AS BIGINT) END)"
            )
        return f"TRY_CAST(JSON_VALUE({column}, '$.{key}') AS BIGINT)"

    def json_quantity(self, column: str, key: str) -> str:
        """The member `key` of the JSON object `column` as a DECIMAL(18,3) quantity (exact
        text on SQLite) when it is one as the vendor writes quantities (text or a number,
        `-?digits.ddd`, no leading zero), else NULL."""
        if self.dialect == "sqlite":
            v = f"CAST(json_extract({column}, '$.{key}') AS TEXT)"
            u = f"ltrim({v}, '-')"
            return (
                f"(CASE WHEN json_type({column}, '$.{key}') IN ('text', 'real') "
                f"AND {u} GLOB '[0-9]*.[0-9][0-9][0-9]' "
                f"AND substr({u}, 1, length({u}) - 4) NOT GLOB '*[^0-9]*' "
                f"AND ({u} GLOB '[1-9]*' OR length({u}) = 5) AND length({u}) <= 19 "
                f"AND ({v} = {u} OR {v} = '-' || {u}) THEN {v} END)"
            )
        pattern = "^-?(0|[1-9][0-9]{0,14})[.][0-9]{3}$"
        if self.dialect in ("mysql", "mariadb"):
            v = f"JSON_UNQUOTE(JSON_EXTRACT({column}, '$.{key}'))"
            fits = f"{v} REGEXP '{pattern}' AND LOCATE(CHAR(10), {v}) = 0"
            return f"(CASE WHEN {fits} THEN CAST({v} AS DECIMAL(18,3)) END)"
        if self.dialect == "duckdb":
            v = f"json_extract_string({column}, '$.{key}')"
            return (
                f"(CASE WHEN regexp_full_match({v}, '{pattern[1:-1]}') "
                f"THEN CAST({v} AS DECIMAL(18,3)) END)"
            )
        if self.dialect == "postgresql":
            v = f"({column} ->> '{key}')"
            return f"(CASE WHEN {v} ~ '{pattern}' THEN CAST({v} AS NUMERIC(18,3)) END)"
        return f"TRY_CAST(JSON_VALUE({column}, '$.{key}') AS DECIMAL(18,3))"

    def json_without(self, column: str, key: str) -> str:
        """The JSON object `column` without its member `key`; NULL when nothing is left (as
        a row's `extra` is NULL when it holds nothing)."""
        if self.dialect == "sqlite":
            rest = f"json_remove({column}, '$.{key}')"
            return f"(CASE WHEN {rest} = '{{}}' THEN NULL ELSE {rest} END)"
        if self.dialect in ("mysql", "mariadb"):
            rest = f"JSON_REMOVE({column}, '$.{key}')"
            return f"(CASE WHEN JSON_LENGTH({rest}) = 0 THEN NULL ELSE {rest} END)"
        if self.dialect == "duckdb":
            rest = f"json_merge_patch({column}, '{{\"{key}\": null}}')"
            return f"(CASE WHEN CAST({rest} AS VARCHAR) = '{{}}' THEN NULL ELSE {rest} END)"
        if self.dialect == "postgresql":
            return f"NULLIF({column} - '{key}', '{{}}'::jsonb)"
        return f"JSON_MODIFY({column}, '$.{key}', NULL)"

    def integer_quantity(self, value: str) -> str:
        """A whole number as a DECIMAL(18,3) quantity (SQLite: its exact text, "2.000")."""
        if self.dialect == "sqlite":
            return f"(CAST({value} AS TEXT) || '.000')"
        return value

    def days_between(self, start: str, end: str) -> str:
        """Whole days from the UTC instant `start` to the later `end` (floored)."""
        if self.dialect == "sqlite":
            return f"CAST(julianday({end}) - julianday({start}) AS INTEGER)"
        if self.dialect in ("mysql", "mariadb"):
            # FLOOR of a division is DECIMAL there: cast, so a BI tool sees a whole number.
            return f"CAST(FLOOR(TIMESTAMPDIFF(SECOND, {start}, {end}) / 86400) AS SIGNED)"
        if self.dialect == "duckdb":
            return f"CAST(floor((epoch({end}) - epoch({start})) / 86400) AS BIGINT)"
        return f"CAST(floor(extract(epoch FROM ({end} - {start})) / 86400) AS BIGINT)"


@dataclass(frozen=True)
class Backfill:
    """What `column` of `table` holds for the rows an older version loaded before the
    column existed, derived from what they stored: `statements` (UPDATEs, in order), run once,
    by the upkeep that adds the column, when every table of `reads` is there."""

    table: str
    column: str
    reads: tuple[str, ...]
    statements: Callable[[Sql], list[str]]


@dataclass(frozen=True)
class View:
    """A view: its name, meaning, the columns it shows and the table columns it reads.

    `joins` are table columns it reads when they are there (`Sql.has`): without them the
    view is still made, and it is made again, with them, once their tables are synced too.
    """

    name: str
    description: str
    columns: tuple[tuple[str, str], ...]  # (name, description)
    reads: Mapping[str, tuple[str, ...]]
    select: Callable[[Sql], str]
    joins: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    #: what its reads hold for rows loaded before a column it reads was (see Backfill)
    backfills: tuple[Backfill, ...] = ()


def backfills(
    views: Sequence[View], added: Collection[tuple[str, str]], tables: Collection[str]
) -> list[Backfill]:
    """The views' backfills of the columns an upkeep `added` ((table, column)), each once,
    whose reads are among `tables`."""
    found: list[Backfill] = []
    for view in views:
        for fill in view.backfills:
            wanted = (fill.table, fill.column) in added and set(fill.reads) <= set(tables)
            if wanted and fill not in found:
                found.append(fill)
    return found


def run_backfills_duckdb(
    con: duckdb.DuckDBPyConnection,
    views: Sequence[View],
    added: Collection[tuple[str, str]],
    tables: Collection[str],
) -> None:
    """Run the backfills of the columns just `added` (in the upkeep's transaction)."""
    sql = Sql("duckdb", lambda name: f'"{name}"')
    for fill in backfills(views, added, tables):
        rows = 0
        for statement in fill.statements(sql):
            result = con.execute(statement).fetchone()
            rows += int(result[0]) if result else 0
        log.info("column_backfilled", table=fill.table, column=fill.column, rows=rows)


def run_backfills_sql(
    conn: Connection,
    schema: str | None,
    views: Sequence[View],
    added: Collection[tuple[str, str]],
    tables: Collection[str],
) -> None:
    """Run the backfills of the columns just `added` on a SQLAlchemy target."""
    import sqlalchemy as sa  # here, so a DuckDB process never loads SQLAlchemy (26 MB)

    prep = conn.dialect.identifier_preparer

    def qualified(name: str) -> str:
        return f"{prep.quote_schema(schema)}.{prep.quote(name)}" if schema else prep.quote(name)

    sql = Sql(conn.dialect.name, qualified)
    for fill in backfills(views, added, tables):
        rows = 0
        for statement in fill.statements(sql):
            rows += conn.execute(sa.text(statement.replace(":", "\\:"))).rowcount
        log.info("column_backfilled", table=fill.table, column=fill.column, rows=rows)


def _there(reads: Mapping[str, tuple[str, ...]], columns: Mapping[str, set[str]]) -> set[str]:
    return {table for table, cols in reads.items() if set(cols) <= columns.get(table, set())}


def _ready(view: View, columns: Mapping[str, set[str]]) -> bool:
    return len(_there(view.reads, columns)) == len(view.reads)


@dataclass
class ViewPlan:
    """What keeping the views current takes: the DDL to run, in order, and how `sync_views`
    changes (a view created with its fingerprint, or a view gone)."""

    statements: list[str] = field(default_factory=list)
    created: dict[str, str] = field(default_factory=dict)
    gone: list[str] = field(default_factory=list)
    #: each view's own statements (among `statements`), by its name
    steps: dict[str, list[str]] = field(default_factory=dict)

    def keep(self, view: str) -> None:
        """Leave `view` as it is: its `sync_views` row too, so the next upkeep tries again."""
        self.created.pop(view, None)
        if view in self.gone:
            self.gone.remove(view)

    def changed(self) -> list[str]:
        """The views whose `sync_views` row is replaced or deleted."""
        return [*self.created, *self.gone]


def fingerprint(statements: Sequence[str]) -> str:
    """Of the statements that create a view: equal only when they are the same."""
    return hashlib.sha256("\n".join(statements).encode()).hexdigest()[:16]


def plan_views(
    views: Sequence[View],
    sql: Sql,
    columns: Mapping[str, set[str]],
    name: Callable[[str], str],
    *,
    comments: bool,
    present: set[str],
    recorded: Mapping[str, str],
) -> ViewPlan:
    """Create each view whose tables are there unless it is `present` as `recorded` (same
    fingerprint); drop a present view whose tables are not (all columns: `columns`)."""
    plan = ViewPlan()
    for view in views:
        body: list[str] = []
        if _ready(view, columns):
            joined = sql.having(frozenset(_there(view.joins, columns)))
            body.append(f"CREATE VIEW {name(view.name)} AS {view.select(joined)}")
            if comments:
                body.append(f"COMMENT ON VIEW {name(view.name)} IS '{_quoted(view.description)}'")
                body += [
                    f"COMMENT ON COLUMN {name(view.name)}.{column} IS '{_quoted(text)}'"
                    for column, text in view.columns
                ]
        there = view.name in present
        mark = fingerprint(body) if body else None
        if mark is not None and there and recorded.get(view.name) == mark:
            continue  # as it was made: its readers are left alone
        if mark is None and not there:
            if view.name in recorded:
                plan.gone.append(view.name)
            continue
        step = [f"DROP VIEW IF EXISTS {name(view.name)}", *body]
        plan.statements += step
        plan.steps[view.name] = step
        if mark is not None:
            plan.created[view.name] = mark
        else:
            plan.gone.append(view.name)
    return plan


def create_views_duckdb(
    con: duckdb.DuckDBPyConnection, views: Sequence[View], recorded: Mapping[str, str]
) -> None:
    """Keep every view current (see the module doc); `sync_views` must exist, and held
    `recorded` (view -> fingerprint) when the upkeep began (catalog.records_duckdb)."""
    columns: dict[str, set[str]] = {}
    for table, column in con.execute(
        "SELECT table_name, column_name FROM information_schema.columns "
        "WHERE table_schema = current_schema() AND table_name NOT LIKE 'v\\_%' ESCAPE '\\'"
    ).fetchall():
        columns.setdefault(table, set()).add(column)
    present = {
        str(row[0])
        for row in con.execute(
            "SELECT view_name FROM duckdb_views() WHERE NOT internal "
            "AND database_name = current_database() AND schema_name = current_schema()"
        ).fetchall()
    }
    quote = lambda name: f'"{name}"'  # noqa: E731  # one expression, used twice
    plan = plan_views(
        views,
        Sql("duckdb", quote),
        columns,
        quote,
        comments=True,
        present=present,
        recorded=recorded,
    )
    if not plan.changed():
        return
    now = datetime.now(UTC)
    with duckdb_batch(con):  # readers never see a view missing between its drop and create
        for statement in plan.statements:
            con.execute(statement)
        con.execute(
            "DELETE FROM sync_views WHERE view_name IN (SELECT unnest(?))", [plan.changed()]
        )
        for view, mark in plan.created.items():
            con.execute("INSERT INTO sync_views VALUES (?, ?, ?)", [view, mark, now])
    log.info("views_created", created=len(plan.created), dropped=len(plan.gone))


def _quoted(text: str) -> str:
    return text.replace("'", "''")


def create_views_sql(
    conn: Connection,
    catalog: Catalog,
    views: Sequence[View],
    *,
    comments: bool,
    records: sa.Table,
    recorded: Mapping[str, str],
) -> None:
    """Keep every view current on a SQLAlchemy target (see the module doc); `records` is its
    `sync_views`, which held `recorded` (view -> fingerprint) when the upkeep began
    (`Catalog.records`); `comments`: the dialect keeps comments on views."""
    dialect = conn.dialect
    prep = dialect.identifier_preparer
    schema = catalog.schema

    def qualified(name: str) -> str:
        return f"{prep.quote_schema(schema)}.{prep.quote(name)}" if schema else prep.quote(name)

    columns = {table: {c["name"] for c in cols} for table, cols in catalog.columns().items()}
    plan = plan_views(
        views,
        Sql(dialect.name, qualified),
        columns,
        qualified,
        comments=comments,
        present=catalog.view_names(),
        recorded=recorded,
    )
    if not plan.changed():
        return
    if dialect.name == "postgresql":
        _replace_postgresql(conn, plan)
    else:
        for statement in plan.statements:
            _execute(conn, statement)
    if not plan.changed():
        return
    conn.execute(records.delete().where(records.c.view_name.in_(plan.changed())))
    now = datetime.now(UTC)
    if plan.created:
        conn.execute(
            records.insert(),
            [
                {"view_name": v, "fingerprint": f, "created_at": now}
                for v, f in plan.created.items()
            ],
        )
    log.info("views_created", created=len(plan.created), dropped=len(plan.gone))


def _execute(conn: Connection, statement: str) -> None:
    import sqlalchemy as sa

    conn.execute(sa.text(statement.replace(":", "\\:")))  # a colon is no bind parameter here


#: PostgreSQL's refusals to drop or replace a view that another object reads: 2BP01
#: (dependent objects still exist), 42P16 (CREATE OR REPLACE cannot drop, rename or
#: retype a column the view had).
_DEPENDED_ON = frozenset({"2BP01", "42P16"})


def _replace_postgresql(conn: Connection, plan: ViewPlan) -> None:
    """Run `plan` view by view, each in a savepoint. PostgreSQL refuses to drop a view that
    another view reads (a BI user's own, made on ours): such a view is replaced in place
    (CREATE OR REPLACE: its columns kept, new ones after them), and when that is refused
    too, kept as it is, with a `view_kept` warning on every upkeep until what reads it is
    dropped. A view of ours must never stop the sync of every stream."""
    import sqlalchemy as sa

    for view, step in plan.steps.items():
        tries = [step]
        if len(step) > 1:  # created again, not only dropped
            tries.append([step[1].replace("CREATE VIEW", "CREATE OR REPLACE VIEW", 1), *step[2:]])
        for n, statements in enumerate(tries, 1):
            try:
                with conn.begin_nested():
                    for statement in statements:
                        _execute(conn, statement)
                break
            except sa.exc.DBAPIError as exc:
                code = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
                if code not in _DEPENDED_ON:
                    raise
                if n == len(tries):
                    reason = str(exc.orig).strip().splitlines()[0]
                    log.warning("view_kept", view=view, reason=reason)
                    plan.keep(view)
