"""A second adversarial review of session 29's changes: the client's refusal hold and down
mode (api/client.py), the service's refusal (service.py), and the fence on (cursor,
windows_loaded) (warehouse/dialects.py, commit.py).

Each test shows a defect this review found; all are fixed (the two in dialects.py and
commit.py by their owner after the review).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from pydantic import SecretStr

from sitoo_sync.api.client import DOWN_AFTER_EXHAUSTED, Api, SitooClient, make_client
from sitoo_sync.errors import AuthError, RetryBudgetExhausted
from sitoo_sync.service import Service
from sitoo_sync.settings import Settings
from sitoo_sync.simulator import Simulator
from sitoo_sync.streams import STREAMS
from sitoo_sync.sync import run_once
from sitoo_sync.warehouse import open_warehouse
from sitoo_sync.warehouse.base import SYSTEM_TABLES, CursorMove, Warehouse
from tests.conftest import SyncFn
from tests.support import target_settings
from tests.targets import target_for

JOURNALS_HOST = "journals.example"
REFUSED = httpx.Response(401, json={"statuscode": 401, "errortext": "Unauthorized"})
DOWN = httpx.Response(503, json={"statuscode": 503, "errortext": "Service Unavailable"})
ITEMS: dict[str, list[object]] = {"items": []}


def client_of(handler: Any, **overrides: Any) -> SitooClient:
    """A client over `handler` whose journals API lives on a host of its own, as Sitoo's."""
    values: dict[str, Any] = {
        "api_id": "1500-1",
        "api_password": SecretStr("pw"),
        "site_ids": [1],
        "journals_base_url": f"https://{JOURNALS_HOST}/v3",
        "http_max_attempts": 3,
        "http_backoff_base_seconds": 0.0,
        "http_backoff_max_seconds": 0.0,
    }
    values.update(overrides)
    settings = Settings(**values)
    return make_client(settings, httpx.MockTransport(handler), sleep=lambda _s: None)


# ---- the client: one API's trouble is not another's ------------------------------------


def test_a_401_from_the_journals_host_holds_back_no_request_to_the_rest_api() -> None:
    """A refusal by the journals API (a host of its own) holds back that API's requests
    only: the REST v2 API, which accepts the credentials, is still asked."""

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == JOURNALS_HOST:
            return httpx.Response(401, content=REFUSED.content)
        return httpx.Response(200, json=ITEMS)

    with client_of(handler) as client:
        with pytest.raises(AuthError):
            client.get_json(Api.JOURNALS, "/journal", stream="journal_entries", partition="r")
        assert client.get_json(Api.V2, "/sites.json", stream="sites") == ITEMS


def test_a_down_journals_host_leaves_the_rest_api_its_retries() -> None:
    """Once the journals API's requests spent every attempt in a row, a REST v2 request
    still gets its whole budget: a 503 in passing there is retried, not the end of it."""
    v2: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == JOURNALS_HOST:
            return httpx.Response(503, content=DOWN.content)
        v2.append(1)
        return (
            httpx.Response(503, content=DOWN.content)
            if len(v2) == 1
            else httpx.Response(200, json=ITEMS)
        )

    with client_of(handler) as client:
        for _ in range(DOWN_AFTER_EXHAUSTED):
            with pytest.raises(RetryBudgetExhausted, match="after 3 attempts"):
                client.get_json(Api.JOURNALS, "/journal", stream="journal_entries")
        assert client.get_json(Api.V2, "/sites.json", stream="sites") == ITEMS
        assert len(v2) == 2


# ---- the service's refusal -------------------------------------------------------------


class _RefusedMeanwhile:
    """A warehouse whose stream lock another process holds, and whose `refusing` call (the
    read of the stored successes, or the lock attempt) comes while another stream's tick is
    refused (`Service._refuse`, in another thread)."""

    def __init__(self, real: Warehouse, service: Service, *, shared: bool, refusing: str) -> None:
        self._real, self._service, self._refusing = real, service, refusing
        self.capabilities = dataclasses.replace(real.capabilities, shared_locks=shared)

    def _meanwhile(self, call: str) -> None:
        if call == self._refusing and self._service._refused is None:
            self._service._refuse("refused: a newer sitoo-sync upgraded the target")

    def states(self) -> Any:
        states = self._real.states()
        self._meanwhile("states")
        return states

    def lock(self, name: str, *, shared: bool = False) -> None:
        self._meanwhile("lock")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


