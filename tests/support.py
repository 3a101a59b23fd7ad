"""Helpers shared by the tests: settings for a simulator, reading a DuckDB target."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

import pytest
from pydantic import SecretStr

from sitoo_sync.settings import Settings
from sitoo_sync.simulator import SimConfig, Simulator
from sitoo_sync.warehouse import open_warehouse
from sitoo_sync.warehouse.base import SYSTEM_TABLES, Lock, PartitionLocks
from sitoo_sync.warehouse.duckdb import DuckDBWarehouse
from tests.targets import Target

FIXTURES = Path(__file__).parent / "fixtures"


def sync_simulated_world(
    config: SimConfig,
    target: Target,
    tmp: Path,
    store_days: int,
    streams: list[str] | None = None,
) -> Simulator:
    """A fresh simulated world (`config`), every stream (or `streams`, opt-in ones
    included) synced once into `target` on the world's own clock, store z-reports from
    `store_days` before it; the (stopped) simulator, whose world is the truth the warehouse
    is checked against."""
    with Simulator.create(config) as sim:
        start = datetime.fromtimestamp(config.now, UTC) - timedelta(days=store_days)
        sync_world_once(sim, target, tmp, start.date(), streams)
    return sim


def sync_world_once(
    sim: Simulator, target: Target, tmp: Path, start_day: date, streams: list[str] | None = None
) -> None:
    """One tick of every stream (or `streams`) from the running `sim` into `target`, on the
    world's own clock, store z-reports from `start_day`; it must succeed."""
    from sitoo_sync.api.client import make_client
    from sitoo_sync.streams import select_streams
    from sitoo_sync.sync import run_once

    settings = settings_for(
        sim,
        tmp / "unused.duckdb",
        stream_options={"store_z_reports": {"start_day": start_day}},
        **target.settings(),
    )
    warehouse = open_warehouse(target.url, schema=target.schema)
    with make_client(settings, sleep=lambda _s: None) as client:
        report = run_once(
            settings,
            warehouse,
            client,
            select_streams(streams),
            clock=lambda: datetime.fromtimestamp(sim.world.config.now, UTC),
        )
    assert report.ok, report.results


def settings_for(sim: Simulator, db: Path, **overrides: Any) -> Settings:
    """Settings that point at `sim` and load into the DuckDB file `db`."""
    values: dict[str, Any] = {
        "api_id": sim.api_id,
        "api_password": SecretStr(sim.password),
        "api_base_url": f"{sim.base_url}/v2/accounts/{{account_id}}",
        "journals_base_url": sim.journals_url,
        "site_ids": sim.world.site_ids(),
        "target_url": f"duckdb:///{db}",
        "http_backoff_base_seconds": 0.01,
        "http_backoff_max_seconds": 0.05,
    }
    values.update(overrides)
    return Settings(**values)


def target_settings(sim: Simulator, target: Target, **overrides: Any) -> Settings:
    """Settings that point at `sim` and load into `target` (any of tests/targets.py)."""
    return settings_for(sim, Path("unused.duckdb"), **target.settings(), **overrides)


def take_lock(settings: Settings, name: str, *, shared: bool = False) -> Lock | None:
    """The lock `name` on the settings' target through the seam (`Warehouse.lock`), as a
    tick (or `reset`) takes it; None when another holder has it. The lock outlives the
    warehouse it was taken from, which is closed."""
    warehouse = open_warehouse(settings.target_url, schema=settings.target_schema)
    try:
        return warehouse.lock(name, shared=shared)
    finally:
        warehouse.close()


def partition_locks(settings: Settings, stream: str) -> PartitionLocks:
    """Per-partition locks of `stream` on the settings' server target, as a tick takes them
    (`Warehouse.partition_locks`), on a connection of their own."""
    warehouse = open_warehouse(settings.target_url, schema=settings.target_schema)
    try:
        warehouse.ensure_schema(SYSTEM_TABLES)  # a tick's claims read cursors there
        locks = warehouse.partition_locks(stream)
    finally:
        warehouse.close()
    assert locks is not None, "the target has no shared locks"
    return locks


def run_once_process(
    sim: Simulator, target_env: Mapping[str, str], **extra: str
) -> subprocess.Popen[str]:
    """`sitoo-sync run --once` in a subprocess against `sim` and the target `target_env`
    names, logging JSON to a stderr pipe; `extra` adds or overrides SITOO_* settings. The
    caller's own SITOO_* variables are left out, so only what the test says applies."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SITOO_")},
        **sim.settings_env(),
        **target_env,
        "SITOO_LOG_FORMAT": "json",
        **extra,
    }
    return subprocess.Popen(
        [sys.executable, "-m", "sitoo_sync", "run", "--once"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def use_simulator(monkeypatch: pytest.MonkeyPatch, sim: Simulator, db: Path) -> None:
    """Point `sitoo-sync` commands run in this test at `sim` and the DuckDB file `db`."""
    for name, value in sim.settings_env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("SITOO_TARGET_URL", f"duckdb:///{db}")
    monkeypatch.setenv("SITOO_HTTP_BACKOFF_BASE_SECONDS", "0.01")


def assert_each_entry_once(sim: Simulator, rows: Iterable[Sequence[Any]]) -> None:
    """Every journal entry the simulator has is among `rows` ((registerid, id, ...) of the
    stored journal_entries), each exactly once, and nothing else is."""
    keys = Counter((r[0], r[1]) for r in rows)
    assert set(keys) == {(e["registerid"], e["id"]) for e in sim.world.journal.all_entries()}
    assert set(keys.values()) == {1}


def query(settings: Settings, sql: str) -> list[tuple[Any, ...]]:
    """Read from the settings' DuckDB file and close it again."""
    warehouse = DuckDBWarehouse(settings.target_url)
    try:
        return warehouse.query(sql)
    finally:
        warehouse.close()


def vendor_example() -> dict[str, Any]:
    """The PosZReport example of z-reports.txt, parsed as the client parses it."""
    text = (FIXTURES / "pos_z_reports_vendor_example.json").read_text()
    records: list[dict[str, Any]] = json.loads(text, parse_float=Decimal)
    return records[0]


class PipeLines:
    """The lines a child process writes to a pipe, collected by a thread as they come, so
    a test can wait for an event without a fixed sleep and the child never blocks on a full
    pipe."""

    def __init__(self, pipe: IO[str] | None) -> None:
        assert pipe is not None
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._drain, args=(pipe,), daemon=True)
        self._thread.start()

    def _drain(self, pipe: IO[str]) -> None:
        for line in pipe:
            self.lines.append(line)

    def events(self, name: str) -> list[dict[str, Any]]:
        """The JSON events called `name` so far (every line must be one JSON object)."""
        parsed = [json.loads(line) for line in list(self.lines)]
        return [event for event in parsed if event["event"] == name]

    def finish(self, timeout: float = 60) -> list[str]:
        """Every line, once the child has closed the pipe (it has exited)."""
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the child never closed its pipe"
        return self.lines
