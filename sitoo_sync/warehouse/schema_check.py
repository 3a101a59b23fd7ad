"""Whether a warehouse's schema is already what a tick declares: two reads, not the whole check.

`ensure_schema` makes the schema what the declarations say: it creates missing tables, adds
missing columns, writes the comments and keeps the views current. Done in full that is a
dozen catalog reads and, on SQLAlchemy, reflection parsed in Python: 35-45 ms of a
PostgreSQL tick in a fresh process (a cron tick, a replica), ~16 ms on DuckDB, paid by every
tick for a schema that is nearly always as the last one left it.

So the whole check ends by recording a fingerprint of what it was asked to make
(`sync_schema`), and the next one first reads the catalog's table and column names (views
included), the recorded fingerprint and the recorded views. When the fingerprint is this
tick's, every declared table has every declared column, and every view `sync_views` records
is there, nothing is left to do. A table, column or view dropped by hand is noticed and made
again. A new version, other declarations (other streams, `verify`'s table) or other views
make another fingerprint, hence the whole check, which then records that one in place of
the old.

What the quick check does not see is a comment or a view's statement edited by hand, which
the whole check would restore: deleting the row of `sync_schema` makes the next tick check
in full.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence

from sitoo_sync import __version__
from sitoo_sync.normalize.tables import Table
from sitoo_sync.warehouse.views import Sql, View


def fingerprint(tables: Sequence[Table], views: Sequence[View], sql: Sql) -> str:
    """Of everything a whole check makes from `tables` and `views` on a target whose SQL
    `sql` writes: equal only for the same version, tables, columns, comments and views."""
    parts = [__version__, sql.dialect]
    parts += [repr(table) for table in tables]  # name, columns with kinds and comments, keys
    for view in views:
        parts += [view.name, view.description, repr(view.columns), repr(sorted(view.reads.items()))]
        parts.append(view.select(sql))
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def tables_there(tables: Sequence[Table], catalog: Mapping[str, set[str]]) -> bool:
    """Every table of `tables` is in `catalog` (table -> column names) with all its columns."""
    return all(set(t.column_names) <= catalog.get(t.name, set()) for t in tables)


def in_place(
    tables: Sequence[Table],
    catalog: Mapping[str, set[str]],
    *,
    mark: str,
    recorded_marks: Iterable[str],
    recorded_views: Iterable[str],
) -> bool:
    """Nothing for a whole check to do: the recorded fingerprint is `mark`, every table has
    its columns, and every recorded view is in `catalog`."""
    return (
        mark in set(recorded_marks)
        and tables_there(tables, catalog)
        and all(view in catalog for view in recorded_views)
    )
