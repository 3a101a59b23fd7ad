"""The long-lived service, the per-stream locks, and cron ticks that overlap."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest

from sitoo_sync.errors import ConfigError
from sitoo_sync.health import is_late, stored_last_success
from sitoo_sync.locks import shares_partitions
from sitoo_sync.service import parse_schedule, stream_schedules
from sitoo_sync.settings import Settings, load_settings
from sitoo_sync.simulator import SimConfig, Simulator
from sitoo_sync.streams import select_streams
from sitoo_sync.warehouse.base import StreamState
from tests.conftest import SyncFn
from tests.support import PipeLines, query, settings_for, take_lock
from tests.targets import Target, target_for


def listening_port(events: Callable[[], list[dict[str, Any]]], proc: subprocess.Popen[Any]) -> int:
    """The port a service started with SITOO_METRICS_PORT=0 took for /metrics, from its
    `metrics_listening` event: no port is picked before the service binds it, so tests in
    parallel never race for one."""
    wait_for(lambda: bool(events()) or proc.poll() is not None, 180, "the metrics server to listen")
    assert events(), f"the service exited ({proc.returncode}) before it listened"
    return int(events()[0]["port"])


def env_for(sim: Simulator, target: Target, **extra: str) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("SITOO_")},
        **sim.settings_env(),
        **target.env(),
        "SITOO_LOG_FORMAT": "json",
        "SITOO_HTTP_BACKOFF_BASE_SECONDS": "0.05",
        **extra,
    }


def start_service(env: dict[str, str]) -> tuple[subprocess.Popen[str], PipeLines]:
    """`sitoo-sync run` in a subprocess with `env`, and its stderr read as JSON events."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "sitoo_sync", "run"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    return proc, PipeLines(proc.stderr)


def wait_for(
    condition: Callable[[], bool], seconds: float, what: str, *, every: float = 0.05
) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(every)


def scrape(port: int, path: str) -> tuple[int, str]:
    try:
        # A loaded machine can keep the service from answering for seconds.
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def healthz(port: int) -> tuple[int, str]:
    """/healthz's status and body; 0 when it did not answer in time."""
    try:
        return scrape(port, "/healthz")
    except OSError as exc:
        return 0, str(exc)


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


@pytest.mark.parametrize(
    ("text", "jitter"),
    [("10s", 30), ("15m", 30), ("*/15 8-18 * * *", 0), ("0 9 * * 1-5", 0), ("0 0 1 * *", 0)],
)
def test_a_stream_that_ticks_on_its_schedule_is_never_late(text: str, jitter: int) -> None:
    """However a schedule spaces its ticks (an interval delayed by up to its jitter, a cron
    of opening hours or weekdays with nights and weekends between), /healthz's limit is
    never passed by a stream whose every tick succeeds on time."""
    schedule = parse_schedule("s", text, jitter)
    trigger = schedule.trigger
    now = datetime.now(UTC)
    fired = trigger.get_next_fire_time(None, now)
    assert fired is not None
    for _ in range(3000):  # as the scheduler asks: from the last (delayed) fire time
        following = trigger.get_next_fire_time(fired, fired)
        assert following is not None
        start, end = fired.timestamp(), following.timestamp()
        assert not is_late(start, schedule.interval_seconds, end), (fired, following)
        fired = following


@pytest.mark.parametrize(
    ("field", "days"),
    [
        ("1-5", "Mon Tue Wed Thu Fri"),
        ("mon-fri", "Mon Tue Wed Thu Fri"),
        ("0", "Sun"),
        ("7", "Sun"),
        ("5-7", "Fri Sat Sun"),
        ("*/2", "Tue Thu Sat Sun"),
        ("1,3", "Mon Wed"),
        ("sat,sun", "Sat Sun"),
        ("*", "Mon Tue Wed Thu Fri Sat Sun"),
    ],
)
def test_a_cron_day_of_week_counts_as_crontab_does(field: str, days: str) -> None:
    """A cron schedule's day of week means what it means in a crontab (0 or 7 Sunday, 1
    Monday): `0 9 * * 1-5` runs on weekdays, not Tuesday to Saturday as APScheduler 3's own
    numbers (0 Monday) would have it."""
    trigger = parse_schedule("s", f"0 9 * * {field}", jitter=0).trigger
    fired = trigger.get_next_fire_time(None, datetime(2026, 12, 6, 10, tzinfo=UTC))  # a Sunday
    seen = []
    for _ in range(14):
        seen.append(fired.strftime("%a"))
        fired = trigger.get_next_fire_time(fired, fired)
    order = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
    assert sorted(set(seen), key=order.index) == days.split()


