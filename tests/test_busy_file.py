"""A DuckDB file another process holds: `status` waits only as long as a sitoo-sync tick can
hold it, then says in one line which process holds it; `run` keeps its longer wait."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from sitoo_sync.cli import main
from sitoo_sync.warehouse import duckdb as duckdb_target
from sitoo_sync.warehouse.base import SYSTEM_TABLES
from sitoo_sync.warehouse.duckdb import DuckDBWarehouse

HOLD = (
    "import duckdb, sys, time\n"
    "con = duckdb.connect(sys.argv[1])\n"
    "print('held', flush=True)\n"
    "time.sleep(float(sys.argv[2]))\n"
)


def _holder(path: Path, seconds: float) -> subprocess.Popen[str]:
    """Another process holding the DuckDB file at `path` for `seconds` (it opens it first)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(path), str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == "held\n"
    return proc


@pytest.fixture
def warehouse_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A DuckDB file with a sitoo-sync schema, and settings pointing `status` at it."""
    path = tmp_path / "w.duckdb"
    warehouse = DuckDBWarehouse(f"duckdb:///{path}")
    warehouse.ensure_schema(SYSTEM_TABLES)
    warehouse.close()
    monkeypatch.setenv("SITOO_TARGET_URL", f"duckdb:///{path}")
    monkeypatch.setenv("SITOO_API_ID", "1500-1")
    monkeypatch.setenv("SITOO_API_PASSWORD", "x")
    return path


def test_status_on_a_held_file_gives_up_at_the_read_wait_naming_the_holders_pid(
    warehouse_file: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`status --check` on a file another process keeps gives up after the read-only wait
    (shortened here), exit 1, with one warning while it waits and one line naming the PID."""
    monkeypatch.setattr(duckdb_target, "READ_WAIT_SECONDS", 1.5)
    holder = _holder(warehouse_file, 60)
    try:
        started = time.monotonic()
        assert main(["status", "--check"]) == 1
        took = time.monotonic() - started
    finally:
        holder.kill()
        holder.wait()
    assert 1.5 <= took < 10
    lines = capsys.readouterr().err.splitlines()
    assert sum("warehouse_busy" in line for line in lines) <= 1, lines
    last = lines[-1]
    assert last.startswith(f"sitoo-sync: cannot open the warehouse file {warehouse_file}: ")
    assert f"PID {holder.pid}" in last
    assert "another process holds it" in last
    assert "IO Error" not in last


def test_status_gets_in_when_the_holder_lets_go_within_the_read_wait(
    warehouse_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A holder that lets go after 2 s (as a tick does after HOLD_SECONDS) is waited for."""
    holder = _holder(warehouse_file, 2)
    try:
        assert main(["status"]) == 0
    finally:
        holder.wait()
    assert "nothing synced yet" in capsys.readouterr().out


def test_the_read_wait_outlasts_a_ticks_hold_and_is_shorter_than_runs() -> None:
    """Read-only opens wait long enough for a tick to let go (its hold and gap), and less
    than a writer (`run`), whose wait for a BI reader is unchanged."""
    assert duckdb_target.HOLD_SECONDS + duckdb_target.GAP_SECONDS < duckdb_target.READ_WAIT_SECONDS
    assert duckdb_target.READ_WAIT_SECONDS < duckdb_target.WRITE_WAIT_SECONDS == 60.0


def test_a_reader_polls_often_enough_to_meet_a_ticks_gap(tmp_path: Path) -> None:
    """The read-only open tries at least every GAP_SECONDS / 2, so a tick's pause is met."""
    assert duckdb_target.READ_POLL_SECONDS <= duckdb_target.GAP_SECONDS / 2
    path = tmp_path / "x.duckdb"
    duckdb.connect(str(path)).close()
    reader = DuckDBWarehouse(f"duckdb:///{path}", read_only=True)
    assert reader.open_wait_seconds == duckdb_target.READ_WAIT_SECONDS
    assert DuckDBWarehouse(f"duckdb:///{path}").open_wait_seconds == 60.0


@pytest.mark.parametrize(
    ("reason", "who"),
    [
        (
            'IO Error: Could not set lock on file "/w.duckdb": Conflicting lock is held in '
            "/usr/bin/python3 (PID 4242). See also https://duckdb.org/docs/connect/concurrency",
            "(PID 4242, /usr/bin/python3)",
        ),
        ('IO Error: Could not set lock on file "/w.duckdb": Resource temporarily unavailable', ""),
    ],
    ids=["with-pid", "without-pid"],
)
def test_a_held_file_is_one_line_naming_the_holder_when_duckdb_names_it(
    reason: str, who: str
) -> None:
    """DuckDB's lock refusal becomes one line saying another process holds the file, with
    its PID and program when DuckDB gives them; another error is not mistaken for it."""
    from sitoo_sync.warehouse import held_file, unreachable

    line = str(unreachable("duckdb:////w.duckdb", duckdb.IOException(reason)))
    assert line.startswith(
        f"cannot open the warehouse file /w.duckdb: another process holds it{' ' if who else ';'}"
    )
    assert who in line
    assert "See also" not in line
    assert held_file("/w.duckdb", "IO Error: No such file or directory") is None
