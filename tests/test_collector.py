"""During a tick the cycle collector leaves alone what was alive before it, and only then."""

from __future__ import annotations

import gc
from datetime import UTC, datetime

from sitoo_sync.api.client import make_client
from sitoo_sync.collector import frozen_before
from sitoo_sync.results import PartitionResult
from sitoo_sync.settings import Settings
from sitoo_sync.streams import select_streams
from sitoo_sync.sync import run_once
from sitoo_sync.warehouse import open_warehouse


def test_ticks_side_by_side_freeze_once_and_unfreeze_when_the_last_ends() -> None:
    """The first tick under way freezes what is alive, a second one leaves it so, and only
    when both have ended does the collector search those objects again."""
    assert gc.get_freeze_count() == 0
    with frozen_before():
        frozen = gc.get_freeze_count()
        assert frozen > 0
        second = frozen_before()
        second.__enter__()
        assert gc.get_freeze_count() >= frozen
    assert gc.get_freeze_count() > 0  # the second tick is still under way
    second.__exit__(None, None, None)
    assert gc.get_freeze_count() == 0


def test_a_failing_tick_gives_its_objects_back_too() -> None:
    """A tick that raises still unfreezes: nothing stays out of the collector's reach."""
    try:
        with frozen_before():
            raise RuntimeError("the tick failed")
    except RuntimeError:
        pass
    assert gc.get_freeze_count() == 0


def test_a_sync_tick_runs_frozen_and_unfreezes_at_its_end(settings: Settings) -> None:
    """`run_once` loads its windows with the objects alive before it frozen, and leaves none
    frozen once it returns."""
    counts: list[int] = []

    def on_window(_result: PartitionResult) -> None:
        counts.append(gc.get_freeze_count())

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
    assert counts
    assert min(counts) > 0
    assert gc.get_freeze_count() == 0
