"""A copy of a synced target: a module syncs a world once and each test changes a copy.

Syncing a simulated world of weeks takes seconds per target; copying what it left takes a
fraction of that. A file target is copied as a file; a server target gets a schema of its
own, made as a tick makes it (the same tables and views), each table then holding exactly
the source's rows.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sitoo_sync.streams import select_streams
from sitoo_sync.views import VIEWS
from sitoo_sync.warehouse import open_warehouse
from sitoo_sync.warehouse.base import SYSTEM_TABLES
from sitoo_sync.warehouse.sqla import SqlWarehouse
from tests.targets import Target, server_schema

#: What a file target keeps beside the file while it is open: none of it once the last
#: connection closed, but copied when there.
_SIDE_FILES = (".wal", "-wal", "-shm", "-journal")


@contextmanager
def copy_of(source: Target, tmp_path: Path) -> Iterator[Target]:
    """A target of `source`'s kind holding what `source` holds (every table a default tick
    makes, and the BI views), for a test to change; `source` is left as it was."""
    if source.name in ("duckdb", "sqlite"):
        yield _copied_file(source, tmp_path)
        return
    with server_schema(source.name, source.url) as copy:
        _copy_tables(source, copy)
        yield copy


def _copied_file(source: Target, tmp_path: Path) -> Target:
    scheme, _, path = source.url.partition(":///")
    original = Path(path)
    copy = tmp_path / f"copy-{uuid.uuid4().hex[:6]}{original.suffix}"
    shutil.copyfile(original, copy)
    for suffix in _SIDE_FILES:
        side = Path(f"{original}{suffix}")
        if side.exists():
            shutil.copyfile(side, Path(f"{copy}{suffix}"))
    return Target(source.name, f"{scheme}:///{copy}")


def _copy_tables(source: Target, copy: Target) -> None:
    """Make `copy`'s schema as a default tick does, then give each table `source`'s rows
    (server side: nothing crosses the wire)."""
    tables = [*SYSTEM_TABLES, *(t for s in select_streams(None) for t in s.tables)]
    old = open_warehouse(source.url, schema=source.schema)
    new = open_warehouse(copy.url, schema=copy.schema)
    try:
        assert isinstance(new, SqlWarehouse)
        quote = new.engine.dialect.identifier_preparer.quote
        new.ensure_schema(tables, VIEWS)
        names = old.table_names()
        assert new.table_names() == names, "the copy's tables are not the source's"
        declared = {t.name: t for t in tables}
        with new.transaction():
            for name in sorted(names):
                columns = ", ".join(quote(c) for c in declared[name].column_names)
                new.execute(f"DELETE FROM {new.qualified(name)}")
                new.execute(
                    f"INSERT INTO {new.qualified(name)} ({columns}) "
                    f"SELECT {columns} FROM {old.qualified(name)}"
                )
    finally:
        new.close()
        old.close()
