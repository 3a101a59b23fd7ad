"""The data dictionary in the database: each table's and column's description as its comment.

BI tools (DBeaver, Metabase, Power BI, the DuckDB and psql CLIs) show a table's and column's
comment beside its name, so the declarations' descriptions are written where they look:

* DuckDB and PostgreSQL: `COMMENT ON TABLE` / `COMMENT ON COLUMN`;
* MySQL/MariaDB: the table's `COMMENT=` and each column's `COMMENT` (a column's comment can
  only be changed by restating the column, so all of a table's changes go in one ALTER);
* SQLite and any dialect without comments: nothing, and no error.

Only what differs from the catalog is written, so a tick on an up-to-date warehouse reads the
catalog once and writes nothing. New SQLAlchemy tables already get their comments at CREATE
time (sql_types.sa_table); this catches up tables made before, and changed descriptions.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from sitoo_sync.log import get_logger
from sitoo_sync.normalize.tables import Table

if TYPE_CHECKING:
    import duckdb
    import sqlalchemy as sa
    from sqlalchemy.engine import Connection

    from sitoo_sync.warehouse.catalog import Catalog

log = get_logger(__name__)

Comments = dict[tuple[str, str], str]  # (table, column or "") -> comment


def wanted(tables: Iterable[Table]) -> Comments:
    """The comment each table ("" column) and column should carry."""
    out: Comments = {}
    for table in tables:
        out[(table.name, "")] = table.description
        for col in table.columns:
            out[(table.name, col.name)] = col.description
    return out


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


@contextmanager
def duckdb_batch(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """Run catalog writes in one transaction (a fresh warehouse's ~400 comments take 0.1 s
    instead of 2 s, one commit instead of one each); inside a caller's transaction, join it."""
    import duckdb

    try:
        con.begin()
    except duckdb.TransactionException:  # already in one: its commit covers these writes
        yield
        return
    try:
        yield
    except BaseException:
        con.rollback()
        raise
    con.commit()


def _execute(conn: Connection, sql: str) -> None:
    """Run DDL holding literal text: a colon in a comment must not read as a bind parameter."""
    import sqlalchemy as sa  # SQL targets only: a DuckDB process never loads SQLAlchemy

    conn.execute(sa.text(sql.replace(":", "\\:")))


def _stale(want: Comments, have: Mapping[tuple[str, str], str | None]) -> Comments:
    """The wanted comments the catalog lacks or holds differently (only for existing objects)."""
    return {k: v for k, v in want.items() if v and k in have and (have[k] or "") != v}


def comment_duckdb(con: duckdb.DuckDBPyConnection, tables: Sequence[Table]) -> int:
    """Bring DuckDB's table and column comments in line with `tables`; how many were written."""
    stale = _stale(wanted(tables), catalog_duckdb(con))
    with duckdb_batch(con):
        for (table, column), text in stale.items():
            target = f'TABLE "{table}"' if not column else f'COLUMN "{table}"."{column}"'
            con.execute(f"COMMENT ON {target} IS {_literal(text)}")
    if stale:
        log.info("comments_written", count=len(stale))
    return len(stale)


def catalog_duckdb(con: duckdb.DuckDBPyConnection) -> dict[tuple[str, str], str | None]:
    """Current comments of every table ("" column) and column of DuckDB's current schema."""
    have: dict[tuple[str, str], str | None] = {}
    where = "WHERE database_name = current_database() AND schema_name = current_schema()"
    query = f"SELECT table_name, comment FROM duckdb_tables() {where}"
    for name, comment in con.execute(query).fetchall():
        have[(name, "")] = comment
    for name, column, comment in con.execute(
        f"SELECT table_name, column_name, comment FROM duckdb_columns() {where}"
    ).fetchall():
        have[(name, column)] = comment
    return have


def catalog_sql(catalog: Catalog, names: list[str]) -> dict[tuple[str, str], Any]:
    """Current comments of the tables `names` that exist, from SQLAlchemy's inspector."""
    return _catalog(catalog, names)[0]


def _catalog(
    catalog: Catalog, names: list[str]
) -> tuple[dict[tuple[str, str], Any], set[tuple[str, str]]]:
    """The comments of the tables `names` that exist, and their AUTO_INCREMENT columns."""
    present = set(catalog.table_names()) & set(names)
    if not present:
        return {}, set()
    have: dict[tuple[str, str], Any] = {}
    auto_increment: set[tuple[str, str]] = set()
    for table, text in catalog.table_comments(sorted(present)).items():
        have[(table, "")] = text
    for table, columns in catalog.columns().items():
        if table not in present:
            continue
        for col in columns:
            have[(table, col["name"])] = col.get("comment")
            if col.get("autoincrement") is True:
                auto_increment.add((table, col["name"]))
    return have, auto_increment


def comment_sql(conn: Connection, tables: Sequence[sa.Table], catalog: Catalog) -> int:
    """Bring a SQLAlchemy target's comments in line with `tables`; how many were written.

    `tables` are the SQLAlchemy tables of the declarations (sql_types.sa_table), which carry
    the descriptions as `comment`, and, for MySQL, the exact column definition to restate.
    The caller asks only for dialects whose strategy keeps comments (dialects.py).
    """
    import sqlalchemy as sa

    dialect = conn.dialect
    if not dialect.supports_comments:
        return 0
    by_name = {t.name: t for t in tables}
    want: Comments = {}
    for t in tables:
        want[(t.name, "")] = t.comment or ""
        for col in t.columns:
            want[(t.name, col.name)] = col.comment or ""
    restates = dialect.name != "postgresql"  # MySQL writes a comment by restating the column
    have, auto_increment = _catalog(catalog, list(by_name))
    stale = _stale(want, have)
    if restates:
        # A key column an earlier version made AUTO_INCREMENT (MySQL stores an id of 0 as
        # the next number there) is restated too: its declaration has no such attribute.
        stale |= {k: want[k] for k in auto_increment if want.get(k)}
    if not stale:
        return 0
    prep = dialect.identifier_preparer
    stale_tables = sorted({table for table, _ in stale})
    if not restates:
        for (table, column), text in stale.items():
            target = prep.format_table(by_name[table])
            what = f"TABLE {target}" if not column else f"COLUMN {target}.{prep.quote(column)}"
            _execute(conn, f"COMMENT ON {what} IS {_literal(text)}")
    else:
        # Compiling the CREATE of the table gives the compiler that renders a column's spec.
        compiler = dialect.ddl_compiler(dialect, sa.schema.CreateTable(by_name[stale_tables[0]]))
        spec = compiler.get_column_specification
        for name in stale_tables:
            t = by_name[name]
            # The compiler doubles a literal's % for the driver; sa.text passes it as is.
            parts = [
                f"MODIFY COLUMN {spec(t.c[column]).replace('%%', '%')}"
                for (table, column) in stale
                if table == name and column
            ]
            if (name, "") in stale:
                parts.append(f"COMMENT = {_literal(stale[(name, '')])}")
            _execute(conn, f"ALTER TABLE {prep.format_table(t)} {', '.join(parts)}")
    log.info("comments_written", count=len(stale))
    return len(stale)