@pytest.mark.parametrize(
    ("shared", "refusing"),
    [(False, "lock"), (True, "lock"), (False, "states")],
    ids=["held-here", "held-by-a-replica", "recalled"],
)
def test_a_stream_found_held_as_the_service_is_refused_is_not_healthy(
    settings: Settings,
    sync: SyncFn,
    monkeypatch: pytest.MonkeyPatch,
    shared: bool,
    refusing: str,
) -> None:
    """A tick that passed the refusal check and then recalls the target's successes, or
    finds its stream held elsewhere, makes no stream healthy again after the refusal."""
    settings = settings.model_copy(update={"streams": ["stores"]})
    assert sync(settings).ok
    stores = STREAMS["stores"]
    service = Service(settings, [stores])
    real_open = open_warehouse

    def opened(*args: Any, **kwargs: Any) -> Any:
        real = real_open(*args, **kwargs)
        return _RefusedMeanwhile(real, service, shared=shared, refusing=refusing)

    monkeypatch.setattr("sitoo_sync.service.open_warehouse", opened)
    try:
        service.tick(stores)
        assert service._refused is not None
        ready, details = service.metrics.health()
        assert not details["stores"]["ok"], details
        assert not ready
    finally:
        service.client.close()


# ---- the fence on MySQL/MariaDB --------------------------------------------------------


def test_a_fenced_move_is_made_on_a_mariadb_that_assigns_simultaneously(tmp_path: Path) -> None:
    """On a MariaDB whose sql_mode has SIMULTANEOUS_ASSIGNMENT, a fenced move expecting the
    stored (cursor, windows) pair is made, as it is under the default left-to-right mode."""
    with target_for("mysql", tmp_path) as target:
        warehouse = open_warehouse(target.url, schema=target.schema)
        try:
            conn = warehouse.conn  # type: ignore[attr-defined]  # a SqlWarehouse's
            warehouse.ensure_schema(SYSTEM_TABLES)
            if "mariadb" not in str(conn.execute(sa.text("SELECT VERSION()")).scalar()).lower():
                pytest.skip("SIMULTANEOUS_ASSIGNMENT is MariaDB's")
            conn.execute(
                sa.text("SET SESSION sql_mode = CONCAT(@@sql_mode, ',SIMULTANEOUS_ASSIGNMENT')")
            )
            conn.commit()  # (the statements above began a transaction)
            with warehouse.transaction():
                warehouse.set_cursor("s", "p", "1", rows=5, windows=2)
            with warehouse.transaction():
                left = warehouse.set_cursors("s", [CursorMove("p", "2", 3, 1, True, "1", 2)])
            assert not left
            [state] = [s for s in warehouse.states() if s.partition == "p"]
            assert (state.cursor, state.rows_loaded, state.windows_loaded) == ("2", 8, 3)
        finally:
            warehouse.close()


@pytest.mark.timeout(300)
def test_a_no_op_tick_on_mysql_writes_no_cursor_row_per_partition(
    sim: Simulator, tmp_path: Path
) -> None:
    """A tick that finds nothing new on a MySQL/MariaDB target sends no statement per
    partition to sync_state beyond the outcomes' own (as before the fence of its "ok"s)."""
    journal = STREAMS["journal_entries"]
    with target_for("mysql", tmp_path) as target:
        settings = target_settings(sim, target, streams=[journal.name])
        now = datetime.fromtimestamp(sim.world.config.now, UTC)
        seen: Counter[str] = Counter()

        def tick() -> None:
            warehouse = open_warehouse(target.url, schema=target.schema)
            try:
                with make_client(settings, sleep=lambda _s: None) as client:
                    assert run_once(settings, warehouse, client, [journal], clock=lambda: now).ok
            finally:
                warehouse.close()

        def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            seen[" ".join(statement.split()[:3])] += 1

        tick()
        sa.event.listen(sa.engine.Engine, "before_cursor_execute", count)
        try:
            tick()  # nothing new: every register's outcome is a deferred "ok"
        finally:
            sa.event.remove(sa.engine.Engine, "before_cursor_execute", count)
        state_inserts = sum(
            n for s, n in seen.items() if s.startswith("INSERT INTO") and "sync_state" in s
        )
        assert len(sim.world.registers) > 2
        assert state_inserts <= 1, seen
