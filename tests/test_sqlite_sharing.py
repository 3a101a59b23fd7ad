"""A SQLite file shared: a reader (a BI tool, `sqlite3`) or a second writer (another stream's
tick, another process) beside a tick's loads, in a directory whose name holds spaces."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest

from sitoo_sync.normalize.columns import rows_to_arrow
from sitoo_sync.normalize.tables import Table, integer, text
from sitoo_sync.warehouse import open_warehouse
from sitoo_sync.warehouse.base import SYSTEM_TABLES

ROWS = Table("shared_rows", (integer("k", nullable=False), text("v")), key=("k",))
#: Longer than SQLite's default busy timeout (5 s), the most the loads waited before.
HOLD_SECONDS = 6.5


def prepared(tmp_path: Path) -> tuple[str, Path]:
    """A SQLite target whose tables a first tick made: (its URL, its file)."""
    path = tmp_path / "my exports" / "sitoo sync.sqlite"
    path.parent.mkdir()
    url = f"sqlite:///{path}"
    warehouse = open_warehouse(url)
    try:
        warehouse.ensure_schema([*SYSTEM_TABLES, ROWS])
    finally:
        warehouse.close()
    return url, path


def load_in_thread(url: str, errors: list[BaseException]) -> threading.Thread:
    """A thread that loads one row and its cursor in one transaction, as a tick does."""

    def load() -> None:
        warehouse = open_warehouse(url)
        try:
            with warehouse.transaction():
                warehouse.upsert(ROWS, rows_to_arrow(ROWS, [(1, "loaded")]))
                warehouse.set_cursor("s", "p", "1", rows=1)
        except BaseException as exc:
            errors.append(exc)
        finally:
            warehouse.close()

    thread = threading.Thread(target=load)
    thread.start()
    return thread


def test_a_reader_holding_a_transaction_does_not_keep_a_load_from_committing(
    tmp_path: Path,
) -> None:
    """A reader in the middle of a read transaction (a BI tool's long query) neither fails
    nor delays a tick's commit, and still sees what it saw when it began."""
    url, path = prepared(tmp_path)
    reader = sqlite3.connect(path, isolation_level=None)
    errors: list[BaseException] = []
    try:
        reader.execute("BEGIN")
        assert reader.execute("SELECT count(*) FROM shared_rows").fetchall() == [(0,)]
        started = time.monotonic()
        thread = load_in_thread(url, errors)
        thread.join(HOLD_SECONDS)
        took = time.monotonic() - started
        assert reader.execute("SELECT count(*) FROM shared_rows").fetchall() == [(0,)]
    finally:
        reader.close()
        thread.join()
    assert errors == []
    assert took < 3
    check = sqlite3.connect(path)
    try:
        assert check.execute("SELECT k, v FROM shared_rows").fetchall() == [(1, "loaded")]
    finally:
        check.close()


@pytest.mark.slow
def test_a_load_waits_for_another_writers_long_transaction(tmp_path: Path) -> None:
    """While another writer holds the file's write lock for longer than SQLite's default 5 s
    (another stream's large commit), a tick's load waits for it and commits after."""
    url, path = prepared(tmp_path)
    other = sqlite3.connect(path, isolation_level=None, timeout=30)
    errors: list[BaseException] = []
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO shared_rows (k, v) VALUES (2, 'other')")
    thread = load_in_thread(url, errors)
    time.sleep(HOLD_SECONDS)
    other.execute("COMMIT")
    other.close()
    thread.join()
    assert errors == []
    check = sqlite3.connect(path)
    try:
        rows = check.execute("SELECT k, v FROM shared_rows ORDER BY k").fetchall()
    finally:
        check.close()
    assert rows == [(1, "loaded"), (2, "other")]


def test_a_url_with_an_escaped_space_is_the_file_sqlalchemy_opens(tmp_path: Path) -> None:
    """`%20` in a SQLite URL is a space, as SQLAlchemy reads it: the file's directory is
    found (not refused as missing) and its lock files lie beside the file it opens."""
    folder = tmp_path / "my exports"
    folder.mkdir()
    url = f"sqlite:///{tmp_path}/my%20exports/sitoo.sqlite"
    warehouse = open_warehouse(url)
    try:
        warehouse.ensure_schema([*SYSTEM_TABLES, ROWS])
        lock = warehouse.lock("shared_rows")
        assert lock is not None
        lock.release()
    finally:
        warehouse.close()
    names = {p.name for p in folder.iterdir()}
    assert {"sitoo.sqlite", "sitoo.sqlite.shared_rows.lock"} <= names
    assert not (tmp_path / "my%20exports").exists()
