"""What a target's catalog holds for the schema upkeep, and the schema revision it records.

`ensure_schema` checks which tables exist and which columns they have, the comments read the
tables' and columns' comments, and the views the columns of every table and the views that
exist. Each used to ask the catalog itself: three reflections of the same columns, and ~45 ms
of every tick's start on an up-to-date PostgreSQL schema before its first request. Here they
share one reading (`Catalog`, SQLAlchemy targets): each answer is remembered (SQLAlchemy's
inspector remembers the answers about one table, not those about many at once), and the
columns are read once, of the tables the upkeep names (`tables`), or, when it keeps views,
which may read any table, of every table of the schema but the views' `v_` names. After DDL
the answers are stale: `changed` forgets them.

**The schema revision.** `SCHEMA_REVISION` numbers what this code's upkeep makes of a
warehouse and what its writers store; `sync_schema` keeps a row for each revision that
upgraded the warehouse. The upkeep of a writer (a tick's, reset's: it keeps the system
tables, `sync_schema` among them) reads the newest one in the statement that already reads
`sync_views` (`Catalog.records`, `records_duckdb`: no round trip of its own) and, when it is
newer than this code's, refuses before it makes or writes anything (`check_revision`, one
line: `SchemaTooNew`): an older process must not write rows without the columns a newer one
added, nor create its own versions of the views, which the two would then take turns
replacing. A tick's upkeep (given the views) of a warehouse at an older revision, or at
none (made before revisions were recorded), runs the upgrade steps of each revision since
(upgrade_steps.py) over every table this version declares (`declared`, given by the caller: the
warehouse knows no stream), then records this one, in one transaction; `reset` and
`verify` record nothing. Processes that meet take turns in the upkeep (the server's DDL
lock, a lock file beside a SQLite file, one DuckDB process at a time): the newer records
its revision, the older then refuses (MySQL's DDL lock is freed just before the commit: an
older upkeep in that instant goes on for that tick). A tick already past its upkeep when a
newer process upgrades ends as it began. Versions from before revisions cannot check: see
README, Upgrading.
"""

from __future__ import annotations

import socket
from collections.abc import Collection, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sitoo_sync import __version__
from sitoo_sync.errors import SchemaTooNew
from sitoo_sync.log import get_logger
from sitoo_sync.normalize.tables import Table, integer, text, timestamp

if TYPE_CHECKING:
    import duckdb
    import sqlalchemy as sa
    from sqlalchemy.engine import Connection
    from sqlalchemy.engine.reflection import Inspector

log = get_logger(__name__)

#: The prefix of the views' names (views.py): their columns are not reflected.
VIEW_PREFIX = "v_"

#: The revision of what this code's schema upkeep makes of a warehouse and what its writers
#: store in it. Revision 1 is the first recorded: it holds the JSON columns' SQL NULL on
#: MySQL/MariaDB (before it, 'null' texts) and `sync_schema` itself; a warehouse without a
#: `sync_schema` row is at revision 0.
#:
#: Bump it by one in a release that changes any of these, and say so in the release notes:
#: * a table or column declaration: a new table or column, a kind, a key, a description (an
#:   older process would leave the new column NULL in what it writes, or put its own
#:   comments back);
#: * a view: its SELECT, columns or description (an older process would make its own again,
#:   and the two would take turns replacing each other's);
#: * what a writer stores in a column it already had (an older process goes on storing it
#:   the old way), or what the rows an older version left need once (a `Backfill`, or a
#:   step of `upgrade_steps.STEPS` at the new revision).
#: Once a release, not a commit: until a version carrying a revision is deployed, more
#: changes join it. tests/test_schema_revision.py keeps a fingerprint of the declarations
#: for the revision, and fails when they change until one of the two is done.
SCHEMA_REVISION = 1

SYNC_SCHEMA = Table(
    name="sync_schema",
    description=(
        "Each schema revision of sitoo-sync that brought this warehouse up to date: one row "
        "a revision. A sitoo-sync of an older revision than the newest here refuses to write "
        "(README, Upgrading)."
    ),
    columns=(
        integer(
            "revision",
            "The schema revision (README, Upgrading): a number that grows with each release "
            "that changes the tables, the views or what is stored in them.",
            nullable=False,
        ),
        text("version", "The sitoo-sync version that recorded it."),
        timestamp("recorded_at", "When it was recorded (UTC)."),
        text("host", "The host name of the process that recorded it."),
    ),
    key=("revision",),
)


