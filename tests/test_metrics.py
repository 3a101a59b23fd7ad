"""The service's metrics count what happened: requests against the simulator's own log."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sitoo_sync import service as service_module
from sitoo_sync.service import Service
from sitoo_sync.simulator import SimConfig, Simulator
from sitoo_sync.streams import STREAMS
from sitoo_sync.sync import RunReport
from tests.support import settings_for


def test_a_tick_counts_its_requests_once_and_itself_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After one journal tick over many registers, sitoo_requests_total equals the requests
    the simulator served, sitoo_ticks_total is 1, and the duration covers the whole tick."""
    reports: list[RunReport] = []
    from sitoo_sync.sync import run_once as real_run_once

    def capture(*args: Any, **kwargs: Any) -> RunReport:
        report = real_run_once(*args, **kwargs)
        reports.append(report)
        return report

    monkeypatch.setattr(service_module, "run_once", capture)
    with Simulator.create(SimConfig(seed=5, days=3, malformed_every=0)) as sim:
        sim.faults.latency = 0.01
        settings = settings_for(sim, tmp_path / "w.duckdb", concurrency=2)
        stream = STREAMS["journal_entries"]
        service = Service(settings, [stream])
        served = sum(sim.requests.values())
        service.tick(stream)
        served = sum(sim.requests.values()) - served
        service.client.close()
    [report] = reports
    partitions = [r for r in report.results if r.partition != "*"]
    assert len(partitions) > 2  # several registers, so a per-partition count would multiply
    assert report.ok

    def sample(name: str, **labels: str) -> float | None:
        value: float | None = service.metrics.registry.get_sample_value(name, labels)
        return value

    assert sample("sitoo_requests_total", stream="journal_entries") == served
    assert sample("sitoo_ticks_total", stream="journal_entries", status="ok") == 1
    assert sample("sitoo_rows_loaded_total", stream="journal_entries") == report.rows
    duration = sample("sitoo_tick_duration_seconds", stream="journal_entries")
    assert duration is not None
    # The whole tick: the register listing and every partition, not the last register's time.
    assert duration > max(r.seconds for r in partitions)
    for result in partitions:
        assert (
            sample("sitoo_cursor_lag_seconds", stream="journal_entries", partition=result.partition)
            is not None
        )


def test_a_gone_partition_has_no_lag_and_does_not_fail_the_tick() -> None:
    """A partition Sitoo deleted (gone) drops its sitoo_cursor_lag_seconds series (its
    cursor stays behind for good, no alert should fire on it) and the tick counts as ok."""
    from prometheus_client.exposition import generate_latest

    from sitoo_sync.metrics import Metrics
    from sitoo_sync.results import PartitionResult

    metrics = Metrics({"warehouse_items": 900.0})
    ok = PartitionResult("warehouse_items", "1/3")
    metrics.record_tick("warehouse_items", [ok], requests=2, retries=0, seconds=1.0,
                        lags={"1/3": 5.0, "1/4": 90.0})  # fmt: skip
    gone = PartitionResult("warehouse_items", "1/4", status="gone")
    metrics.record_tick("warehouse_items", [ok, gone], requests=2, retries=0, seconds=1.0,
                        lags={"1/3": 6.0})  # fmt: skip
    text = generate_latest(metrics.registry).decode()
    assert 'sitoo_cursor_lag_seconds{partition="1/3",stream="warehouse_items"} 6.0' in text
    assert 'partition="1/4"' not in text
    assert 'sitoo_ticks_total{status="ok",stream="warehouse_items"} 2.0' in text
