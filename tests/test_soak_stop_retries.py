"""Found in a soak: a stop request ends a request's retries, not only their waits."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from sitoo_sync.api.client import Api, make_client
from sitoo_sync.errors import StopRequested
from sitoo_sync.service import Service
from sitoo_sync.settings import Settings
from sitoo_sync.simulator import SimConfig, Simulator
from sitoo_sync.streams import STREAMS
from tests.support import settings_for


def test_a_failed_request_is_not_tried_again_once_a_stop_was_requested() -> None:
    """With the stop event set, a 503 ends the request at once, saying why: no further
    attempts sent back to back (the stop cuts the waits), none running out a timeout."""
    import threading

    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(503, json={"statuscode": 503, "errortext": "busy"})

    stop = threading.Event()
    stop.set()
    settings = Settings(api_id="1500-1", api_password=SecretStr("pw"), site_ids=[1])
    client = make_client(settings, httpx.MockTransport(handler), sleep=lambda s: None, stop=stop)
    with client, pytest.raises(StopRequested, match="a stop was requested after 1 attempt:"):
        client.get_json(Api.V2, "/sites.json", stream="sites")
    assert len(sent) == 1


def test_the_services_stop_ends_the_retries_of_its_client(tmp_path: Path) -> None:
    """SIGTERM sets the service's stop: its client then sends no more attempts of a failing
    request (a hanging API kept the service past SITOO_STOP_TIMEOUT_SECONDS, exit 1)."""
    with Simulator.create(SimConfig(seed=5, days=1, malformed_every=0)) as sim:
        sim.faults.queue("503", times=50, path="/sites.json")
        settings = settings_for(sim, tmp_path / "w.duckdb", http_max_attempts=6)
        service = Service(settings, [STREAMS["sites"]])
        try:
            service.stop.set()
            with pytest.raises(StopRequested, match="a stop was requested"):
                service.client.get_json(Api.V2, "/sites.json", stream="sites")
        finally:
            service.client.close()
        assert sim.requests_to("/sites.json") == 1


def test_a_request_the_stop_cut_short_ends_its_partition_as_a_stop_not_a_failure(
    tmp_path: Path,
) -> None:
    """A stop (SIGTERM to `run --once` or the service) during a failing request's retry wait
    ends the request there, with no attempt after the wait; its partition then ends as at a
    stop between windows: not failed (six attempts without the stop, and a failed one)."""
    import threading

    from sitoo_sync.sync import run_once
    from sitoo_sync.warehouse import open_warehouse

    with Simulator.create(SimConfig(seed=5, days=1, malformed_every=0)) as sim:
        sim.faults.queue("503", times=50, path="/pos-z-reports")
        settings = settings_for(
            sim, tmp_path / "w.duckdb", http_max_attempts=6, streams=["pos_z_reports"]
        )
        stop = threading.Event()  # set while the first retry waits, as SIGTERM would be
        with make_client(settings, sleep=lambda _s: stop.set(), stop=stop) as client:
            report = run_once(
                settings,
                open_warehouse(settings.target_url),
                client,
                [STREAMS["pos_z_reports"]],
                stop=stop,
            )
        assert sim.requests_to("/pos-z-reports") == 1
    assert report.ok
    assert [r.status for r in report.results] == ["ok"]


def test_a_request_whose_attempts_ran_out_as_a_stop_came_is_still_a_failure() -> None:
    """The last allowed attempt failing while a stop is set is the API's failure (retry
    budget spent), not the stop's: the partition must not end as if merely stopped."""
    import threading

    from sitoo_sync.errors import RetryBudgetExhausted

    def handler(_request: httpx.Request) -> httpx.Response:
        stop.set()  # the stop arrives while the last attempt is in flight
        return httpx.Response(503, json={"statuscode": 503, "errortext": "busy"})

    stop = threading.Event()
    settings = Settings(
        api_id="1500-1", api_password=SecretStr("pw"), site_ids=[1], http_max_attempts=1
    )
    client = make_client(settings, httpx.MockTransport(handler), sleep=lambda s: None, stop=stop)
    with client, pytest.raises(RetryBudgetExhausted, match="gave up after 1 attempt:"):
        client.get_json(Api.V2, "/sites.json", stream="sites")


def test_a_stop_during_the_sites_listing_is_a_stop_not_a_failed_tick(tmp_path: Path) -> None:
    """SIGTERM while the tick's site listing (/sites.json) is retried ends the tick as a
    stop: it is not failed, and no stream's partition * is recorded as failing."""
    import threading

    from sitoo_sync.sync import run_once
    from sitoo_sync.warehouse import open_warehouse

    with Simulator.create(SimConfig(seed=5, days=1, malformed_every=0)) as sim:
        sim.faults.queue("503", times=50, path="/sites.json")
        settings = settings_for(
            sim, tmp_path / "w.duckdb", http_max_attempts=6, streams=["pos_z_reports"], site_ids=[]
        )
        stop = threading.Event()  # set while the first retry waits, as SIGTERM would be
        warehouse = open_warehouse(settings.target_url)
        with make_client(settings, sleep=lambda _s: stop.set(), stop=stop) as client:
            report = run_once(settings, warehouse, client, [STREAMS["pos_z_reports"]], stop=stop)
        assert sim.requests_to("/sites.json") == 1
    assert report.ok
    target = open_warehouse(settings.target_url)
    try:
        assert [s for s in target.states() if s.last_status == "failed"] == []
    finally:
        target.close()


def test_a_404_met_before_the_tick_dies_is_still_said() -> None:
    """A partition's 404 is decided (failed or gone) when the tick ends; a tick that dies
    first (the warehouse failed on another partition) still logs it as failed."""
    import io
    import json

    from sitoo_sync.errors import WarehouseError
    from sitoo_sync.log import configure_logging
    from sitoo_sync.results import PartitionResult
    from sitoo_sync.sync import _gathered

    def one(partition: str) -> PartitionResult:
        if partition == "2/9":
            raise WarehouseError("the warehouse failed")
        return PartitionResult("warehouse_items", partition, status="failed", not_found=True,
                               error="Warehouse not found (status=404)")  # fmt: skip

    out = io.StringIO()
    configure_logging(fmt="json", level="INFO", stream=out)
    try:
        with pytest.raises(WarehouseError):
            _gathered(STREAMS["warehouse_items"], {}, ["1/5", "2/9"], one)
    finally:
        configure_logging(fmt="console", level="INFO")
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    [failed] = [e for e in events if e["event"] == "partition_failed"]
    assert failed["partition"] == "1/5"
    assert "404" in failed["error"]
