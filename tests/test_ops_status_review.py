"""Found in a review of what an operator uses day to day: `status`, `reset`, `/metrics`,
progress on a terminal and the log lines."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from sitoo_sync.cli import main
from sitoo_sync.log import show_status_line
from sitoo_sync.simulator import Simulator
from sitoo_sync.warehouse import open_warehouse
from sitoo_sync.warehouse.base import SYSTEM_TABLES
from tests.support import use_simulator


def _warehouse_with(db: Path, rows: list[tuple[str, str, str | None, str, str | None]]) -> None:
    """A DuckDB warehouse at `db` whose sync_state holds `rows`: (stream, partition,
    cursor, last status, its detail)."""
    warehouse = open_warehouse(f"duckdb:///{db}")
    try:
        warehouse.ensure_schema(SYSTEM_TABLES)
        for stream, partition, cursor, status, detail in rows:
            warehouse.set_cursor(stream, partition, cursor, rows=5)
            warehouse.record_outcome(stream, partition, status, detail)
    finally:
        warehouse.close()


def test_status_shows_every_stream_when_a_stored_cursor_cannot_be_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A cursor its strategy cannot read (a hand edit, an older version's form) is what a
    tick fails on and `reset` replaces: `status` and `status --json` still show every row,
    that cursor as stored with no lag, instead of a traceback or a one-line refusal."""
    db = tmp_path / "w.duckdb"
    _warehouse_with(
        db,
        [
            ("store_z_reports", "1500", "not-a-day", "failed", "unreadable cursor"),
            ("orders", "1", "{broken", "failed", "unreadable keyset cursor"),
            ("pos_z_reports", "1500", "1796644141", "ok", None),
        ],
    )
    monkeypatch.setenv("SITOO_TARGET_URL", f"duckdb:///{db}")
    assert main(["status"]) == 0
    lines = capsys.readouterr().out.splitlines()
    [day] = [line.split() for line in lines if line.startswith("store_z_reports ")]
    assert day[3:5] == ["not-a-day", "-"]  # the cursor as stored, no lag
    [keyset] = [line.split() for line in lines if line.startswith("orders ")]
    assert keyset[3:5] == ["-", "-"]
    assert any(line.startswith("pos_z_reports ") for line in lines)

    assert main(["status", "--json"]) == 0
    records = {r["stream"]: r for r in json.loads(capsys.readouterr().out)}
    assert records["store_z_reports"]["cursor"] == "not-a-day"
    assert records["store_z_reports"]["lag_seconds"] is None
    assert records["orders"]["cursor"] == "{broken"
    assert records["orders"]["lag_seconds"] is None
    assert isinstance(records["pos_z_reports"]["lag_seconds"], float)


