"""Shared fixtures: a running simulator, settings pointing at it, and a one-call sync."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import structlog

from sitoo_sync.api.client import SitooClient, make_client
from sitoo_sync.settings import Settings
from sitoo_sync.simulator import SimConfig, Simulator
from sitoo_sync.streams import select_streams
from sitoo_sync.streams.site_zones import clear_site_zones
from sitoo_sync.sync import RunReport, run_once
from sitoo_sync.warehouse import open_warehouse
from tests.support import settings_for


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Slow tests and xdist groups (a costly module fixture's tests) first: with tests in
    parallel (`make test`), none of the long ones then starts last and runs on alone."""
    items.sort(key=lambda item: not (item.get_closest_marker("slow") or _grouped(item)))


def _grouped(item: pytest.Item) -> bool:
    return item.get_closest_marker("xdist_group") is not None


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No SITOO_* variable of the developer's shell leaks into a test."""
    for name in list(os.environ):
        if name.startswith("SITOO_") and not name.startswith("SITOO_TEST_"):
            monkeypatch.delenv(name)


#: The vendor's hosts: a test never calls the real Sitoo (the simulator or a mock transport
#: stands for it), so one that would, through a default URL a setting failed to replace,
#: fails at once instead of going to the network.
_SITOO_HOSTS = ("mysitoo.com", "sitooapis.com", "sitoo.com")


@pytest.fixture(autouse=True)
def _no_real_sitoo(monkeypatch: pytest.MonkeyPatch) -> None:
    """Name resolution of a Sitoo host fails in every in-process test."""
    resolve = socket.getaddrinfo

    def refusing(host: object, *args: object, **kwargs: object) -> object:
        name = host.decode() if isinstance(host, bytes) else str(host)
        if name.rstrip(".").lower().endswith(_SITOO_HOSTS):
            raise socket.gaierror(socket.EAI_NONAME, f"tests never call the real Sitoo: {name}")
        return resolve(host, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", refusing)


@pytest.fixture(autouse=True)
def _logging_as_it_was() -> Iterator[None]:
    """A test that configures logging (a command run in-process sets WARNING, say) leaves
    structlog as it found it: else a later test's `capture_logs` misses its info events."""
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


@pytest.fixture(autouse=True)
def _forget_site_zones() -> None:
    """No site zone a test's API gave (or refused) is remembered into the next test."""
    clear_site_zones()


@pytest.fixture
def sim() -> Iterator[Simulator]:
    """A simulator with a small seeded world (no malformed records), serving on loopback."""
    simulator = Simulator.create(SimConfig(seed=3, days=10, malformed_every=0)).start()
    yield simulator
    simulator.stop()


@pytest.fixture
def settings(sim: Simulator, tmp_path: Path) -> Settings:
    """Settings for the `sim` fixture and a fresh DuckDB file."""
    return settings_for(sim, tmp_path / "warehouse.duckdb")


SyncFn = Callable[..., RunReport]


@pytest.fixture
def sync() -> SyncFn:
    """Run one tick with `settings`; returns the report (the client is closed after)."""

    def _sync(settings: Settings, *, clock: Callable[[], datetime] | None = None) -> RunReport:
        client: SitooClient = make_client(settings, sleep=lambda _s: None)
        with client:
            return run_once(
                settings,
                open_warehouse(settings.target_url, schema=settings.target_schema),
                client,
                select_streams(settings.streams),
                clock=clock or (lambda: datetime.now(UTC)),
            )

    return _sync