@pytest.mark.parametrize("field", ["8", "5-1", "*/0", "x", "mon-"])
def test_a_cron_day_of_week_crontab_does_not_know_is_refused(field: str) -> None:
    """A day-of-week field no crontab reads is a configuration error naming the schedule."""
    with pytest.raises(ConfigError, match=r"^SITOO_SCHEDULES: pos: '0 9 \* \* .*' is neither"):
        parse_schedule("pos", f"0 9 * * {field}", jitter=0)


@pytest.mark.parametrize("text", ["366d", "9999999d", "99999999999999999999d"])
def test_an_interval_longer_than_a_year_is_a_configuration_error(text: str) -> None:
    """A mistyped interval (a digit too many) is one clear configuration error, not an
    OverflowError's traceback at start nor a stream that would next tick in centuries."""
    with pytest.raises(ConfigError, match=r"^SITOO_SCHEDULES: pos: .*at most 365d"):
        parse_schedule("pos", text, jitter=30)
    assert parse_schedule("pos", "365d", jitter=30).interval_seconds == 365 * 86400


def test_the_jitter_delays_a_tick_by_at_most_a_tenth_of_its_interval() -> None:
    """SITOO_SCHEDULE_JITTER_SECONDS=30 spreads "10s" ticks by up to 1 s, not 30: a 10 s
    schedule still ticks about every 10 s; a 15m one gets the whole 30 s."""
    for text, most in (("10s", 11.0), ("15m", 930.0)):
        trigger = parse_schedule("s", text, jitter=30).trigger
        fired = trigger.get_next_fire_time(None, datetime.now(UTC))
        gaps = []
        for _ in range(500):
            following = trigger.get_next_fire_time(fired, fired)
            gaps.append((following - fired).total_seconds())
            fired = following
        assert most - 1 < max(gaps) <= most, text


@pytest.mark.parametrize("text", ["0 0 30 2 *", "0 0 31 4,6,9,11 *"])
def test_a_cron_schedule_that_never_fires_is_a_configuration_error(text: str) -> None:
    """A cron expression of days that do not exist would leave its stream unsynced after the
    first tick, and forever late: refused at start, naming the stream."""
    with pytest.raises(ConfigError, match=r"^SITOO_SCHEDULES: pos: .* never comes"):
        parse_schedule("pos", text, jitter=0)


def test_a_streams_table_schedule_is_its_schedule_unless_schedules_names_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`schedule` in a `[streams.<name>]` table sets that stream's schedule; the `[schedules]`
    table and SITOO_SCHEDULES win over it, and a bad one is an error naming the table."""
    monkeypatch.delenv("SITOO_SCHEDULES", raising=False)
    config = tmp_path / "c.toml"

    def seconds(text: str) -> dict[str, float]:
        config.write_text(text)
        settings = load_settings(config)
        streams = select_streams(["pos_z_reports", "orders"], settings.stream_options)
        return {n: s.interval_seconds for n, s in stream_schedules(settings, streams).items()}

    section = '[streams.pos_z_reports]\nschedule = "2m"\n'
    assert seconds(section) == {"pos_z_reports": 120, "orders": 900}
    assert seconds(f'{section}[schedules]\npos_z_reports = "1h"\n')["pos_z_reports"] == 3600
    monkeypatch.setenv("SITOO_SCHEDULES", "pos_z_reports=30s")
    assert seconds(section)["pos_z_reports"] == 30
    monkeypatch.delenv("SITOO_SCHEDULES")
    with pytest.raises(ConfigError, match=r"^\[streams.orders\] schedule: 'often' is neither"):
        seconds('[streams.orders]\nschedule = "often"\n')


# ---- locks -----------------------------------------------------------------------------


HOLD = """
import sys, time
from sitoo_sync.warehouse import open_warehouse
lock = open_warehouse(sys.argv[1], schema=sys.argv[2] or None).lock("s")
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
            assert take_lock(settings, "s") is None
            other = take_lock(settings, "another-stream")
            assert other is not None
            other.release()
        finally:
            holder.kill()
            holder.wait()
        wait_for(lambda: _lock_free(settings), 60, "the dead holder's lock to be released")


