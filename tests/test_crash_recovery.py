"""A sync process killed with SIGKILL mid-load, then run again, equals a clean run."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sitoo_sync.normalize.pos_z_reports import POS_Z_REPORTS, TABLES
from sitoo_sync.simulator import SimConfig, Simulator
from sitoo_sync.warehouse import open_warehouse
from sitoo_sync.warehouse.base import REJECTS
from tests.conftest import SyncFn
from tests.support import PipeLines, run_once_process, settings_for
from tests.targets import Target, target_for


def run_cli(sim: Simulator, target: Target, batch_seconds: str) -> subprocess.Popen[str]:
    return run_once_process(
        sim,
        target.env(),
        SITOO_STREAMS="pos_z_reports",
        SITOO_LOAD_BATCH_SECONDS=batch_seconds,
    )


def loaded(target: Target) -> tuple[int, int]:
    """(POS z-reports, VAT group rows whose parent is missing) in the target."""
    warehouse = open_warehouse(target.url, schema=target.schema)
    try:
        counts = warehouse.table_counts([POS_Z_REPORTS])
    finally:
        warehouse.close()
    parents = {r[:2] for r in target.rows(POS_Z_REPORTS)}
    vat = next(t for t in TABLES if t.name == "pos_z_report_vat_groups")
    orphans = sum(1 for r in target.rows(vat) if r[:2] not in parents)
    return counts.get("pos_z_reports", 0), orphans


@pytest.fixture(scope="module")
def big_sim() -> Iterator[Simulator]:
    """One simulator for the module's runs: the same world for each (no test changes it),
    built once (its REST v2 world, which the first `/sites.json` builds, is most of it)."""
    # ~11 requests of 500: a kill after a few of them and the first commit leaves most of
    # the backfill to come, also when a loaded host reports that commit late.
    config = SimConfig(seed=9, days=240, registers_per_store=4, malformed_every=50)
    with Simulator.create(config) as sim:
        yield sim


@pytest.mark.slow
@pytest.mark.xdist_group("crash_recovery")  # one worker builds `big_sim`
@pytest.mark.parametrize(
    ("target_name", "kill_after_requests", "extra_delay", "batch_seconds"),
    [
        ("duckdb", 2, 0.12, "0"),  # one commit per window
        ("duckdb", 4, 0.3, "0.5"),  # several windows per commit
        ("postgres", 3, 0.2, "0"),
    ],
)
def test_sigkill_mid_load_then_rerun_equals_a_clean_run(
    big_sim: Simulator,
    tmp_path: Path,
    sync: SyncFn,
    target_name: str,
    kill_after_requests: int,
    extra_delay: float,
    batch_seconds: str,
) -> None:
    """Kill -9 while windows are loading; the rerun's warehouse equals a clean run's exactly."""
    sim = big_sim
    sim.faults.clear()
    with (
        target_for(target_name, tmp_path) as clean,
        target_for(target_name, tmp_path) as crashed,
    ):
        clean_settings = settings_for(
            sim, tmp_path / "x.duckdb", streams=["pos_z_reports"], **clean.settings()
        )
        assert sync(clean_settings).ok

        sim.faults.latency = 0.25
        start = sim.requests_to("/pos-z-reports")
        proc = run_cli(sim, crashed, batch_seconds)
        log = PipeLines(proc.stderr)
        # After the first commit (on a loaded machine it can come long after the requests),
        # then at a point in the pipeline that depends on the parameters.
        deadline = time.monotonic() + 180
        while sim.requests_to("/pos-z-reports") - start < kill_after_requests or not log.events(
            "batch_loaded"
        ):
            assert proc.poll() is None, "the sync finished before it could be killed"
            assert time.monotonic() < deadline, "no window was committed"
            time.sleep(0.005)
        time.sleep(sim.faults.latency + extra_delay)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
        log.finish()

        # What the killed process left is consistent: whole windows or nothing.
        reports, orphans = loaded(crashed)
        assert 0 < reports < len(sim.world.valid_keys()), "the kill was not mid-run"
        assert orphans == 0

        sim.faults.latency = 0.0
        rerun = run_cli(sim, crashed, batch_seconds)
        PipeLines(rerun.stderr)
        assert rerun.wait(timeout=240) == 0
        got, want = crashed.bags(TABLES), clean.bags(TABLES)
        for table in TABLES:
            assert got[table.name] == want[table.name], table.name
        assert {r[:5] for r in crashed.rows(REJECTS)} == {r[:5] for r in clean.rows(REJECTS)}
