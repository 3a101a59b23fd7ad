"""A file target (DuckDB, SQLite) whose file system misbehaves under `run --once` and the
service: a disk that fills mid-tick or at the checkpoint, a damaged or missing write-ahead
log after a crash, two services on one file, a path with spaces and unicode on another
device. Each ends in one line (never a traceback) and a later run, once the fault is gone,
holds what a clean run holds: nothing lost, nothing doubled."""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from sitoo_sync.simulator import SimConfig, Simulator
from sitoo_sync.streams import STREAMS
from sitoo_sync.warehouse import open_warehouse
from tests.support import PipeLines

#: Streams enough for windows of rows and children, cursors and a listing (about 3 s a run).
SYNCED = ("pos_z_reports", "journal_entries", "stores")
#: Columns that differ between two clean runs by design (when loaded, first or last seen).
PER_RUN = frozenset({"_loaded_at", "_run_id", "first_seen_at", "last_seen_at"})
#: Larger than any WAL a run of SYNCED writes (2.9 MB), smaller than the file it checkpoints
#: to (6.8 MB): the commits fit, the checkpoint does not.
ROOM_FOR_THE_LOG = 4_500_000


@pytest.fixture(scope="module")
def world() -> Iterator[Simulator]:
    """One simulated world for the module: every run here reads the same records."""
    simulator = Simulator.create(SimConfig(seed=3, days=10, malformed_every=0)).start()
    yield simulator
    simulator.stop()


@pytest.fixture(scope="module")
def clean(world: Simulator, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Counter[Any]]:
    """What a clean `run --once` of SYNCED loads, table by table."""
    url = f"duckdb:///{tmp_path_factory.mktemp('clean') / 'clean.duckdb'}"
    done = run_once(world, url)
    assert done.returncode == 0, done.stderr
    return contents(url)


def contents(url: str) -> dict[str, Counter[Any]]:
    """Every row of SYNCED's tables at `url` as text (alike across targets), per table."""
    warehouse = open_warehouse(url)
    try:
        return {
            table.name: Counter(
                tuple(str(row[c]) for c in table.column_names if c not in PER_RUN)
                for row in warehouse.read_table(table)
            )
            for name in SYNCED
            for table in STREAMS[name].tables
        }
    finally:
        warehouse.close()


def env_for(world: Simulator, url: str, **extra: str) -> dict[str, str]:
    """A `sitoo-sync` process's environment: `world`, the target `url`, SYNCED."""
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("SITOO_")},
        **world.settings_env(),
        "SITOO_TARGET_URL": url,
        "SITOO_STREAMS": ",".join(SYNCED),
        **extra,
    }


def file_size_limit(size: int) -> Callable[[], None]:
    """A child's pre-exec step: no file it writes may grow past `size` bytes, as on a full
    disk. SIGXFSZ (which would kill it) is ignored, as Python itself does, so the write
    fails with EFBIG instead."""

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))

    return limit


def run_once(
    world: Simulator, url: str, *, size: int | None = None, **extra: str
) -> subprocess.CompletedProcess[str]:
    """`sitoo-sync run --once` of SYNCED into `url`, its files limited to `size` bytes."""
    return sitoo(world, url, ["run", "--once"], size=size, **extra)