def test_reset_leaves_a_failed_listing_alone_and_resets_only_partitions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Partition `*` records a listing that failed, it has no cursor: `reset` neither
    counts it as a partition it reset nor hides that failure from `status` (a stream
    that has only that row has loaded nothing, and says so)."""
    db = tmp_path / "w.duckdb"
    _warehouse_with(
        db,
        [
            ("warehouse_items", "*", None, "failed", "listing sites: 503"),
            ("journal_entries", "{R1}", "1796644141", "ok", None),
            ("journal_entries", "*", None, "failed", "listing registers: 503"),  # since
        ],
    )
    monkeypatch.setenv("SITOO_TARGET_URL", f"duckdb:///{db}")
    assert main(["reset", "warehouse_items"]) == 0
    assert "nothing to reset" in capsys.readouterr().out
    assert main(["reset", "journal_entries"]) == 0
    assert capsys.readouterr().out.startswith("journal_entries: 1 partition reset;")
    assert main(["reset", "journal_entries", "--partition", "*"]) == 2
    capsys.readouterr()

    assert main(["status"]) == 0
    rows = [line.split()[:3] for line in capsys.readouterr().out.splitlines()]
    assert ["warehouse_items", "*", "failed"] in rows
    assert ["journal_entries", "*", "failed"] in rows
    assert ["journal_entries", "{R1}", "reset"] in rows


def test_every_streams_counters_are_exposed_at_zero_before_anything_happened() -> None:
    """A counter series that first appears at 1 is read by Prometheus' `increase()` and
    `rate()` as no change: each stream's counters (and its ticks per outcome) are exposed at
    0 from the start, so an alert on the first failure after a (re)start fires."""
    from sitoo_sync.metrics import Metrics

    metrics = Metrics({"orders": 900.0, "journal_entries": 300.0})
    registry = metrics.registry
    for stream in ("orders", "journal_entries"):
        for name in (
            "sitoo_errors_total",
            "sitoo_rows_loaded_total",
            "sitoo_requests_total",
            "sitoo_retries_total",
            "sitoo_rejects_total",
            "sitoo_ticks_skipped_total",
        ):
            assert registry.get_sample_value(name, {"stream": stream}) == 0, name
        for status in ("ok", "failed", "disabled"):
            labels = {"stream": stream, "status": status}
            assert registry.get_sample_value("sitoo_ticks_total", labels) == 0
    # Gauges with no value yet are not made up: no lag, duration or success before a tick.
    assert (
        registry.get_sample_value("sitoo_last_success_timestamp_seconds", {"stream": "orders"})
        is None
    )
    assert registry.get_sample_value("sitoo_tick_duration_seconds", {"stream": "orders"}) is None


def test_the_cursor_lag_gauge_keeps_growing_between_ticks() -> None:
    """`sitoo_cursor_lag_seconds` is how far the cursor is behind now, as `status` shows it:
    read between ticks (or while a tick hangs) it has grown by the time since the tick, so
    an alert on lag fires when ticks stop moving the cursor."""
    from sitoo_sync.metrics import Metrics
    from sitoo_sync.results import PartitionResult

    clock = [1_000_000.0]
    metrics = Metrics({"orders": 900.0}, clock=lambda: clock[0])
    result = PartitionResult("orders", "1", rows=3, cursor="x")
    metrics.record_tick("orders", [result], requests=1, retries=0, seconds=2.0, lags={"1": 60.0})
    labels = {"stream": "orders", "partition": "1"}
    assert metrics.registry.get_sample_value("sitoo_cursor_lag_seconds", labels) == 60.0
    clock[0] += 3600
    assert metrics.registry.get_sample_value("sitoo_cursor_lag_seconds", labels) == 3660.0
    metrics.record_tick("orders", [result], requests=1, retries=0, seconds=2.0, lags={"1": 5.0})
    assert metrics.registry.get_sample_value("sitoo_cursor_lag_seconds", labels) == 5.0
    assert (
        metrics.registry.get_sample_value(
            "sitoo_last_success_timestamp_seconds", {"stream": "orders"}
        )
        == clock[0]
    )


def test_a_progress_line_never_wraps_on_a_narrow_terminal() -> None:
    """A line longer than the terminal is wide wraps, and `\\r` then only returns to its
    last row, so every redraw would leave a stale copy above: each drawn line is cut to
    the terminal's width, less one column, also the one drawn again below a log line."""
    import io
    from datetime import UTC, datetime

    from sitoo_sync.progress import Progress
    from sitoo_sync.results import PartitionResult

    now = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
    ticks = iter(float(n) for n in range(100))
    screen = io.StringIO()
    progress = Progress(
        screen, live=True, clock=lambda: next(ticks), now=lambda: now, columns=lambda: 60
    )
    at = int(now.timestamp())
    try:
        for n in range(1, 4):
            for register in ("{025B413F-8A9A-021E-A648-A7DD06839EB9}", "{05B6E6E3-07D4}"):
                cursor = str(at - (40 - n) * 86400)
                result = PartitionResult(
                    "journal_entries", register, windows=n, rows=1000 * n, cursor=cursor
                )
                progress(result)
    finally:
        progress.done()
    drawn = [part for line in screen.getvalue().split("\r\033[K") for part in line.split("\n")]
    assert max(len(line) for line in drawn) == 59
    assert drawn[-2].startswith("  journal_entries: 2 partitions, 6 windows, 6,000 rows, at")