def checks_revision(tables: Sequence[Table]) -> bool:
    """Whether the upkeep of `tables` checks the revision: a writer's, which keeps the
    system tables (base.SYSTEM_TABLES: a tick's, reset's), `sync_schema` among them; not
    another's (verify's findings)."""
    return any(t.name == SYNC_SCHEMA.name for t in tables)


def check_revision(recorded: int | None) -> None:
    """Refuse (`SchemaTooNew`) a warehouse whose newest recorded revision is newer than this
    code's: this process is an older version than one that upgraded it."""
    if recorded is not None and recorded > SCHEMA_REVISION:
        raise SchemaTooNew(
            f"this warehouse was upgraded by a newer sitoo-sync (schema revision {recorded}; "
            f"this is sitoo-sync {__version__}, revision {SCHEMA_REVISION}): nothing was "
            "written; upgrade this process too (README, Upgrading)"
        )


def upgrades(recorded: int | None) -> bool:
    """Whether a warehouse at `recorded` (None: no revision recorded) is to be upgraded."""
    return (recorded or 0) < SCHEMA_REVISION


def revision_row() -> dict[str, Any]:
    """The row of `sync_schema` that records this code's revision."""
    return {
        "revision": SCHEMA_REVISION,
        "version": __version__,
        "recorded_at": datetime.now(UTC),
        "host": socket.gethostname(),
    }


def log_recorded(previous: int | None) -> None:
    """Say that this code's revision was recorded, over `previous` (None: none was)."""
    log.info("schema_revision_recorded", revision=SCHEMA_REVISION, previous=previous)


# ---- the upgrade steps ----------------------------------------------------------------


# ---- what the upkeep recorded ---------------------------------------------------------


def _split(rows: Sequence[Sequence[Any]]) -> tuple[dict[str, str], int | None]:
    """Rows of (view_name, fingerprint, revision): the views' fingerprints, and the newest
    revision of the rows without a view name (a row a revision)."""
    views = {str(v): str(f) for v, f, _r in rows if v is not None}
    revisions = [int(r) for v, _f, r in rows if v is None and r is not None]
    return views, max(revisions, default=None)


def records_duckdb(
    con: duckdb.DuckDBPyConnection, *, views: str | None, revisions: str | None
) -> tuple[dict[str, str], int | None]:
    """What a DuckDB warehouse recorded: each view's fingerprint (`views`: `sync_views`) and
    its newest schema revision (`revisions`: `sync_schema`; None: none), in one statement;
    a table given as None (not there, or not this upkeep's) is not read."""
    parts = []
    if views is not None:
        parts.append(f'SELECT view_name, fingerprint, NULL FROM "{views}"')
    if revisions is not None:
        # (each revision's row rather than DuckDB's max(): 0.14 ms over the views' read
        # alone, not 0.22; min of 40 x 20 reads)
        parts.append(f'SELECT NULL, NULL, revision FROM "{revisions}"')
    if not parts:
        return {}, None
    return _split(con.execute(" UNION ALL ".join(parts)).fetchall())


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

    def records(
        self, views: sa.Table | None, revisions: sa.Table | None
    ) -> tuple[dict[str, str], int | None]:
        """What the upkeep recorded: each view's fingerprint (`views`: `sync_views`) and the
        newest schema revision (`revisions`: `sync_schema`; None: none), in one statement;
        a table given as None (not there, or not this upkeep's) is not read."""
        import sqlalchemy as sa

        statement: Any = None  # a select of three columns, or a union of two
        if views is not None:
            statement = sa.select(views.c.view_name, views.c.fingerprint, sa.null())
        if revisions is not None:
            newest = sa.select(sa.null(), sa.null(), revisions.c.revision)
            statement = newest if statement is None else sa.union_all(statement, newest)
        if statement is None:
            return {}, None
        return _split([tuple(row) for row in self._conn.execute(statement)])
