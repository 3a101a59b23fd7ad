"""A sync process killed with SIGKILL mid-load, then run again, equals a clean run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from sitoo_sync.normalize.pos_z_reports import TABLES
from sitoo_sync.simulator import SimConfig, Simulator
from tests.conftest import SyncFn
from tests.support import settings_for

COMPARED_COLUMNS = {"rejects": "reject_id, stream, record_key, reason, raw"}


def run_cli(sim: Simulator, db: Path, batch_seconds: str = "2") -> subprocess.Popen[bytes]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SITOO_")},
        **sim.settings_env(),
        "SITOO_TARGET_URL": f"duckdb:///{db}",
        "SITOO_LOG_FORMAT": "json",
        "SITOO_LOAD_BATCH_SECONDS": batch_seconds,
    }
    return subprocess.Popen(
        [sys.executable, "-m", "sitoo_sync", "run", "--once"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def differences(a: Path, b: Path) -> dict[str, int]:
    """Rows in one file and not the other (both ways), per table."""
    con = duckdb.connect(str(a))
    con.execute(f"ATTACH '{b}' AS other (READ_ONLY)")
    out = {}
    for table in [*(t.name for t in TABLES), "rejects"]:
        cols = COMPARED_COLUMNS.get(table, "*")
        n = con.execute(
            f"SELECT (SELECT count(*) FROM (SELECT {cols} FROM {table} EXCEPT ALL "
            f"SELECT {cols} FROM other.{table})) + (SELECT count(*) FROM (SELECT {cols} FROM "
            f"other.{table} EXCEPT ALL SELECT {cols} FROM {table}))"
        ).fetchone()
        out[table] = int(n[0]) if n else -1
    con.close()
    return out


@pytest.mark.slow
@pytest.mark.parametrize(
    ("kill_after_requests", "extra_delay", "batch_seconds"),
    [(2, 0.12, "0"), (4, 0.3, "0.5")],  # one commit per window; several windows per commit
)
def test_sigkill_mid_load_then_rerun_equals_a_clean_run(
    tmp_path: Path,
    sync: SyncFn,
    kill_after_requests: int,
    extra_delay: float,
    batch_seconds: str,
) -> None:
    """Kill -9 while windows are loading; the rerun's warehouse equals a clean run's exactly."""
    config = SimConfig(seed=9, days=120, registers_per_store=4, malformed_every=50)
    with Simulator.create(config) as sim:
        clean = tmp_path / "clean.duckdb"
        crashed = tmp_path / "crashed.duckdb"
        assert sync(settings_for(sim, clean)).ok

        sim.faults.latency = 0.25
        start = sim.requests_to("/pos-z-reports")
        proc = run_cli(sim, crashed, batch_seconds)
        deadline = time.monotonic() + 60
        while sim.requests_to("/pos-z-reports") - start < kill_after_requests:
            assert proc.poll() is None, "the sync finished before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.005)
        time.sleep(sim.faults.latency + extra_delay)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL

        # What the killed process left is consistent: whole windows or nothing.
        con = duckdb.connect(str(crashed))
        loaded = con.execute("SELECT count(*) FROM pos_z_reports").fetchone()
        orphans = con.execute(
            "SELECT count(*) FROM pos_z_report_vat_groups c ANTI JOIN pos_z_reports p "
            "USING (registerid, zreportid)"
        ).fetchone()
        con.close()
        total = len(sim.world.valid_keys())
        assert loaded is not None
        assert 0 < loaded[0] < total, "the kill was not mid-run"
        assert orphans == (0,)

        sim.faults.latency = 0.0
        rerun = run_cli(sim, crashed)
        assert rerun.wait(timeout=120) == 0
        expected = {t: 0 for t in [*(t.name for t in TABLES), "rejects"]}
        assert differences(crashed, clean) == expected
