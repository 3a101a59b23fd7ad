"""A partition a stop cuts short records no success: its backfill did not reach the present."""

from __future__ import annotations

import threading
from pathlib import Path

import structlog

from sitoo_sync.api.client import make_client
from sitoo_sync.health import stored_last_success
from sitoo_sync.results import PartitionResult
from sitoo_sync.service import Service
from sitoo_sync.settings import Settings
from sitoo_sync.simulator import SimConfig, Simulator
from sitoo_sync.streams import STREAMS
from sitoo_sync.streams.base import Stream
from sitoo_sync.sync import RunReport, run_once
from sitoo_sync.warehouse import open_warehouse
from tests.conftest import SyncFn
from tests.support import settings_for


def _stopped_after_its_first_window(settings: Settings, stream: Stream) -> RunReport:
    """One tick of `stream` that a stop (as a SIGTERM's) cuts short once a window loaded."""
    stop = threading.Event()

    def first_window(_result: PartitionResult) -> None:
        stop.set()

    with make_client(settings, sleep=lambda _s: None) as client:
        warehouse = open_warehouse(settings.target_url)
        return run_once(settings, warehouse, client, [stream], on_window=first_window, stop=stop)


def test_a_partition_stopped_mid_backfill_is_not_a_success_to_a_restarted_service(
    tmp_path: Path, sync: SyncFn
) -> None:
    """A stop between windows (SIGTERM, a lost lock) commits what was loaded but records no
    success of the partition, as a stop during a request's retries does not: a service
    restarted after it is not ready at once on a backfill that has not reached the present,
    and the tick that completes it is a success again."""
    name = "pos_z_reports"
    with Simulator.create(SimConfig(seed=9, days=60, malformed_every=0)) as sim:
        settings = settings_for(sim, tmp_path / "w.duckdb", streams=[name], load_batch_seconds=0)
        stream = STREAMS[name]
        _stopped_after_its_first_window(settings, stream)
        warehouse = open_warehouse(settings.target_url)
        try:
            states = [s for s in warehouse.states() if s.stream == name]
        finally:
            warehouse.close()
        assert [s.rows_loaded > 0 for s in states] == [True]  # it loaded, and stopped
        assert stored_last_success(states) is None

        # The restarted service's first tick fails on the API: what it recalls counts.
        down = settings.model_copy(update={"api_base_url": "http://127.0.0.1:9/{account_id}"})
        service = Service(down, [stream])
        try:
            service.tick(stream)
            assert service.metrics.health()[0] is False
        finally:
            service.client.close()

        assert sync(settings).ok  # the rest of the backfill, to the present
        warehouse = open_warehouse(settings.target_url)
        try:
            after = [s for s in warehouse.states() if s.stream == name]
        finally:
            warehouse.close()
        assert after[0].rows_loaded > states[0].rows_loaded
        assert stored_last_success(after) is not None


def test_a_partition_a_stop_cut_short_logs_stopped_not_ok(tmp_path: Path) -> None:
    """A stop between windows: the partition's line says `stopped`, as its run says partial,
    not `ok`, which an operator would read as caught up."""
    name = "pos_z_reports"
    with Simulator.create(SimConfig(seed=9, days=60, malformed_every=0)) as sim:
        settings = settings_for(sim, tmp_path / "w.duckdb", streams=[name], load_batch_seconds=0)
        with structlog.testing.capture_logs() as events:
            report = _stopped_after_its_first_window(settings, STREAMS[name])
    [line] = [e for e in events if e["event"] == "partition_synced"]
    assert line["status"] == "stopped"
    assert line["rows"] > 0
    assert [r.status for r in report.results] == ["ok"]  # its outcome is recorded as before
