"""Ready views for BI, rendered and created on every target: the dialect side of them.

What a view says (its SELECT, its columns and their meaning) is declared with the streams'
tables (sitoo_sync/views.py); here is how it reaches a database. `Sql` writes the parts
that differ per dialect (SQLite has no decimal type, date arithmetic differs), and
`create_views_duckdb` / `create_views_sql` drop every view given and create again those
whose tables and columns all exist (a target that syncs only some streams gets the views of
those streams), at the end of every `ensure_schema`, so a new version of the tool brings its
new definitions. Where the target keeps comments, a view and its columns are described.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sitoo_sync.log import get_logger
from sitoo_sync.warehouse.comments import duckdb_batch

if TYPE_CHECKING:
    import duckdb
    from sqlalchemy.engine import Connection

log = get_logger(__name__)


class Sql:
    """The dialect-dependent pieces of SQL text for one target (views, verify's queries)."""

    def __init__(self, dialect: str, table: Callable[[str], str]) -> None:
        self.dialect = dialect
        self.t = table

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

    def days_since(self, at: str) -> str:
        """Whole days from the UTC instant `at` to now."""
        if self.dialect == "sqlite":
            return f"CAST(julianday('now') - julianday({at}) AS INTEGER)"
        if self.dialect in ("mysql", "mariadb"):
            return f"FLOOR(TIMESTAMPDIFF(SECOND, {at}, UTC_TIMESTAMP()) / 86400)"
        if self.dialect == "duckdb":
            return f"CAST(floor((epoch(now()) - epoch({at})) / 86400) AS BIGINT)"
        return f"CAST(floor(extract(epoch FROM (now() - {at})) / 86400) AS BIGINT)"


@dataclass(frozen=True)
class View:
    """A view: its name, meaning, the columns it shows and the table columns it reads."""

    name: str
    description: str
    columns: tuple[tuple[str, str], ...]  # (name, description)
    reads: Mapping[str, tuple[str, ...]]
    select: Callable[[Sql], str]


def _ready(view: View, columns: Mapping[str, set[str]]) -> bool:
    return all(set(cols) <= columns.get(table, set()) for table, cols in view.reads.items())


def _statements(
    views: Sequence[View],
    sql: Sql,
    columns: Mapping[str, set[str]],
    name: Callable[[str], str],
    *,
    comments: bool,
) -> list[str]:
    """Drop every view; create those whose tables are there, with comments if supported."""
    out = []
    for view in views:
        out.append(f"DROP VIEW IF EXISTS {name(view.name)}")
        if not _ready(view, columns):
            continue
        out.append(f"CREATE VIEW {name(view.name)} AS {view.select(sql)}")
        if comments:
            out.append(f"COMMENT ON VIEW {name(view.name)} IS '{_quoted(view.description)}'")
            out += [
                f"COMMENT ON COLUMN {name(view.name)}.{column} IS '{_quoted(text)}'"
                for column, text in view.columns
            ]
    return out


def create_views_duckdb(con: duckdb.DuckDBPyConnection, views: Sequence[View]) -> None:
    """Drop and create every view whose tables exist, described in comments."""
    columns: dict[str, set[str]] = {}
    for table, column in con.execute(
        "SELECT table_name, column_name FROM information_schema.columns "
        "WHERE table_schema = current_schema() AND table_name NOT LIKE 'v\\_%' ESCAPE '\\'"
    ).fetchall():
        columns.setdefault(table, set()).add(column)
    quote = lambda name: f'"{name}"'  # noqa: E731  # one expression, used twice
    statements = _statements(views, Sql("duckdb", quote), columns, quote, comments=True)
    with duckdb_batch(con):  # readers never see a view missing between its drop and create
        for statement in statements:
            con.execute(statement)


def _quoted(text: str) -> str:
    return text.replace("'", "''")


def create_views_sql(
    conn: Connection, schema: str | None, views: Sequence[View], *, comments: bool
) -> None:
    """Drop and create every view whose tables exist on a SQLAlchemy target (described in
    comments where the dialect keeps them on views: `comments`)."""
    import sqlalchemy as sa  # here, so a DuckDB process never loads SQLAlchemy (26 MB)

    dialect = conn.dialect
    prep = dialect.identifier_preparer

    def qualified(name: str) -> str:
        return f"{prep.quote_schema(schema)}.{prep.quote(name)}" if schema else prep.quote(name)

    inspector = sa.inspect(conn)
    present = [t for t in inspector.get_table_names(schema=schema) if not t.startswith("v_")]
    columns = {
        table: {c["name"] for c in cols}
        for (_, table), cols in inspector.get_multi_columns(
            schema=schema, filter_names=present
        ).items()
    }
    statements = _statements(
        views, Sql(dialect.name, qualified), columns, qualified, comments=comments
    )
    for statement in statements:  # a colon in SQL text is not a bind parameter here
        conn.execute(sa.text(statement.replace(":", "\\:")))
    log.debug("views_created", count=sum(_ready(v, columns) for v in views))