@pytest.mark.parametrize("fmt", ["console", "json"])
@pytest.mark.parametrize("secret", ["S3cr3t-P4ss!x9", "S3cr/t-P4ss!x9"])
def test_a_password_given_as_the_password_file_is_not_quoted_back(
    fmt: str, secret: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """SITOO_API_PASSWORD_FILE set to the password itself (instead of a file holding it),
    a slash in it or not, is refused in one line that says what the setting wants, without
    the password in it: on the console, and in a JSON log a shipper keeps."""
    monkeypatch.delenv("SITOO_API_PASSWORD", raising=False)
    monkeypatch.setenv("SITOO_API_PASSWORD_FILE", secret)
    monkeypatch.setenv("SITOO_LOG_FORMAT", fmt)
    assert main(["status"]) == 2
    captured = capsys.readouterr()
    err = captured.err
    assert secret not in err + captured.out
    assert len(err.splitlines()) == 1
    assert "SITOO_API_PASSWORD_FILE: " in err
    assert "the name is not shown" in err


@pytest.mark.parametrize("fmt", ["console", "json"])
def test_a_server_url_whose_password_holds_an_unencoded_at_is_refused_unquoted(
    fmt: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A password with an `@` not written `%40` makes the host what follows it: the
    driver's error then named the password's tail as the host, and the URL's mask left it
    in the line. Such a URL is refused before any connection, saying how to write it,
    with no part of the password in the line or the log."""
    monkeypatch.setenv("SITOO_LOG_FORMAT", fmt)
    url = "postgresql://sitoo:s3c@Xq9z@127.0.0.1:1/test"
    assert main(["status", "--target", url]) == 2
    monkeypatch.setenv("SITOO_TARGET_URL", url)
    assert main(["reset", "orders"]) == 2
    captured = capsys.readouterr()
    assert "Xq9z" not in captured.out + captured.err
    lines = captured.err.splitlines()
    assert len(lines) == 2
    assert "--target: more than one @" in lines[0]
    assert "SITOO_TARGET_URL: more than one @" in lines[1]
    assert "%40" in lines[1]


def test_check_problems_beside_json_output_are_json_events_in_a_json_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`status --json --check` prints the document on stdout and each problem on stderr:
    with SITOO_LOG_FORMAT=json that stderr line is a JSON event as every other one is (a
    shipper reads it whole), while on the console it stays a `check:` line; exit 1."""
    db = tmp_path / "w.duckdb"
    _warehouse_with(db, [("pos_z_reports", "1500", "1796644141", "failed", "HTTP 503")])
    capsys.readouterr()  # what making it logged
    monkeypatch.setenv("SITOO_TARGET_URL", f"duckdb:///{db}")
    monkeypatch.setenv("SITOO_STREAMS", "pos_z_reports")
    monkeypatch.setenv("SITOO_LOG_FORMAT", "json")
    assert main(["status", "--json", "--check"]) == 1
    captured = capsys.readouterr()
    [record] = json.loads(captured.out)
    assert record["last_status"] == "failed"
    [event] = [json.loads(line) for line in captured.err.splitlines()]
    assert event["event"] == "status_check_failed"
    assert event["stream"] == "pos_z_reports"
    assert event["message"] == "check: pos_z_reports: failing (1500): HTTP 503"

    monkeypatch.setenv("SITOO_LOG_FORMAT", "console")
    assert main(["status", "--json", "--check"]) == 1
    assert capsys.readouterr().err == "check: pos_z_reports: failing (1500): HTTP 503\n"


class _Terminal(io.StringIO):
    """stderr as a terminal shows it."""

    def isatty(self) -> bool:
        return True


def test_an_error_after_a_progress_line_starts_a_line_of_its_own(
    sim: Simulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`run --once` on a terminal that fails mid-tick (the warehouse gave out) ends with
    its one error line on a line of its own, not glued to the end of the progress line it
    was drawing."""
    from sitoo_sync import sync
    from sitoo_sync.errors import WarehouseError
    from sitoo_sync.results import PartitionResult

    def failing(*_args: object, on_window: Any = None, **_kwargs: object) -> None:
        on_window(PartitionResult("pos_z_reports", "1500", windows=1, rows=7))
        raise WarehouseError("the warehouse failed: disk full")

    use_simulator(monkeypatch, sim, tmp_path / "w.duckdb")
    monkeypatch.setenv("SITOO_STREAMS", "pos_z_reports")
    monkeypatch.setattr(sync, "run_once", failing)
    screen = _Terminal()
    monkeypatch.setattr(sys, "stderr", screen)
    try:
        assert main(["run", "--once"]) == 1
    finally:
        show_status_line(None)
    lines = screen.getvalue().split("\n")
    assert lines[-1] == ""
    assert lines[-2] == "sitoo-sync: the warehouse failed: disk full"
    assert lines[-3].endswith("  pos_z_reports: 1 window, 7 rows")


def test_check_does_not_call_a_first_backfill_still_running_interrupted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Registers listed longer ago than the limit with no journal synced yet are a problem
    either way, but while the stream's last run is still running `--check` says its first
    backfill is under way, not that it was interrupted and should be run again (a run
    started meanwhile would find the stream locked and skip it)."""
    from datetime import UTC, datetime, timedelta

    from sitoo_sync.settings import load_settings
    from sitoo_sync.status import stream_problems
    from sitoo_sync.warehouse.base import RunRow, StreamState

    now = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
    monkeypatch.setenv("SITOO_STREAMS", "journal_entries")
    monkeypatch.setenv("SITOO_SCHEDULES", "journal_entries=5m")
    synced = StreamState(
        stream="journal_entries",
        partition="{R1}",
        cursor=None,
        rows_loaded=1,
        windows_loaded=1,
        updated_at=now,
        last_success_at=now,
        last_error_at=None,
        last_error=None,
        last_status="ok",
    )
    listed = {
        "journal_entries": {"{R1}": now - timedelta(hours=2), "{R2}": now - timedelta(hours=2)}
    }
    started = now - timedelta(hours=2)
    run = RunRow(
        run_id="r", stream="journal_entries", started_at=started, finished_at=None, status="running"
    )
    settings = load_settings()
    [problem] = stream_problems(settings, [synced], now, {}, listed, runs={"journal_entries": run})
    assert problem.startswith("journal_entries: never synced: 1 partition ({R2})")
    assert "still running, since 2026-12-07 10:00:00Z" in problem
    assert "interrupted" not in problem
    ended = {"journal_entries": RunRow(**{**run.__dict__, "status": "interrupted"})}
    [problem] = stream_problems(settings, [synced], now, {}, listed, runs=ended)
    assert "an interrupted first backfill: run it again" in problem
