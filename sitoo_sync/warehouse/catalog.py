"""What a SQLAlchemy target's catalog holds, read once for a tick's schema upkeep.

`ensure_schema` checks which tables exist and which columns they have, the comments read the
tables' and columns' comments, and the views the columns of every table and the views that
exist. Each used to ask the catalog itself: three reflections of the same columns, and ~45 ms
of every tick's start on an up-to-date PostgreSQL schema before its first request. Here they
share one reading: each answer is remembered (SQLAlchemy's inspector remembers the answers
about one table, not those about many at once), and the columns are read once, of the tables
the upkeep names (`tables`), or, when it keeps views, which may read any table, of every
table of the schema but the views' `v_` names. After DDL the answers are stale: `changed`
forgets them.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection
    from sqlalchemy.engine.reflection import Inspector

#: The prefix of the views' names (views.py): their columns are not reflected.
VIEW_PREFIX = "v_"


class Catalog:
    """The catalog of one schema of a SQLAlchemy target, as one round of upkeep reads it."""

    def __init__(
        self, conn: Connection, schema: str | None, *, tables: Collection[str] | None = None
    ) -> None:
        """`tables`: those whose columns are read (None: every table of the schema)."""
        self._conn = conn
        self.schema = schema
        self._tables = None if tables is None else frozenset(tables)
        self._inspector: Inspector | None = None
        self._answers: dict[Any, Any] = {}

    @property
    def inspector(self) -> Inspector:
        """The inspector the upkeep reads the catalog with."""
        if self._inspector is None:
            import sqlalchemy as sa  # SQL targets only: a DuckDB process never loads it

            self._inspector = sa.inspect(self._conn)
        return self._inspector

    def changed(self) -> None:
        """DDL ran: every later question reads the catalog again."""
        self._inspector = None
        self._answers.clear()

    def table_names(self) -> list[str]:
        """The schema's tables."""
        if "tables" not in self._answers:
            self._answers["tables"] = list(self.inspector.get_table_names(schema=self.schema))
        return list(self._answers["tables"])

    def view_names(self) -> set[str]:
        """The schema's views."""
        if "views" not in self._answers:
            self._answers["views"] = set(self.inspector.get_view_names(schema=self.schema))
        return set(self._answers["views"])

    def columns(self) -> dict[str, list[Any]]:
        """Each table's reflected columns (SQLAlchemy's column dicts: name, comment,
        autoincrement ...), of the tables asked for that exist (see `tables`)."""
        if "columns" not in self._answers:
            present = (t for t in self.table_names() if not t.startswith(VIEW_PREFIX))
            names = sorted(t for t in present if self._tables is None or t in self._tables)
            reflected = (
                self.inspector.get_multi_columns(schema=self.schema, filter_names=names)
                if names
                else {}
            )
            self._answers["columns"] = {name: list(cols) for (_s, name), cols in reflected.items()}
        return dict(self._answers["columns"])

    def table_comments(self, names: list[str]) -> dict[str, str | None]:
        """The comment of each of the tables `names` (which exist)."""
        key = ("table comments", *sorted(names))
        if key not in self._answers:
            reflected = self.inspector.get_multi_table_comment(
                schema=self.schema, filter_names=sorted(names)
            )
            self._answers[key] = {n: info.get("text") for (_s, n), info in reflected.items()}
        return dict(self._answers[key])
