"""`sitoo-sync status` walked through as a new user meets it."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sitoo_sync.cli import main
from sitoo_sync.warehouse.base import StreamState
from tests.targets import target_for


@pytest.mark.parametrize("name", ["postgres", "mysql"])
def test_status_of_an_empty_schema_names_the_schema_it_looked_in(
    name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """On a server, `status` of a schema nothing was synced into (a mistyped
    SITOO_TARGET_SCHEMA, say) names that schema beside the URL, so the slip shows."""
    with target_for(name, tmp_path) as target:
        for key, value in target.env().items():
            monkeypatch.setenv(key, value)
        assert main(["status"]) == 0
        out = capsys.readouterr().out
    assert out.startswith("nothing synced yet into ")
    assert out.rstrip().endswith(f"(SITOO_TARGET_SCHEMA={target.schema})")


def _state(stream: str, partition: str, last_success: datetime) -> StreamState:
    return StreamState(
        stream=stream,
        partition=partition,
        cursor=None,
        rows_loaded=0,
        windows_loaded=0,
        updated_at=last_success,
        last_success_at=last_success,
        last_error_at=None,
        last_error=None,
        last_status="ok",
    )


@pytest.mark.parametrize(
    ("stream", "fresh", "stale"),
    [("orders", "1", "2"), ("warehouse_items", "1/3", "2/5")],
)
def test_check_judges_only_the_partitions_of_the_sites_still_named(
    stream: str, fresh: str, stale: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`status --check` after a site is taken out of SITOO_SITE_IDS: that site's old
    partitions (its own, or a listed one that says its site, a warehouse's `2/5`) are never
    synced again, so they do not make the stream late for ever, while a named site that is
    late still does; without SITOO_SITE_IDS every site is judged."""
    from sitoo_sync.settings import load_settings
    from sitoo_sync.status import stream_problems

    now = datetime.now(UTC)
    states = [
        _state(stream, fresh, now - timedelta(minutes=5)),
        _state(stream, stale, now - timedelta(days=2)),
    ]
    monkeypatch.setenv("SITOO_API_ID", "1500-1")
    monkeypatch.setenv("SITOO_STREAMS", stream)
    monkeypatch.setenv("SITOO_SCHEDULES", f"{stream}=15m")
    monkeypatch.setenv("SITOO_SITE_IDS", "1")
    assert stream_problems(load_settings(), states, now) == []
    monkeypatch.setenv("SITOO_SITE_IDS", "1,2")
    [late] = stream_problems(load_settings(), states, now)
    assert late.startswith(f"{stream}: late: last success 2.0d ago")
    monkeypatch.delenv("SITOO_SITE_IDS")
    assert len(stream_problems(load_settings(), states, now)) == 1


def test_status_before_any_commit_still_shows_the_runs_that_were_killed(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A first tick killed before its first commit (an OOM-killed pod, a stop timeout)
    leaves no cursor but a run: `status` says nothing is synced yet, and still lists that
    run as interrupted, rather than hiding that anything ran."""
    from sitoo_sync.normalize.columns import rows_to_arrow
    from sitoo_sync.runs import HOST
    from sitoo_sync.warehouse import open_warehouse
    from sitoo_sync.warehouse.base import SYNC_RUNS, SYSTEM_TABLES

    db = tmp_path / "w.duckdb"
    warehouse = open_warehouse(f"duckdb:///{db}")
    try:
        warehouse.ensure_schema(SYSTEM_TABLES)
        run: dict[str, object] = {
            "run_id": "20261207T000000Z-killed",
            "stream": "orders",
            "started_at": datetime.now(UTC) - timedelta(minutes=5),
            "status": "running",
            "host": HOST,
            "pid": os.getpid(),  # this process's id: that row's process is gone (runs.py)
        }
        warehouse.insert(
            SYNC_RUNS, rows_to_arrow(SYNC_RUNS, [[run.get(c) for c in SYNC_RUNS.column_names]])
        )
    finally:
        warehouse.close()
    monkeypatch.setenv("SITOO_TARGET_URL", f"duckdb:///{db}")
    assert main(["status"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert f"nothing synced yet into duckdb:///{db}" in out
    [row] = [line for line in out if line.startswith("orders ")]
    assert "interrupted" in row
    assert str(run["run_id"]) in row


def test_json_shows_a_stream_that_ran_without_committing_anything() -> None:
    """`status --json` of a warehouse whose first tick died before its first commit (a run
    in sync_runs, no sync_state row) shows that stream's run, with the same fields as a
    partition's row, rather than an empty list; streams with partitions are as before."""
    from sitoo_sync.status import as_records
    from sitoo_sync.warehouse.base import RunRow

    now = datetime.now(UTC)
    started = now - timedelta(minutes=3)
    runs = {
        "orders": RunRow("r1", "orders", started, None, "interrupted"),
        "stores": RunRow("r2", "stores", started, now, "ok"),
    }
    states = [_state("stores", "1", now)]
    records = as_records(states, now, runs)
    assert [(r["stream"], r["partition"]) for r in records] == [("orders", None), ("stores", "1")]
    orders, stores = records
    assert set(orders) == set(stores)
    assert orders["last_run"]["status"] == "interrupted"
    assert orders["cursor"] is None
    assert stores["last_run"]["status"] == "ok"
