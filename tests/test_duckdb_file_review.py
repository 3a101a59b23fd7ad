"""A DuckDB file that this DuckDB cannot open, or that another process holds: every command
says so in one line naming the file, what is wrong and what to do about it."""

from __future__ import annotations

import shutil
import struct
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from sitoo_sync.cli import main
from sitoo_sync.simulator import Simulator
from sitoo_sync.warehouse import duckdb as duckdb_target
from sitoo_sync.warehouse import held_file
from sitoo_sync.warehouse.base import SYSTEM_TABLES
from sitoo_sync.warehouse.duckdb import DuckDBWarehouse
from tests.support import use_simulator

#: DuckDB's header: a checksum word, then "DUCK" and the storage version (a 64-bit word).
_VERSION_AT = 12
#: DuckDB's checksum of a block: XOR over its 8-byte words of each times this constant.
_CHECKSUM_FACTOR = 0xBF58476D1CE4E5B9
_WORD = (1 << 64) - 1


def _word(data: bytes | bytearray, at: int) -> int:
    return int(struct.unpack_from("<Q", data, at)[0])


def _with_storage_version(path: Path, version: int) -> None:
    """Rewrite the storage version in the header of the DuckDB file `path`, as a DuckDB of
    another era would have written it, and mend the header's checksum to match."""
    with path.open("r+b") as file:
        old = file.read(24)
        new = bytearray(old)
        struct.pack_into("<Q", new, _VERSION_AT, version)
        checksum = _word(old, 0)
        for at in (8, 16):  # the two words the version spans
            for data in (old, new):
                checksum ^= (_word(data, at) * _CHECKSUM_FACTOR) & _WORD
        struct.pack_into("<Q", new, 0, checksum)
        file.seek(0)
        file.write(new)


def _warehouse_file(path: Path) -> Path:
    """A DuckDB file with sitoo-sync's system tables, closed."""
    warehouse = DuckDBWarehouse(f"duckdb:///{path}")
    warehouse.ensure_schema(SYSTEM_TABLES)
    warehouse.close()
    return path


@pytest.fixture
def made(tmp_path: Path) -> Path:
    """A warehouse file, to copy from."""
    return _warehouse_file(tmp_path / "made.duckdb")