def _lock_free(settings: Settings) -> bool:
    lock = take_lock(settings, "s")
    if lock is None:
        return False
    lock.release()
    return True


# ---- overlapping cron ticks ------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("target_name", ["duckdb", "postgres"])
def test_two_run_once_at_the_same_moment_load_each_stream_once(
    target_name: str, tmp_path: Path, sync: SyncFn
) -> None:
    """Started together, each stream of one partition (each stream, on a file target) is
    loaded by one process and skipped by the other; the rows are one process's."""
    with (
        Simulator.create(SimConfig(seed=21, days=15)) as sim,
        target_for(target_name, tmp_path) as shared,
        target_for(target_name, tmp_path) as single,
    ):
        # Slow enough that neither process can finish before the other has tried its locks,
        # however late a loaded machine starts it; fast again once both have.
        sim.faults.latency = 0.5
        cmd = [sys.executable, "-m", "sitoo_sync", "run", "--once"]
        procs = [
            subprocess.Popen(
                cmd,
                env=env_for(sim, shared),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        outs, logs = [PipeLines(p.stdout) for p in procs], [PipeLines(p.stderr) for p in procs]
        # On a server, streams of several partitions are split between them instead.
        target_settings = Settings(**shared.settings())
        streams = [
            s.name for s in select_streams(None) if not shares_partitions(target_settings, s.name)
        ]
        wait_for(
            lambda: sum(len(log.events("stream_skipped")) for log in logs) >= len(streams),
            180,
            "each exclusive stream to be skipped by the process that did not get its lock",
        )
        sim.faults.latency = 0.0
        assert [p.wait(timeout=240) for p in procs] == [0, 0]
        assert [out.finish() for out in outs] == [[], []]  # with JSON logs, nothing plain
        for log in logs:
            log.finish()
        for stream in ("pos_z_reports", "store_z_reports"):
            skipped = sum(
                e["stream"] == stream for log in logs for e in log.events("stream_skipped")
            )
            loaded = sum(
                e["message"].startswith(f"{stream} (account 1500): ok")
                for log in logs
                for e in log.events("stream_summary")
            )
            assert (skipped, loaded) == (1, 1), [log.lines for log in logs]
        sim.faults.latency = 0.0
        assert sync(settings_for(sim, tmp_path / "x.duckdb", **single.settings())).ok
        from sitoo_sync.streams import STREAMS

        tables = [t for s in STREAMS.values() if s.enabled_by_default for t in s.tables]
        got, want = shared.tables_rows(tables), single.tables_rows(tables)
        for table in tables:
            assert len(got[table.name]) == len(want[table.name]), table.name


# ---- the service -----------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(900)  # its waits are generous, for a loaded machine
def test_service_ticks_serves_metrics_lets_readers_in_and_stops_on_sigterm(
    tmp_path: Path,
) -> None:
    """Two ticks of each stream load new data; /metrics and /healthz answer; SIGTERM exits 0."""
    with (
        Simulator.create(SimConfig(seed=22, days=10)) as sim,
        target_for("duckdb", tmp_path) as target,
    ):
        env = env_for(
            sim,
            target,
            SITOO_SCHEDULES=json.dumps({"pos_z_reports": "2s", "store_z_reports": "2s"}),
            SITOO_SCHEDULE_JITTER_SECONDS="0",
            SITOO_METRICS_PORT="0",
            SITOO_STORE_Z_REPORTS_START_DAY="2026-11-01",
        )
        log_path = tmp_path / "service.log"
        log_file = log_path.open("w")
        proc = subprocess.Popen(
            [sys.executable, "-m", "sitoo_sync", "run"], env=env, stderr=log_file
        )
        try:

            def listening() -> list[dict[str, Any]]:
                written = log_path.read_text().split("\n")[:-1]  # whole lines only
                events = (json.loads(line) for line in written)
                return [e for e in events if e["event"] == "metrics_listening"]

            port = listening_port(listening, proc)

            def ticks(stream: str) -> float:
                try:
                    return metric(
                        scrape(port, "/metrics")[1], "sitoo_ticks_total", stream=stream, status="ok"
                    )
                except OSError:
                    return 0.0

            wait_for(
                lambda: ticks("pos_z_reports") >= 1 and ticks("store_z_reports") >= 1,
                180,
                "the first tick of each stream",
            )
            # Ready once each stream has ticked; on a loaded machine one stream's tick can
            # outlast the other's 3 intervals of freshness (6 s here), so wait for it.
            answers: list[tuple[int, str]] = []

            def ready() -> bool:
                answers.append(healthz(port))
                return answers[-1][0] == 200

            wait_for(ready, 180, "/healthz to say ready")
            assert json.loads(answers[-1][1])["ready"] is True, answers[-1]

            # New data between ticks is loaded by the next tick.
            now = sim.world.advance_clock(60)
            new = sim.world.add_new_reports(4, dateadded=now)
            first = {s: ticks(s) for s in ("pos_z_reports", "store_z_reports")}
            # Two more: the first to finish may have started before the new data was added.
            wait_for(lambda: all(ticks(s) >= first[s] + 2 for s in first), 180, "later ticks")
            text = scrape(port, "/metrics")[1]
            assert metric(text, "sitoo_rows_loaded_total", stream="pos_z_reports") > 0
            assert metric(text, "sitoo_requests_total", stream="store_z_reports") > 0
            assert 'sitoo_cursor_lag_seconds{partition="1500",stream="pos_z_reports"}' in text
            assert "sitoo_tick_duration_seconds" in text
            assert "sitoo_errors_total" in text

            # Between ticks, a BI tool can open the file read-only from another process.
            path = target.url.removeprefix("duckdb:///")

            def read_only_open() -> bool:
                try:
                    duckdb.connect(path, read_only=True).close()
                except duckdb.IOException:  # a tick has it open
                    return False
                return True

            # Tried often (in this process: a fresh interpreter per try would be too slow to
            # catch the gap when a loaded machine runs the ticks back to back).
            wait_for(read_only_open, 180, "a read-only open between ticks", every=0.01)

            proc.send_signal(signal.SIGTERM)
            # Longer than SITOO_STOP_TIMEOUT_SECONDS (60), after which the service exits 1.
            assert proc.wait(timeout=120) == 0
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


@pytest.mark.slow
@pytest.mark.timeout(600)  # its waits are generous, for a loaded machine
def test_a_tick_still_running_when_the_next_is_due_is_one_skipped_event_and_counted(
    tmp_path: Path,
) -> None:
    """A tick outlasting its interval makes the next one `tick_skipped` (a JSON event with
    the stream and how late it is) and counts it; APScheduler's own warning is not logged."""
    with (
        Simulator.create(SimConfig(seed=23, days=2)) as sim,
        target_for("duckdb", tmp_path) as target,
    ):
        sim.faults.latency = 1.5  # every request: a tick takes longer than its 1 s interval
        env = env_for(
            sim,
            target,
            SITOO_STREAMS="pos_z_reports",
            SITOO_SCHEDULES=json.dumps({"pos_z_reports": "1s"}),
            SITOO_SCHEDULE_JITTER_SECONDS="0",
            SITOO_METRICS_PORT="0",
        )
        proc, log = start_service(env)
        try:
            port = listening_port(lambda: log.events("metrics_listening"), proc)

            def skipped() -> float:
                try:
                    text = scrape(port, "/metrics")[1]
                except OSError:
                    return 0.0
                return metric(text, "sitoo_ticks_skipped_total", stream="pos_z_reports")

            wait_for(lambda: skipped() >= 1, 180, "a skipped tick to be counted")
            sim.faults.latency = 0.0  # the running tick may end now
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=120) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
        lines = log.finish()
    events = log.events("tick_skipped")  # parses every line: each must be one JSON object
    assert events, lines
    for event in events:
        assert event["stream"] == "pos_z_reports"
        assert event["level"] == "warning"
        assert 0 <= event["late_seconds"] < 60
    assert not any("maximum number of running instances" in line for line in lines)


def test_a_failed_metrics_request_is_one_json_event_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """A request the metrics server fails on is logged as `metrics_request_failed`, with
    nothing printed around the JSON log."""
    from sitoo_sync.log import configure_logging
    from sitoo_sync.metrics import Metrics, serve

    configure_logging(fmt="json")
    metrics = Metrics({"a": 60.0})

    def broken(now: float | None = None) -> tuple[bool, dict[str, object]]:
        raise RuntimeError("health check broke")

    monkeypatch.setattr(metrics, "health", broken)
    server = serve(metrics, "127.0.0.1", 0)
    try:
        with pytest.raises(ConnectionResetError):  # the server hangs up without an answer
            scrape(server.server_port, "/healthz")
    finally:
        server.shutdown()
        server.server_close()
    captured = capfd.readouterr()
    [line] = captured.err.splitlines()
    event = json.loads(line)
    assert event["event"] == "metrics_request_failed"
    assert "health check broke" in event["error"]
    assert captured.out == ""


def test_a_stream_another_replica_holds_keeps_this_one_ready() -> None:
    """A replica whose ticks of a stream find it held by another process (one-partition
    streams go to one replica) is ready for that stream, while the holds are recent; it
    used to stay unready for good, stalling a rollout of several replicas."""
    from sitoo_sync.metrics import Metrics
    from sitoo_sync.results import PartitionResult

    metrics = Metrics({"a": 60.0, "b": 60.0})
    metrics.record_tick("a", [PartitionResult("a", "1")], requests=1, retries=0, seconds=1, lags={})
    assert metrics.health()[0] is False
    metrics.record_held("b")
    ready, details = metrics.health()
    assert ready is True
    assert details["b"]["ok"] is True
    assert details["b"]["last_success_age_seconds"] is None
    assert details["b"]["held_elsewhere_age_seconds"] >= 0
    assert metrics.health(now=time.time() + 181)[0] is False  # the holds grew old too


def test_healthz_is_not_ready_before_every_stream_has_ticked() -> None:
    """Readiness needs a recent success of every stream, not just of one."""
    from sitoo_sync.metrics import Metrics
    from sitoo_sync.results import PartitionResult

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


# ---- what a service that starts knows ---------------------------------------------------


def _state(partition: str, success: datetime | None, status: str = "ok") -> StreamState:
    """A `sync_state` row of stream `s` whose last success was at `success`."""
    return StreamState("s", partition, None, 0, 0, None, success, None, None, status)


def test_a_streams_stored_last_success_is_its_oldest_partitions() -> None:
    """The stored last success of a stream is the oldest of its syncing partitions', the
    listing row and partitions disabled or gone aside; none when one never succeeded."""
    old, new = datetime(2026, 12, 1, tzinfo=UTC), datetime(2026, 12, 2, tzinfo=UTC)
    rows = [
        _state("1", new),
        _state("2", old, "failed"),  # failing since: its last success is older
        _state("3", None, "gone"),
        _state("4", None, "disabled"),
        _state("*", None, "failed"),
    ]
    assert stored_last_success(rows) == old.timestamp()
    assert stored_last_success([*rows, _state("5", None, "reset")]) is None
    assert stored_last_success(rows, partitions=["1"]) == new.timestamp()
    assert stored_last_success(rows, partitions=["1", "9"]) is None  # 9 never ran
    assert stored_last_success([]) is None
    assert stored_last_success([_state("4", None, "disabled")]) is None


def test_a_restarted_service_shows_each_streams_stored_age_at_once(
    sim: Simulator, tmp_path: Path, sync: SyncFn
) -> None:
    """A service started on a target its streams synced into knows their last successes
    from `sync_state` at its first tick, even one that fails (the API down): /healthz says
    ready with real ages instead of null ages and 503 until each stream succeeds again."""
    from sitoo_sync.service import Service

    names = ["pos_z_reports", "orders"]
    settings = settings_for(sim, tmp_path / "w.duckdb", streams=names)
    assert sync(settings).ok
    sql = "SELECT stream, min(last_success_at) FROM sync_state GROUP BY stream"
    stored = dict(query(settings, sql))
    sim.stop()  # the API is down when the service starts again
    streams = select_streams(names)
    service = Service(settings, streams)
    try:
        assert service.metrics.health()[0] is False  # nothing known before the target is read
        service.tick(streams[0])  # fails on the API, after it read the target
        ready, details = service.metrics.health()
    finally:
        service.client.close()
    errors = service.metrics.registry.get_sample_value
    assert errors("sitoo_errors_total", {"stream": "pos_z_reports"}) == 1
    assert ready is True, details
    now = time.time()
    for stream in names:
        age = details[stream]["last_success_age_seconds"]
        assert age == pytest.approx(now - stored[stream].timestamp(), abs=5)


def test_a_stop_requested_while_the_service_starts_ends_it_at_once(
    sim: Simulator, tmp_path: Path
) -> None:
    """SIGTERM during start-up, before the scheduler runs, stops the service cleanly: no tick
    starts and run() returns 0 at once (the handler raised SchedulerNotRunningError, a crash
    with a traceback), and the signal handlers it set are put back."""
    from sitoo_sync.service import Service
    from sitoo_sync.streams import STREAMS

    settings = settings_for(sim, tmp_path / "w.duckdb", metrics_port=0)
    service = Service(settings, [STREAMS["pos_z_reports"]])
    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        service._on_signal(signal.SIGTERM, None)
        started = time.monotonic()
        assert service.run() == 0
        assert time.monotonic() - started < 5
    finally:
        service.client.close()
        now = {s: signal.getsignal(s) for s in before}
        for sig, handler in before.items():
            signal.signal(sig, handler)
    assert now == before
    assert not (tmp_path / "w.duckdb").exists()  # no tick opened the target


def test_a_tick_that_crashes_is_a_counted_failure_and_frees_its_stream(
    sim: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unexpected error in a tick (a bug, a library's own exception) is logged as
    `tick_failed` with its traceback, counted in sitoo_errors_total and leaves the stream's
    lock free, as a SitooSyncError does, instead of escaping into APScheduler's own log."""
    import structlog

    from sitoo_sync import service as service_module
    from sitoo_sync.service import Service
    from sitoo_sync.streams import STREAMS

    def crash(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(service_module, "run_once", crash)
    settings = settings_for(sim, tmp_path / "w.duckdb")
    service = Service(settings, [STREAMS["pos_z_reports"]])
    try:
        with structlog.testing.capture_logs() as events:
            service.tick(STREAMS["pos_z_reports"])
    finally:
        service.client.close()
    [failed] = [e for e in events if e["event"] == "tick_failed"]
    assert (failed["stream"], failed["error"]) == ("pos_z_reports", "RuntimeError: a bug")
    assert failed["exc_info"]
    errors = service.metrics.registry.get_sample_value
    assert errors("sitoo_errors_total", {"stream": "pos_z_reports"}) == 1
    lock = take_lock(settings, "pos_z_reports")
    assert lock is not None
    lock.release()


def test_a_target_that_cannot_be_read_for_last_successes_fails_no_tick(
    sim: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When reading `sync_state` for the last successes fails, whatever the error, the tick
    still loads (it holds the stream's lock by then), with a warning."""
    import structlog

    from sitoo_sync.service import Service
    from sitoo_sync.streams import STREAMS
    from sitoo_sync.warehouse.duckdb import DuckDBWarehouse

    def states(self: DuckDBWarehouse) -> list[StreamState]:
        raise RuntimeError("unreadable")

    monkeypatch.setattr(DuckDBWarehouse, "states", states)
    settings = settings_for(sim, tmp_path / "w.duckdb")
    stream = STREAMS["pos_z_reports"]
    service = Service(settings, [stream])
    try:
        with structlog.testing.capture_logs() as events:
            service.tick(stream)
    finally:
        service.client.close()
    [unread] = [e for e in events if e["event"] == "last_successes_unread"]
    assert unread["error"] == "RuntimeError: unreadable"
    assert not [e for e in events if e["event"] == "tick_failed"]
    assert service.metrics.health()[0] is True  # the tick succeeded
