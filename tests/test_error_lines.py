"""A database error ends a tick with one line, whatever the driver's message spans."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sitoo_sync.api.client import make_client
from sitoo_sync.errors import WarehouseError
from sitoo_sync.simulator import SimConfig, Simulator
from sitoo_sync.streams import STREAMS
from sitoo_sync.sync import run_once
from sitoo_sync.warehouse import open_warehouse
from tests.support import settings_for


def test_a_warehouse_error_over_several_lines_fails_the_tick_with_its_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A driver's message that spans lines (the statement, a caret under it, a help link)
    becomes one line: what went wrong, without the statement after it."""
    with Simulator.create(SimConfig(seed=3, days=1, malformed_every=0)) as sim:
        settings = settings_for(sim, tmp_path / "w.duckdb", streams=["cash_registers"])
        warehouse = open_warehouse(settings.target_url)
        message = 'Constraint Error: duplicate key "1"\nLINE 1: INSERT INTO cash_registers ...\n^'

        def fails(*_args: Any, **_kwargs: Any) -> Any:
            raise warehouse.errors[0](message)

        monkeypatch.setattr(warehouse, "get_cursors", fails)
        with make_client(settings) as client, pytest.raises(WarehouseError) as info:
            run_once(settings, warehouse, client, [STREAMS["cash_registers"]])
    assert str(info.value) == 'the warehouse failed: Constraint Error: duplicate key "1"'
