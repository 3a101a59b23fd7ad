"""A database error ends a tick with one line, whatever the driver's message spans."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa

from sitoo_sync.api.client import make_client
from sitoo_sync.errors import WarehouseError
from sitoo_sync.log import configure_logging, get_logger
from sitoo_sync.simulator import SimConfig, Simulator
from sitoo_sync.streams import STREAMS
from sitoo_sync.sync import run_once
from sitoo_sync.warehouse import open_warehouse
from tests.support import settings_for
from tests.targets import target_for


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


def _copy_error_quoting(url: str, value: str) -> BaseException:
    """The error PostgreSQL gives for a COPY row that breaks a check constraint, as the COPY
    path (warehouse/pg_copy.py) meets it, from the driver: its DETAIL and CONTEXT lines
    quote the row, `value` with it."""
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as con:
            con.exec_driver_sql("CREATE TEMP TABLE people (id int, email text CHECK (id > 1))")
            raw = con.connection.driver_connection
            with raw.cursor() as cur, cur.copy("COPY people (id, email) FROM STDIN") as copy:  # type: ignore[union-attr]
                copy.write_row((1, value))
    except psycopg.Error as exc:
        return exc
    finally:
        engine.dispose()
    raise AssertionError("the COPY did not fail")


def test_a_postgresql_error_quoting_a_row_logs_no_value_even_at_debug(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL's DETAIL and CONTEXT lines quote the failing row (personal data, say);
    no log line carries them, not the debug line with the statement, not a traceback."""
    email = "anna.andersson@example.com"
    out = io.StringIO()
    with (
        target_for("postgres", tmp_path) as target,
        Simulator.create(SimConfig(seed=3, days=1, malformed_every=0)) as sim,
    ):
        error = _copy_error_quoting(target.url, email)
        assert email in str(error)  # what would leak
        settings = settings_for(sim, tmp_path / "w.duckdb", streams=["cash_registers"])
        settings = settings.model_copy(update=target.settings())
        warehouse = open_warehouse(target.url, schema=target.schema)

        def fails(*_args: Any, **_kwargs: Any) -> Any:
            raise error

        monkeypatch.setattr(warehouse, "get_cursors", fails)
        try:
            configure_logging(fmt="json", level="DEBUG", stream=out)
            with make_client(settings) as client, pytest.raises(WarehouseError) as info:
                run_once(settings, warehouse, client, [STREAMS["cash_registers"]])
            get_logger("t").error("tick_failed", error=str(error), exc_info=error)
        finally:
            configure_logging(fmt="console", level="INFO")
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    detail = next(e for e in events if e["event"] == "warehouse_failed_detail")
    assert "violates check constraint" in detail["error"]
    assert "violates check constraint" in str(info.value)
    assert "CheckViolation" in events[-1]["exception"]
    assert email not in out.getvalue() + str(info.value)
