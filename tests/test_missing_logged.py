"""The rows a full listing no longer shows are logged once, by the transaction that marked
them and committed: not by an attempt a deadlock rolled back."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from sitoo_sync.api.client import make_client
from sitoo_sync.normalize.cash_registers import CASH_REGISTERS
from sitoo_sync.settings import Settings
from sitoo_sync.simulator import SimConfig, Simulator
from sitoo_sync.streams import select_streams
from sitoo_sync.sync import RunReport, run_once
from sitoo_sync.warehouse import open_warehouse
from tests.support import target_settings
from tests.targets import target_for
from tests.test_rejects_logged import Logged
from tests.test_transaction_retry import conflict_error


def tick(settings: Settings, *, fail_outcome: Exception | None = None) -> RunReport:
    """One tick; with `fail_outcome`, the first partition outcome written raises it once,
    after the statements before it in its transaction ran (a deadlock met at the end)."""
    warehouse = open_warehouse(settings.target_url, schema=settings.target_schema)
    if fail_outcome is not None:
        failures = iter([fail_outcome])
        real = warehouse.record_outcome

        def record_outcome(*args: Any, **kwargs: Any) -> None:
            real(*args, **kwargs)
            error = next(failures, None)
            if error is not None:
                raise error

        warehouse.record_outcome = record_outcome  # type: ignore[method-assign]
    with make_client(settings, sleep=lambda _s: None) as client:
        return run_once(
            settings,
            warehouse,
            client,
            select_streams(settings.streams),
            clock=lambda: datetime.now(UTC),
        )


@pytest.mark.parametrize("name", ["postgres", "mysql"])
def test_a_register_gone_from_its_listing_is_logged_once_when_its_marks_were_retried(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A register the listing stopped showing: its site's last transaction (marks and "ok")
    loses a deadlock once and runs again; the row is marked once and `rows_missing` is
    logged once, for the committed run."""
    logged = Logged()
    monkeypatch.setattr("sitoo_sync.commit.log", logged)
    with Simulator.create(SimConfig(seed=4, days=1)) as sim, target_for(name, tmp_path) as target:
        settings = target_settings(
            sim, target, streams=["cash_registers"], site_ids=sim.world.site_ids()[:1]
        )
        assert tick(settings).ok
        site = sim.world.site_ids()[0]
        gone = next(r for r in sim.world.registers if r.eshopid == site)
        sim.world.registers.remove(gone)
        assert tick(settings, fail_outcome=conflict_error(name)).ok
        warehouse = open_warehouse(target.url, schema=target.schema)
        try:
            rows = warehouse.read_table(CASH_REGISTERS)
        finally:
            warehouse.close()
    marked = [r["registerid"] for r in rows if r["missing_since"] is not None]
    assert marked == [gone.registerid]
    assert [e["rows"] for e in logged.named("rows_missing")] == [1]
