"""The long-lived service, the per-stream locks, and cron ticks that overlap."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest

from sitoo_sync.errors import ConfigError
from sitoo_sync.locks import try_lock
from sitoo_sync.service import parse_schedule
from sitoo_sync.settings import Settings
from sitoo_sync.simulator import SimConfig, Simulator
from tests.conftest import SyncFn
from tests.support import query, settings_for
from tests.targets import Target, target_for


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def env_for(sim: Simulator, target: Target, **extra: str) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("SITOO_")},
        **sim.settings_env(),
        **target.env(),
        "SITOO_LOG_FORMAT": "json",
        "SITOO_HTTP_BACKOFF_BASE_SECONDS": "0.05",
        **extra,
    }


def wait_for(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def scrape(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text, 0 when absent."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith(f"{name}{{{wanted}}} ") or (not labels and line.startswith(f"{name} ")):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


# ---- schedules -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"), [("15m", 900), ("1h", 3600), ("90s", 90), ("*/5 * * * *", 300)]
)
def test_schedules_are_intervals_or_cron(text: str, seconds: float) -> None:
    """Intervals and cron expressions both work, and /healthz knows their period."""
    assert parse_schedule("s", text, jitter=0).interval_seconds == seconds


@pytest.mark.parametrize("text", ["0m", "every tuesday", "61 * * * *"])
def test_unreadable_schedules_are_configuration_errors(text: str) -> None:
    """A schedule that cannot be read names the setting and the stream."""
    with pytest.raises(ConfigError, match="SITOO_SCHEDULES: pos: "):
        parse_schedule("pos", text, jitter=0)


# ---- locks -----------------------------------------------------------------------------


HOLD = """
import sys, time
from sitoo_sync.settings import Settings
from sitoo_sync.locks import try_lock
lock = try_lock(Settings(target_url=sys.argv[1], target_schema=sys.argv[2] or None), "s")
print("held" if lock else "busy", flush=True)
time.sleep(60)
"""


@pytest.mark.parametrize("target_name", ["duckdb", "sqlite", "postgres", "mysql"])
def test_a_lock_is_exclusive_and_recovered_from_a_killed_holder(
    target_name: str, tmp_path: Path
) -> None:
    """While another process holds a stream's lock it is refused; after kill -9 it is free."""
    with target_for(target_name, tmp_path) as target:
        settings = Settings(target_url=target.url, target_schema=target.schema)
        holder = subprocess.Popen(
            [sys.executable, "-c", HOLD, target.url, target.schema or ""],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert holder.stdout is not None
            assert holder.stdout.readline().strip() == "held"
            assert try_lock(settings, "s") is None
            other = try_lock(settings, "another-stream")
            assert other is not None
            other.release()
        finally:
            holder.kill()
            holder.wait()
        wait_for(lambda: _lock_free(settings), 10, "the dead holder's lock to be released")


def _lock_free(settings: Settings) -> bool:
    lock = try_lock(settings, "s")
    if lock is None:
        return False
    lock.release()
    return True


# ---- overlapping cron ticks ------------------------------------------------------------


@pytest.mark.parametrize("target_name", ["duckdb", "postgres"])
def test_two_run_once_at_the_same_moment_load_each_stream_once(
    target_name: str, tmp_path: Path, sync: SyncFn
) -> None:
    """Started together, each stream is loaded by one process and skipped by the other."""
    with (
        Simulator.create(SimConfig(seed=21, days=15)) as sim,
        target_for(target_name, tmp_path) as shared,
        target_for(target_name, tmp_path) as single,
    ):
        sim.faults.latency = 0.05
        cmd = [sys.executable, "-m", "sitoo_sync", "run", "--once"]
        procs = [
            subprocess.Popen(cmd, env=env_for(sim, shared), stdout=subprocess.PIPE, text=True)
            for _ in range(2)
        ]
        outputs = [p.communicate(timeout=120)[0] for p in procs]
        assert [p.returncode for p in procs] == [0, 0]
        for stream in ("pos_z_reports", "store_z_reports"):
            skipped = sum(f"{stream}: skipped" in out for out in outputs)
            loaded = sum(f"{stream} (account 1500): ok" in out for out in outputs)
            assert (skipped, loaded) == (1, 1), outputs
        sim.faults.latency = 0.0
        assert sync(settings_for(sim, tmp_path / "x.duckdb", **single.settings())).ok
        from sitoo_sync.streams import STREAMS

        for table in (t for s in STREAMS.values() for t in s.tables):
            assert len(shared.rows(table)) == len(single.rows(table)), table.name


# ---- the service -----------------------------------------------------------------------


@pytest.mark.slow
def test_service_ticks_serves_metrics_lets_readers_in_and_stops_on_sigterm(
    tmp_path: Path,
) -> None:
    """Two ticks of each stream load new data; /metrics and /healthz answer; SIGTERM exits 0."""
    port = free_port()
    with (
        Simulator.create(SimConfig(seed=22, days=10)) as sim,
        target_for("duckdb", tmp_path) as target,
    ):
        env = env_for(
            sim,
            target,
            SITOO_SCHEDULES=json.dumps({"pos_z_reports": "2s", "store_z_reports": "2s"}),
            SITOO_SCHEDULE_JITTER_SECONDS="0",
            SITOO_METRICS_PORT=str(port),
            SITOO_STORE_Z_REPORTS_START_DAY="2026-11-01",
        )
        log_file = (tmp_path / "service.log").open("w")
        proc = subprocess.Popen(
            [sys.executable, "-m", "sitoo_sync", "run"], env=env, stderr=log_file
        )
        try:

            def ticks(stream: str) -> float:
                try:
                    return metric(
                        scrape(port, "/metrics")[1], "sitoo_ticks_total", stream=stream, status="ok"
                    )
                except OSError:
                    return 0.0

            wait_for(
                lambda: ticks("pos_z_reports") >= 1 and ticks("store_z_reports") >= 1,
                60,
                "the first tick of each stream",
            )
            status, body = scrape(port, "/healthz")
            assert status == 200, body
            assert json.loads(body)["ready"] is True

            # New data between ticks is loaded by the next tick.
            now = sim.world.advance_clock(60)
            new = sim.world.add_new_reports(4, dateadded=now)
            first = {s: ticks(s) for s in ("pos_z_reports", "store_z_reports")}
            wait_for(lambda: all(ticks(s) >= first[s] + 1 for s in first), 30, "second ticks")
            text = scrape(port, "/metrics")[1]
            assert metric(text, "sitoo_rows_loaded_total", stream="pos_z_reports") > 0
            assert metric(text, "sitoo_requests_total", stream="store_z_reports") > 0
            assert 'sitoo_cursor_lag_seconds{partition="1500",stream="pos_z_reports"}' in text
            assert "sitoo_tick_duration_seconds" in text
            assert "sitoo_errors_total" in text

            # Between ticks, a BI tool can open the file read-only from another process.
            reader = "import duckdb,sys; duckdb.connect(sys.argv[1], read_only=True).close()"
            path = target.url.removeprefix("duckdb:///")
            opened = False
            for _ in range(40):
                if (
                    subprocess.run([sys.executable, "-c", reader, path], check=False).returncode
                    == 0
                ):
                    opened = True
                    break
                time.sleep(0.1)
            assert opened, "the service held the DuckDB file between ticks"

            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
            log_file.close()
        events = [json.loads(line)["event"] for line in (tmp_path / "service.log").open()]
        assert "stop_requested" in events
        assert "service_stopped" in events
        con = duckdb.connect(path, read_only=True)
        keys = set(con.execute("SELECT registerid, zreportid FROM pos_z_reports").fetchall())
        con.close()
        assert keys == sim.world.valid_keys()
        assert {(r.body["registerid"], r.body["zreportid"]) for r in new} <= keys


def test_healthz_is_not_ready_before_every_stream_has_ticked() -> None:
    """Readiness needs a recent success of every stream, not just of one."""
    from sitoo_sync.metrics import Metrics
    from sitoo_sync.partition import PartitionResult

    metrics = Metrics({"a": 60.0, "b": 60.0})
    assert metrics.health()[0] is False
    metrics.record_tick("a", [PartitionResult("a", "1")], requests=1, retries=0, seconds=1, lags={})
    ready, details = metrics.health()
    assert ready is False
    assert details["a"]["ok"] is True
    disabled = [PartitionResult("b", "1", status="disabled")]
    metrics.record_tick("b", disabled, requests=1, retries=0, seconds=1, lags={})
    assert metrics.health()[0] is True
    assert metrics.health(now=time.time() + 181)[0] is False  # older than 3 intervals
    failed = [PartitionResult("a", "1", status="failed")]
    metrics.record_tick("a", failed, requests=1, retries=3, seconds=1, lags={})
    assert metrics.health()[1]["a"]["ok"] is True  # the last *success* still counts


def test_status_of_a_fresh_target_after_service_style_ticks(
    sim: Simulator, tmp_path: Path, sync: SyncFn
) -> None:
    """After a tick, sync_state has what `status` shows: status, cursor and rows."""
    settings = settings_for(sim, tmp_path / "w.duckdb", streams=["pos_z_reports"])
    sync(settings)
    [(status, rows)] = query(settings, "SELECT last_status, rows_loaded FROM sync_state")
    assert status == "ok"
    assert rows > 0
