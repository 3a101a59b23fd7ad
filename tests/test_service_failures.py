"""Service ticks that fail as a whole: counted as failed ticks, never a crash of the tick."""

from __future__ import annotations

from pathlib import Path

from sitoo_sync.service import Service
from sitoo_sync.settings import Settings
from sitoo_sync.streams import STREAMS
from sitoo_sync.warehouse import open_warehouse
from tests.conftest import SyncFn


def _failed_ticks(service: Service, stream: str) -> float:
    value = service.metrics.registry.get_sample_value(
        "sitoo_ticks_total", {"stream": stream, "status": "failed"}
    )
    return value or 0.0


def test_a_stored_cursor_no_strategy_can_read_fails_the_tick_and_counts_it(
    settings: Settings, sync: SyncFn
) -> None:
    """A partition whose stored cursor cannot be read (`not-a-day` for a day cursor) fails
    its tick as a failed tick in the metrics; the lag shown for it is unknown, instead of
    the lag's ValueError crashing the tick before anything was counted."""
    name = "store_z_reports"
    settings = settings.model_copy(update={"streams": [name]})
    assert sync(settings).ok
    warehouse = open_warehouse(settings.target_url)
    try:
        with warehouse.transaction():
            warehouse.execute(f"UPDATE sync_state SET cursor = 'not-a-day' WHERE stream = '{name}'")
    finally:
        warehouse.close()
    service = Service(settings, [STREAMS[name]])
    try:
        service.tick(STREAMS[name])  # no exception
        assert _failed_ticks(service, name) == 1
    finally:
        service.client.close()


def test_a_target_that_cannot_be_opened_counts_a_failed_tick(
    settings: Settings, tmp_path: Path
) -> None:
    """A tick that cannot open its target (a file where the warehouse's folder should be)
    counts as a failed tick in `sitoo_ticks_total`, as a tick that failed later does, so a
    rate of failed ticks alerts on it."""
    (tmp_path / "blocked").write_text("not a folder")
    url = f"duckdb:///{tmp_path / 'blocked' / 'w.duckdb'}"
    settings = settings.model_copy(update={"streams": ["stores"], "target_url": url})
    service = Service(settings, [STREAMS["stores"]])
    try:
        service.tick(STREAMS["stores"])
        assert _failed_ticks(service, "stores") == 1
    finally:
        service.client.close()
