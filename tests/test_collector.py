"""During a tick the cycle collector leaves alone what was alive before it, and only then."""

from __future__ import annotations

import weakref
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from sitoo_sync import collector
from sitoo_sync import service as service_module
from sitoo_sync.api.client import make_client
from sitoo_sync.results import PartitionResult
from sitoo_sync.service import Service
from sitoo_sync.settings import Settings
from sitoo_sync.simulator import SimConfig, Simulator
from sitoo_sync.streams import STREAMS, select_streams
from sitoo_sync.sync import run_once
from sitoo_sync.warehouse import open_warehouse
from tests.support import settings_for


class _Collector:
    """Stands in for the `gc` module: counts freezes and unfreezes (other tests' ticks,
    still running in this process, may freeze the real one meanwhile)."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def freeze(self) -> None:
        self.calls.append("freeze")

    def unfreeze(self) -> None:
        self.calls.append("unfreeze")

    def collect(self) -> None:
        self.calls.append("collect")


@pytest.fixture
def fake_gc(monkeypatch: pytest.MonkeyPatch) -> _Collector:
    """No tick under way, and a collector that only records what it is told."""
    fake = _Collector()
    monkeypatch.setattr(collector, "gc", fake)
    monkeypatch.setattr(collector, "_ticks", 0)
    return fake


def test_ticks_side_by_side_freeze_once_and_unfreeze_when_the_last_ends(
    fake_gc: _Collector,
) -> None:
    """The first tick under way freezes what is alive, a second one leaves it so, and only
    when both have ended does the collector search those objects again."""
    with collector.frozen_before():
        assert fake_gc.calls == ["freeze"]
        second = collector.frozen_before()
        second.__enter__()
    assert fake_gc.calls == ["freeze"]  # the second tick is still under way
    second.__exit__(None, None, None)
    assert fake_gc.calls == ["freeze", "unfreeze"]


def test_a_failing_tick_gives_its_objects_back_too(fake_gc: _Collector) -> None:
    """A tick that raises still unfreezes: nothing stays out of the collector's reach."""
    with pytest.raises(RuntimeError), collector.frozen_before():
        raise RuntimeError("the tick failed")
    assert fake_gc.calls == ["freeze", "unfreeze"]


def test_an_idle_collection_waits_for_the_last_tick(fake_gc: _Collector) -> None:
    """While a tick is under way the service's collection after another tick is skipped;
    once none is, it runs, after the unfreeze."""
    with collector.frozen_before():
        assert not collector.collect_if_idle()
    assert collector.collect_if_idle()
    assert fake_gc.calls == ["freeze", "unfreeze", "collect"]


def test_a_sync_tick_runs_frozen_and_unfreezes_at_its_end(
    settings: Settings, fake_gc: _Collector
) -> None:
    """`run_once` loads every window with what was alive before it frozen, and gives it
    back to the collector when it returns."""
    seen: list[list[str]] = []

    def on_window(_result: PartitionResult) -> None:
        seen.append(list(fake_gc.calls))

    with make_client(settings, sleep=lambda _s: None) as client:
        report = run_once(
            settings,
            open_warehouse(settings.target_url),
            client,
            select_streams(("cash_registers", "pos_z_reports")),
            on_window=on_window,
            clock=lambda: datetime.now(UTC),
        )
    assert report.ok
    assert seen
    assert all(calls == ["freeze"] for calls in seen)
    assert fake_gc.calls == ["freeze", "unfreeze"]


def test_a_service_frees_what_each_tick_left_before_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The service's ticks open their warehouse before the tick and close it after, so it
    is frozen during the tick; after each tick the service collects while idle, so no
    earlier tick's warehouse outlives the next (without that, each one was kept)."""
    opened: list[weakref.ref[Any]] = []

    def tracked(*args: Any, **kwargs: Any) -> Any:
        warehouse = open_warehouse(*args, **kwargs)
        opened.append(weakref.ref(warehouse))
        return warehouse

    monkeypatch.setattr(service_module, "open_warehouse", tracked)
    with Simulator.create(SimConfig(seed=5, days=2, malformed_every=0)) as sim:
        settings = settings_for(sim, tmp_path / "w.duckdb")
        stream = STREAMS["pos_z_reports"]
        service = Service(settings, [stream])
        try:
            for _ in range(4):
                service.tick(stream)
        finally:
            service.client.close()
    assert len(opened) == 4
    assert [ref() is None for ref in opened[:3]] == [True, True, True]
    assert collector._ticks == 0