def sitoo(
    world: Simulator, url: str, command: list[str], *, size: int | None = None, **extra: str
) -> subprocess.CompletedProcess[str]:
    """`sitoo-sync <command>` of SYNCED on `url`, its files limited to `size` bytes."""
    return subprocess.run(
        [sys.executable, "-m", "sitoo_sync", *command],
        env=env_for(world, url, **extra),
        preexec_fn=None if size is None else file_size_limit(size),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def last_line(stderr: str) -> str:
    """A process's last line on stderr, after checking that none of them is a traceback."""
    assert "Traceback" not in stderr, stderr
    return stderr.strip().splitlines()[-1]


def events(stderr: str, name: str) -> list[dict[str, Any]]:
    """The JSON events `name` among a process's stderr lines."""
    parsed = [json.loads(line) for line in stderr.splitlines()]
    return [e for e in parsed if e["event"] == name]


@pytest.mark.parametrize(
    ("target", "said"),
    # (An ENOSPC disk says "database or disk is full" to SQLite; the cap's EFBIG, this.)
    [("duckdb", "File too large"), ("sqlite", "disk I/O error")],
)
def test_a_disk_full_mid_tick_is_one_line_and_the_next_run_loses_and_doubles_nothing(
    target: str, said: str, world: Simulator, clean: dict[str, Counter[Any]], tmp_path: Path
) -> None:
    """A disk that fills while a tick loads (its files capped at 1 MB) ends `run --once`
    with exit 1 and one line saying so, no traceback; the file still opens, and the run
    after space returns holds exactly what a clean run holds."""
    url = f"{target}:///{tmp_path / f'full.{target}'}"
    failed = run_once(world, url, size=1_000_000)
    assert failed.returncode == 1, failed.stderr
    line = last_line(failed.stderr)
    assert line.startswith("sitoo-sync: the warehouse failed: "), line
    assert said in line
    again = run_once(world, url)
    assert again.returncode == 0, again.stderr
    assert contents(url) == clean


def test_a_checkpoint_the_disk_has_no_room_for_is_said_and_loses_nothing(
    world: Simulator, clean: dict[str, Counter[Any]], tmp_path: Path
) -> None:
    """When the commits fit on the disk but the checkpoint at the end of a run does not,
    the run (its data safe in the log) still exits 0, but warns `checkpoint_failed` naming
    the file, where DuckDB's own checkpoint at close failed silently; the next run replays
    the log and holds what a clean run holds."""
    path = tmp_path / "no room.duckdb"
    url = f"duckdb:///{path}"
    done = run_once(world, url, size=ROOM_FOR_THE_LOG, SITOO_LOG_FORMAT="json")
    assert done.returncode == 0, done.stderr
    assert Path(f"{path}.wal").stat().st_size > 0  # the checkpoint did fail
    (warning,) = events(done.stderr, "checkpoint_failed")
    assert warning["level"] == "warning"
    assert warning["path"] == str(path)
    assert "File too large" in warning["error"]
    again = run_once(world, url)
    assert again.returncode == 0, again.stderr
    assert contents(url) == clean


def test_a_damaged_write_ahead_log_is_one_line_naming_the_way_out(
    world: Simulator, clean: dict[str, Counter[Any]], tmp_path: Path
) -> None:
    """A `.wal` DuckDB cannot replay (zeros over part of it, as a torn disk write leaves)
    makes `run --once` and `status` fail in one line naming the file and what to do; doing
    it (moving the log aside) lets the next run load everything again, once each."""
    path = tmp_path / "torn.duckdb"
    url = f"duckdb:///{path}"
    crashed_with_log(world, url, path)
    wal = Path(f"{path}.wal")
    with wal.open("r+b") as file:
        file.seek(wal.stat().st_size // 3)
        file.write(b"\0" * 4096)
    with pytest.raises(duckdb.Error, match="Failure while replaying WAL"):
        duckdb.connect(str(path)).close()
    for command in (["run", "--once"], ["status"]):
        failed = sitoo(world, url, command)
        assert failed.returncode == 1, failed.stderr
        line = last_line(failed.stderr)
        assert f"cannot open the warehouse file {path}: " in line, line
        assert f"move {wal} aside" in line
    wal.rename(f"{wal}.damaged")
    again = run_once(world, url)
    assert again.returncode == 0, again.stderr
    assert contents(url) == clean


def crashed_with_log(world: Simulator, url: str, path: Path) -> None:
    """A `run --once` into `url` killed after some windows committed: they are in the
    write-ahead log beside `path` (nothing was checkpointed), which is left as it was."""
    child = subprocess.Popen(
        [sys.executable, "-m", "sitoo_sync", "run", "--once"],
        env=env_for(world, url, SITOO_LOG_FORMAT="json"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines = PipeLines(child.stderr)
    deadline = time.monotonic() + 60
    while len(lines.events("batch_loaded")) < 5 and time.monotonic() < deadline:
        time.sleep(0.005)
    child.kill()
    assert child.wait() == -signal.SIGKILL, "the run ended before it could be killed"
    lines.finish()
    log = Path(f"{path}-wal" if url.startswith("sqlite") else f"{path}.wal")
    assert log.stat().st_size > 0


def _truncate_half(path: Path) -> None:
    os.truncate(path, path.stat().st_size // 2)


@pytest.mark.parametrize(
    ("target", "log", "fault"),
    [
        ("duckdb", ".wal", Path.unlink),
        ("duckdb", ".wal", _truncate_half),
        ("sqlite", "-wal", Path.unlink),
        ("sqlite", "-shm", Path.unlink),
    ],
    ids=["duckdb-wal-deleted", "duckdb-wal-truncated", "sqlite-wal-deleted", "sqlite-shm-deleted"],
)
def test_a_log_lost_after_a_crash_costs_a_fetch_again_never_a_row_twice(
    target: str,
    log: str,
    fault: Callable[[Path], None],
    world: Simulator,
    clean: dict[str, Counter[Any]],
    tmp_path: Path,
) -> None:
    """A run killed mid-tick whose write-ahead log (or SQLite's -shm) is then deleted or
    cut short: the commits it held are gone with the cursors they moved (one transaction
    each), so the next run fetches them again and holds what a clean run holds."""
    path = tmp_path / f"crashed.{target}"
    url = f"{target}:///{path}"
    crashed_with_log(world, url, path)
    fault(Path(f"{path}{log}"))
    again = run_once(world, url)
    assert again.returncode == 0, again.stderr
    assert contents(url) == clean


def test_two_services_on_one_duckdb_file_load_each_row_once(
    world: Simulator, clean: dict[str, Counter[Any]], tmp_path: Path
) -> None:
    """Two `sitoo-sync run` services on one DuckDB file, ticking every 2 s: each stream's
    lock file lets one tick at a time load it, the other skips (`stream_locked`) or waits
    for the file; both stop cleanly on SIGTERM, log no error, and the file holds what a
    clean run holds."""
    url = f"duckdb:///{tmp_path / 'shared.duckdb'}"
    env = env_for(
        world,
        url,
        SITOO_LOG_FORMAT="json",
        SITOO_SCHEDULES=",".join(f"{name}=2s" for name in SYNCED),
        SITOO_SCHEDULE_JITTER_SECONDS="0",
    )
    services = [
        subprocess.Popen(
            [sys.executable, "-m", "sitoo_sync", "run"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    logs = [PipeLines(s.stderr) for s in services]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (
        sum(len(lines.events("run_finished")) for lines in logs) < 4 * len(SYNCED)
    ):
        time.sleep(0.1)
    for service in services:
        service.send_signal(signal.SIGTERM)
    assert [s.wait(60) for s in services] == [0, 0]
    parsed = [json.loads(line) for lines in logs for line in lines.finish()]
    assert sum(e["event"] == "run_finished" for e in parsed) >= 4 * len(SYNCED)
    assert sum(e["event"] == "stream_locked" for e in parsed) > 0  # they did meet
    assert [e for e in parsed if e["level"] in ("error", "critical")] == []
    assert contents(url) == clean


@pytest.mark.parametrize("target", ["duckdb", "sqlite"])
def test_a_path_with_spaces_and_unicode_on_another_device_is_one_file(
    target: str, world: Simulator, clean: dict[str, Counter[Any]], tmp_path: Path
) -> None:
    """A target in a directory with spaces and non-ASCII letters, on another file system
    than the temp directory (/dev/shm): `run --once` twice and `status` work, the lock
    files lie beside it, and nothing is made anywhere else."""
    shm = Path("/dev/shm")
    if not shm.is_dir() or shm.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("no /dev/shm on another device than the temp directory")
    where = shm / f"sitoo sync ä ö {os.getpid()} {tmp_path.name}"
    where.mkdir()
    try:
        path = where / f"försäljning data.{target}"
        url = f"{target}:///{path}"
        for command in (["run", "--once"], ["run", "--once"], ["status"]):
            done = sitoo(world, url, command)
            assert done.returncode == 0, done.stderr
        assert contents(url) == clean
        made = {p.name for p in where.iterdir()}
        assert path.name in made
        assert {f"{path.name}.{name}.lock" for name in SYNCED} <= made
        assert all(name.startswith(path.name) for name in made), made
    finally:
        shutil.rmtree(where)
