"""How long a tick holds the DuckDB file: a reader gets in within the hold's budget however
the tick uses it, and a writer waiting for another process's tick meets its pause."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import duckdb
import pytest

from sitoo_sync.warehouse import duckdb as duckdb_target
from sitoo_sync.warehouse.base import SYSTEM_TABLES
from sitoo_sync.warehouse.duckdb import DuckDBWarehouse

#: A BI reader: tries to open the file read-only every 50 ms for argv[2] seconds; says
#: "in" once it did, "out" when it never could.
READER = (
    "import duckdb, sys, time\n"
    "end = time.monotonic() + float(sys.argv[2])\n"
    "while True:\n"
    "    try:\n"
    "        duckdb.connect(sys.argv[1], read_only=True).close()\n"
    "        print('in', flush=True)\n"
    "        break\n"
    "    except duckdb.IOException:\n"
    "        if time.monotonic() > end:\n"
    "            print('out', flush=True)\n"
    "            break\n"
    "        time.sleep(0.05)\n"
)


def _reader(path: Path, seconds: float) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", READER, str(path), str(seconds)], stdout=subprocess.PIPE, text=True
    )


def _said(reader: subprocess.Popen[str]) -> str:
    out, _ = reader.communicate(timeout=60)
    return out.strip()


@pytest.fixture
def short_hold(monkeypatch: pytest.MonkeyPatch) -> None:
    """A tick's hold and pause, shortened."""
    monkeypatch.setattr(duckdb_target, "HOLD_SECONDS", 0.5)
    monkeypatch.setattr(duckdb_target, "GAP_SECONDS", 0.5)


@pytest.fixture
def warehouse(tmp_path: Path) -> Any:
    """A warehouse on a file with the system tables, closed after the test."""
    made = DuckDBWarehouse(f"duckdb:///{tmp_path / 'w.duckdb'}")
    made.ensure_schema(SYSTEM_TABLES)
    made.close()
    opened = DuckDBWarehouse(made.url)
    yield opened
    opened.close()


@pytest.mark.usefixtures("short_hold")
def test_a_tick_that_holds_the_file_without_committing_lets_go_of_it(
    warehouse: DuckDBWarehouse,
) -> None:
    """A tick that read its cursors and then only fetches (a slow API, a long listing) for
    longer than the hold lets go of the file, so a reader gets in before its next commit;
    the tick's next use opens the file again, and what times its hold keeps no process
    from exiting (a daemon thread)."""
    before = set(threading.enumerate())
    assert warehouse.get_cursors("pos_z_reports") == {}  # the file is open from here on
    reader = _reader(Path(warehouse.path), 3.0)
    assert _said(reader) == "in"
    warehouse.set_cursor("pos_z_reports", "1500", "1", rows=1)
    assert warehouse.get_cursor("pos_z_reports", "1500") == "1"
    assert all(t.daemon for t in set(threading.enumerate()) - before)


@pytest.mark.usefixtures("short_hold")
def test_a_tick_of_statements_of_their_own_lets_go_of_the_file(
    warehouse: DuckDBWarehouse,
) -> None:
    """A tick whose writes are statements of their own (no transaction, so no commit of
    one) lets a reader in too once it held the file past the hold."""
    reader = _reader(Path(warehouse.path), 6.0)
    end = time.monotonic() + 8.0  # (the loop ends as soon as the reader has its answer)
    n = 0
    while time.monotonic() < end and reader.poll() is None:
        n += 1
        warehouse.set_cursor("pos_z_reports", "1500", str(n), rows=1)
        time.sleep(0.01)
    assert _said(reader) == "in"
    assert warehouse.get_cursor("pos_z_reports", "1500") == str(n)


class _Clock:
    """A clock for `duckdb.py`'s waits: sleeping moves it on at once."""

    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


HELD = (
    'IO Error: Could not set lock on file "w.duckdb": Conflicting lock is held in '
    "/usr/bin/python3 (PID 4242). See also https://duckdb.org/docs/current/connect/concurrency"
)


def test_a_writer_waiting_for_another_ticks_file_meets_its_pause(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Another process's tick holds the file HOLD_SECONDS, then lets go for GAP_SECONDS; a
    writer (a second `run --once` of other streams, `reset`) that waits for it gets in
    within WRITE_WAIT_SECONDS whenever it starts, and warns no more often than before."""
    path = tmp_path / "w.duckdb"
    duckdb.connect(str(path)).close()
    clock = _Clock()
    monkeypatch.setattr(duckdb_target, "time", clock)
    real = duckdb.connect
    cycle = duckdb_target.HOLD_SECONDS + duckdb_target.GAP_SECONDS
    start = 0.0

    def connect(database: str, **kwargs: Any) -> duckdb.DuckDBPyConnection:
        if (clock.now - start) % cycle < duckdb_target.HOLD_SECONDS:
            raise duckdb.IOException(HELD)
        return real(database, **kwargs)

    monkeypatch.setattr(duckdb, "connect", connect)
    missed = []
    for step in range(int(cycle * 2)):
        clock.now = 1000.0 + step / 2
        start = 1000.0 - step / 2 - 0.05  # the other tick took the file this long ago
        writer = DuckDBWarehouse(f"duckdb:///{path}")
        try:
            writer.query("SELECT 1")
        except duckdb.IOException:
            missed.append(step / 2)
        finally:
            writer.close()
    assert missed == [], f"the writer started this far into the other's hold: {missed}"
    warnings = capsys.readouterr()
    busy = (warnings.out + warnings.err).count("warehouse_busy")
    assert busy <= int(cycle * 2) * 12  # a dozen at most a wait, as with 0.1 s doubling to 5 s