@pytest.mark.parametrize(
    ("version", "said"),
    [
        (1000, "written by a newer DuckDB"),
        (51, "written by an older DuckDB"),
    ],
    ids=["newer", "older"],
)
@pytest.mark.parametrize("command", [["run", "--once"], ["status"]], ids=" ".join)
def test_a_file_of_another_duckdb_era_is_one_line_naming_it_and_the_fix(
    version: int,
    said: str,
    command: list[str],
    made: Path,
    tmp_path: Path,
    sim: Simulator,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A file whose storage version this DuckDB cannot read (a newer DuckDB's, or one from
    before 0.10) ends `run --once` and `status` with one line naming the file, which DuckDB
    made it and what to do, never DuckDB's five-line explanation."""
    path = tmp_path / "other era.duckdb"
    shutil.copy(made, path)
    _with_storage_version(path, version)
    with pytest.raises(duckdb.IOException):  # (the forged header is read as DuckDB's own)
        duckdb.connect(str(path), read_only=True)
    use_simulator(monkeypatch, sim, path)
    monkeypatch.setenv("SITOO_STREAMS", "pos_z_reports")
    assert main(command) == 1
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    last = lines[-1]
    assert last.startswith("sitoo-sync: "), err
    assert f"cannot open the warehouse file {path}: " in last, err
    assert last.count("cannot open the warehouse file") == 1, last
    assert said in last
    assert f"storage version {version}" in last
    assert ("upgrade the duckdb package" if version > 64 else "EXPORT DATABASE") in last
    assert not any(
        line.startswith(("Newer DuckDB", "See the storage", "The database")) for line in lines
    )


#: DuckDB 2's refusal when the holder opened the file read-only (a BI tool, `status`).
READ_ONLY_HOLDER = (
    'IO Error: Could not set lock on file "/w.duckdb": Conflicting lock is held in '
    "/usr/bin/python3 (PID 4242). However, you would be able to open this database in "
    "read-only mode, e.g. by using the -readonly parameter in the CLI. See also "
    "https://duckdb.org/docs/current/connect/concurrency"
)


def test_a_read_only_holder_is_named_by_its_pid() -> None:
    """DuckDB's refusal names a read-only holder with more words after its PID; the one
    line still names the PID and program, and leaves DuckDB's advice out."""
    line = held_file("/w.duckdb", READ_ONLY_HOLDER, waited=60)
    assert line is not None
    assert "(PID 4242, /usr/bin/python3) after waiting 60 s" in line
    assert "-readonly" not in line


HOLD_READ_ONLY = (
    "import duckdb, sys, time\n"
    "con = duckdb.connect(sys.argv[1], read_only=True)\n"
    "print('held', flush=True)\n"
    "time.sleep(60)\n"
)


def test_a_tick_that_waited_in_vain_for_a_bi_reader_says_which_process_holds_the_file(
    made: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer that gave up waiting for a file a BI tool keeps open read-only fails in one
    line naming the holder's PID and what lets go of it, not DuckDB's advice to open the
    file read-only; the error is still the target's own (a tick fails on it as on any)."""
    monkeypatch.setattr(duckdb_target, "WRITE_WAIT_SECONDS", 1.0)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_READ_ONLY, str(made)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == "held\n"
        warehouse = DuckDBWarehouse(f"duckdb:///{made}")
        with pytest.raises(duckdb.Error) as info:
            warehouse.get_cursors("pos_z_reports")
    finally:
        holder.kill()
        holder.wait()
    text = str(info.value)
    assert "\n" not in text
    assert text.startswith(f"cannot open the warehouse file {made}: another process holds it")
    assert f"PID {holder.pid}" in text
    assert "after waiting 1 s" in text
    assert "-readonly" not in text


@pytest.mark.parametrize("command", [["run", "--once"], ["status"]], ids=" ".join)
def test_a_duckdb_url_with_options_is_refused_before_a_file_is_made(
    command: list[str],
    tmp_path: Path,
    sim: Simulator,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A DuckDB URL with `?options` (as SQLAlchemy's DuckDB URLs carry) is one line naming
    the setting, exit 2: DuckDB would make a file named with the options, which `status`
    (and the lock files) would never find, and ignore them."""
    use_simulator(monkeypatch, sim, tmp_path / "unused.duckdb")
    monkeypatch.setenv("SITOO_TARGET_URL", f"duckdb:///{tmp_path}/sitoo.duckdb?threads=4")
    monkeypatch.setenv("SITOO_STREAMS", "pos_z_reports")
    assert main(command) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1, err
    assert err.startswith("sitoo-sync: configuration error: SITOO_TARGET_URL: "), err
    assert "?threads=4" in err
    assert f"duckdb:///{tmp_path}/sitoo.duckdb" in err
    assert list(tmp_path.iterdir()) == []


#: DuckDB 1.x's words for a damaged file ("block" is no lock).
CORRUPT = (
    "IO Error: Corrupt database file: computed checksum 1402039023478707703 does not match "
    "stored checksum 11812652007437686093 in block at location 12288"
)


def test_a_damaged_file_is_not_waited_for_as_if_another_process_held_it(
    made: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """DuckDB 1.x refuses a damaged file with an IO error naming a "block": the tick fails
    at once in one line naming the file, not after a minute of `warehouse_busy`."""

    def connect(*_args: object, **_kwargs: object) -> duckdb.DuckDBPyConnection:
        raise duckdb.IOException(CORRUPT)

    monkeypatch.setattr(duckdb, "connect", connect)
    monkeypatch.setattr(duckdb_target, "WRITE_WAIT_SECONDS", 2.0)
    warehouse = DuckDBWarehouse(f"duckdb:///{made}")
    started = time.monotonic()
    with pytest.raises(duckdb.IOException) as info:
        warehouse.query("SELECT 1")
    assert time.monotonic() - started < 1.0
    assert str(info.value) == f"cannot open the warehouse file {made}: {CORRUPT}"
    captured = capsys.readouterr()
    assert "warehouse_busy" not in captured.out + captured.err
