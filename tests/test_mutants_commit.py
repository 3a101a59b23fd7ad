"""Commit behaviour a hand-made mutation showed the suite did not pin down."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import httpx
from pydantic import SecretStr

from sitoo_sync.api.client import make_client
from sitoo_sync.settings import Settings
from sitoo_sync.streams import STREAMS
from sitoo_sync.sync import run_once
from sitoo_sync.warehouse import open_warehouse
from tests.support import query

NOW = datetime(2026, 11, 20, 23, 30, tzinfo=UTC)


def test_days_without_store_reports_still_move_the_cursor(tmp_path: Path) -> None:
    """A window that brings no records but moves the cursor (final days on which no store
    closed) commits its cursor: the stream's position and lag stay true, and the next tick
    does not read the same empty days again."""

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/store-z-reports/config"):
            config = {"aggregation_active": True, "hour_of_day": 22, "time_zone": "UTC"}
            return httpx.Response(200, json=config)
        if request.url.path.endswith("/store-z-reports"):
            return httpx.Response(200, json=[])
        return httpx.Response(404, json={"statuscode": 404, "errortext": "not here"})

    settings = Settings(
        api_id="1500-1",
        api_password=SecretStr("pw"),
        site_ids=[1],
        target_url=f"duckdb:///{tmp_path / 'w.duckdb'}",
        streams=["store_z_reports"],
    )
    with make_client(settings, httpx.MockTransport(handler), sleep=lambda _s: None) as client:
        report = run_once(
            settings,
            open_warehouse(settings.target_url),
            client,
            [STREAMS["store_z_reports"]],
            clock=lambda: NOW,
        )
    assert [r.status for r in report.results] == ["ok"]
    rows = query(settings, "SELECT cursor, last_status FROM sync_state")
    assert rows == [("2026-11-19", "ok")]
