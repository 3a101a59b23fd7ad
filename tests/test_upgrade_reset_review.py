"""An adversarial review of the schema revision (warehouse/catalog.py, the upkeeps that check
and record it, the service's refusal) and of the reset of immutable streams (reset.py,
`StoredCursors.resets`).

A test marked `xfail(strict=True)` shows a defect this review found: it passes, and so fails
as XPASS, once the defect is fixed, and its mark then goes.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from sitoo_sync.commit import Batch, Outcomes, PartitionWriter
from sitoo_sync.normalize.columns import rows_to_arrow
from sitoo_sync.normalize.records import reject_for
from sitoo_sync.reset import reset_stream
from sitoo_sync.results import PartitionResult
from sitoo_sync.service import Service
from sitoo_sync.settings import Settings
from sitoo_sync.streams import STREAMS
from sitoo_sync.sync import run_once as real_run_once
from sitoo_sync.turns import ANY_THREAD
from sitoo_sync.views import VIEWS
from sitoo_sync.warehouse import catalog, open_warehouse
from sitoo_sync.warehouse.base import REJECTS, SYSTEM_TABLES
from sitoo_sync.warehouse.catalog import SYNC_SCHEMA
from tests.conftest import SyncFn
from tests.targets import target_for

SERVERS = ["postgres", "mysql"]
JOURNALS = STREAMS["journal_entries"]
REGISTER = "{2AA484B4-2B5F-55AB-128A-7DB46E573357}"
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def newer_revision(url: str) -> None:
    """Record a revision one newer than this code's in the warehouse at `url`, as a newer
    sitoo-sync's upkeep leaves it."""
    row = {
        "revision": catalog.SCHEMA_REVISION + 1,
        "version": "9.9.9",
        "recorded_at": NOW,
        "host": "new",
    }
    warehouse = open_warehouse(url)
    try:
        data = rows_to_arrow(SYNC_SCHEMA, [tuple(row[c] for c in SYNC_SCHEMA.column_names)])
        with warehouse.transaction():
            warehouse.insert(SYNC_SCHEMA, data)
    finally:
        warehouse.close()


# ---- the schema revision --------------------------------------------------------------


def test_a_tick_in_flight_when_the_service_is_refused_does_not_make_it_healthy_again(
    settings: Settings, sync: SyncFn, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once a tick of one stream is refused (a newer sitoo-sync upgraded the target), /healthz
    is not ready for any stream, also for one whose tick had passed its upkeep before the
    upgrade and ends well after the refusal."""
    settings = settings.model_copy(update={"streams": ["pos_z_reports", "stores"]})
    assert sync(settings).ok
    pos, stores = STREAMS["pos_z_reports"], STREAMS["stores"]
    service = Service(settings, [pos, stores])

    def run_once(*args: Any, **kwargs: Any) -> Any:
        report = real_run_once(*args, **kwargs)  # the stores' tick, past its upkeep
        newer_revision(settings.target_url)  # a newer process upgrades meanwhile
        monkeypatch.setattr("sitoo_sync.service.run_once", real_run_once)
        try:
            service.tick(pos)  # another thread's tick: refused
        finally:
            monkeypatch.setattr("sitoo_sync.service.run_once", run_once)
        return report

    monkeypatch.setattr("sitoo_sync.service.run_once", run_once)
    try:
        service.tick(stores)
        assert service._refused is not None
        ready, details = service.metrics.health()
        assert not any(d["ok"] for d in details.values()), details
        assert not ready
    finally:
        service.client.close()


@pytest.mark.parametrize("server", ["mysql"])  # (the step clears MySQL's/MariaDB's only)
def test_the_json_null_step_keeps_the_raw_copy_of_a_rejected_null_record(
    server: str, tmp_path: Path
) -> None:
    """A record the API sent as JSON null is kept in `rejects` with its raw copy 'null' (as
    this version keeps it too, on every target): the upgrade to revision 1, which turns the
    'null' a JSON column held for nothing into SQL NULL, leaves that raw copy as it was."""
    tables = [*SYSTEM_TABLES, *JOURNALS.tables]
    with target_for(server, tmp_path) as target:
        warehouse = open_warehouse(target.url, schema=target.schema)
        try:
            warehouse.ensure_schema(tables, VIEWS)
            rejected = reject_for(JOURNALS.name, None, "record: expected an object", None)
            assert rejected.raw == "null"
            with warehouse.transaction():
                warehouse.add_rejects([rejected])
                # the warehouse as the version before revisions left it
                warehouse.execute(f"DROP TABLE {warehouse.qualified(SYNC_SCHEMA.name)}")
            warehouse.ensure_schema(tables, VIEWS)  # the upgrade to revision 1
            [(raw,)] = warehouse.query(f"SELECT raw FROM {warehouse.qualified(REJECTS.name)}")
        finally:
            warehouse.close()
    assert raw is not None
    assert json.loads(raw) is None


# ---- the reset of immutable streams ---------------------------------------------------


@pytest.mark.parametrize("server", SERVERS)
def test_a_stale_replicas_deferred_ok_does_not_erase_a_later_reset(
    server: str, tmp_path: Path
) -> None:
    """A replica whose register had nothing new leaves its "ok" for the end of the tick;
    when it has lost its stream lock by then and `sitoo-sync reset` has moved the register
    back (under the lock the server freed), that late "ok" does not clear the reset's mark:
    the next tick still writes the period again."""
    with target_for(server, tmp_path) as target:
        stale = open_warehouse(target.url, schema=target.schema)
        other = open_warehouse(target.url, schema=target.schema)
        try:
            stale.ensure_schema([*SYSTEM_TABLES, *JOURNALS.tables])
            with stale.transaction():
                stale.set_cursor(JOURNALS.name, REGISTER, "1763600000", rows=1)
                stale.record_outcome(JOURNALS.name, REGISTER, "ok")
            cursors = stale.get_cursors(JOURNALS.name)
            outcomes = Outcomes(JOURNALS.name, cursors.resets)
            writer = PartitionWriter(
                stale,
                JOURNALS,
                REGISTER,
                Batch(max_rows=1000, max_seconds=600),
                PartitionResult(JOURNALS.name, REGISTER),
                None,
                ANY_THREAD,
                {"partition": REGISTER, "now": NOW},
                cursors[REGISTER],
            )
            writer.finish(outcomes, mark=False, now=NOW)  # nothing new: "ok", deferred
            # its lock lost, `reset` takes the stream and moves the register back
            assert reset_stream(None, other, JOURNALS) == [REGISTER]  # type: ignore[arg-type]
            assert REGISTER in other.get_cursors(JOURNALS.name).resets
            outcomes.flush(stale)  # the end of the stale replica's tick
            assert REGISTER in other.get_cursors(JOURNALS.name).resets
        finally:
            stale.close()
            other.close()
