"""`run --once` stopped by SIGTERM or SIGINT (a CronJob's stop, Ctrl-C): the window in flight
commits, it says so, exits 0, and the next run completes with nothing doubled."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sitoo_sync.normalize.pos_z_reports import POS_Z_REPORTS, TABLES
from sitoo_sync.simulator import SimConfig, Simulator
from tests.conftest import SyncFn
from tests.support import query, settings_for


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_mid_backfill_commits_says_so_and_exits_0(
    signum: signal.Signals, tmp_path: Path, sync: SyncFn
) -> None:
    """Mid-backfill, the signal ends the run after a committed window with exit 0 and a line
    saying it stopped early; the rows so far are whole, and a rerun loads the rest once."""
    config = SimConfig(seed=9, days=60, registers_per_store=4, malformed_every=0)
    db = tmp_path / "w.duckdb"
    with Simulator.create(config) as sim:
        sim.faults.latency = 0.2
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("SITOO_")},
            **sim.settings_env(),
            "SITOO_TARGET_URL": f"duckdb:///{db}",
            "SITOO_STREAMS": "pos_z_reports",
            "SITOO_LOAD_BATCH_SECONDS": "0",
        }
        proc = subprocess.Popen(
            [sys.executable, "-m", "sitoo_sync", "run", "--once"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        start = sim.requests_to("/pos-z-reports")
        deadline = time.monotonic() + 60
        while sim.requests_to("/pos-z-reports") - start < 3:  # a backfill is under way
            assert proc.poll() is None, "the run finished before it could be stopped"
            assert time.monotonic() < deadline, "the run never started loading"
            time.sleep(0.01)
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        assert f"stopped early on {signum.name}: every window loaded so far is committed" in out
        assert "Traceback" not in err

        settings = settings_for(sim, db, streams=["pos_z_reports"])
        [(stopped_at,)] = query(settings, "SELECT count(*) FROM pos_z_reports")
        assert 0 < stopped_at < len(sim.world.valid_keys()), "the stop was not mid-backfill"

        sim.faults.latency = 0.0
        assert sync(settings).ok
    keys = query(settings, "SELECT registerid, zreportid FROM pos_z_reports")
    assert len(keys) == len(set(keys)) == len(sim.world.valid_keys())
    vat = next(t for t in TABLES if t.name == "pos_z_report_vat_groups")
    orphans = query(
        settings,
        f"SELECT count(*) FROM {vat.name} v WHERE NOT EXISTS (SELECT 1 FROM {POS_Z_REPORTS.name} "
        "p WHERE p.registerid = v.registerid AND p.zreportid = v.zreportid)",
    )
    assert orphans == [(0,)]
