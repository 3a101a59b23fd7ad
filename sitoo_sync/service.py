"""`sitoo-sync run`: the long-lived service. One APScheduler job per stream.

Each job runs on its stream's schedule (SITOO_SCHEDULES or the `[schedules]` table, else
`schedule` in the stream's `[streams.<name>]` table, else the stream's default) with
`max_instances=1`, `coalesce=True` and jitter; every job runs once at start. Streams tick
independently, each on a worker of its own, so an hours-long journal backfill does not hold
back a z-report tick. Two ticks never write the same rows (their `sync_state` rows and
rejects are their stream's own), and on DuckDB they share the process's one database
instance, each on connections of its own. Every tick takes the stream's lock (see locks.py)
so a cron tick or another host never loads the same stream at the same time, or on a shared
server splits its partitions with them: a held lock skips the tick. A tick whose lock is
lost while it runs (the server ended the session it lived on, and freed it) stops after the
window under way and fails, so it does not load on beside whoever takes the lock next.

SIGTERM or SIGINT: no new ticks start; the ticks in flight stop after their current window
commits; the process exits 0 within SITOO_STOP_TIMEOUT_SECONDS. A second signal exits at
once; the last committed window is intact either way.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import os
import re
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import ThreadingHTTPServer
from types import FrameType
from typing import NamedTuple

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, JobSubmissionEvent
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from sitoo_sync import collector
from sitoo_sync.api.client import SitooClient, make_client
from sitoo_sync.errors import ConfigError, SchemaTooNew, SitooSyncError
from sitoo_sync.health import stored_last_success
from sitoo_sync.locks import shares_partitions
from sitoo_sync.log import get_logger
from sitoo_sync.metrics import Metrics, serve
from sitoo_sync.results import PartitionResult
from sitoo_sync.settings import Settings
from sitoo_sync.streams.base import Stream
from sitoo_sync.sync import HELD, RunReport, run_once
from sitoo_sync.warehouse import open_warehouse
from sitoo_sync.warehouse.base import Warehouse

log = get_logger(__name__)

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
#: How often the main thread looks whether a stop was requested (the signal handler only
#: sets it: stopping the scheduler from the handler could wait for a lock it interrupted).
_STOP_POLL_SECONDS = 0.2
#: How many of a cron schedule's next fire times are read for its longest gap, and how far
#: ahead at most: enough for the nights, weekends and month ends of any pattern that repeats
#: within a year (a read takes ~13 µs).
_CRON_FIRES_READ = 5000
_CRON_HORIZON = timedelta(days=400)
#: The longest interval a schedule may give, in seconds.
_LONGEST_INTERVAL = 365 * 86400
#: The jitter delays a tick by at most this share of its interval (1/10).
_JITTER_SHARE = 10


@dataclass(frozen=True)
class Schedule:
    """When a stream runs: the trigger, and the longest time between two of its ticks'
    starts as the schedule says (for /healthz, whose limit is a few of them): an interval
    (its jitter, a tenth of it at most, aside), or the widest gap of a cron expression (a
    night, a weekend)."""

    trigger: BaseTrigger
    interval_seconds: float


def parse_schedule(stream: str, text: str, jitter: int, *, source: str = "") -> Schedule:
    """ "15m", "1h", "90s", "1d" or a five-field cron expression (UTC); an error names
    `source`, where it was given (default: SITOO_SCHEDULES and the stream)."""
    where = source or f"SITOO_SCHEDULES: {stream}"
    if not isinstance(text, str):  # a TOML number or table
        raise ConfigError(f'{where}: expected a string such as "15m" (got {text!r})')
    if m := re.fullmatch(r"\s*(\d+)\s*([smhd])\s*", text):
        seconds = int(m.group(1)) * _UNITS[m.group(2)]
        if seconds <= 0:
            raise ConfigError(f"{where}: the interval must be positive")
        if seconds > _LONGEST_INTERVAL:  # a digit too many; past 9999 years, an OverflowError
            raise ConfigError(
                f"{where}: {text.strip()!r} is too long, the interval is at most 365d"
            )
        # APScheduler delays each tick by up to the jitter after the last one's delayed
        # start: a jitter longer than the interval would space the ticks by it instead.
        spread = min(jitter, seconds // _JITTER_SHARE)
        return Schedule(IntervalTrigger(seconds=seconds, jitter=spread or None), seconds)
    try:
        crontab = _as_crontab_reads_it(text)
        trigger = CronTrigger.from_crontab(crontab, timezone=UTC)
    except ValueError as exc:
        raise ConfigError(
            f"{where}: {text!r} is neither an interval such as 15m nor a cron expression ({exc})"
        ) from None
    gap = _longest_gap(trigger)
    if gap is None:
        raise ConfigError(f"{where}: the day of {text!r} never comes; the stream would not sync")
    return Schedule(CronTrigger.from_crontab(crontab, timezone=UTC), gap)


_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def _as_crontab_reads_it(text: str) -> str:
    """A cron expression with its day of week as a crontab reads it (0 or 7 Sunday, 1
    Monday, ...) written as names, which APScheduler 3 reads alike: its own numbers count
    from Monday, so `1-5` would run Tuesday to Saturday. Other than five fields: as given,
    for APScheduler to refuse."""
    fields = text.split()
    if len(fields) != 5:
        return text
    days = sorted({day % 7 for part in fields[4].lower().split(",") for day in _days_of(part)})
    fields[4] = "*" if len(days) == 7 else ",".join(_DAYS[d] for d in days)
    return " ".join(fields)


def _days_of(part: str) -> range:
    """The crontab days (0-7, Sunday both ends) of one element of a day-of-week list: `*`,
    a day, or a range, each with an optional `/step`; a ValueError if none of these."""
    spec, slash, step_text = part.partition("/")
    step = int(step_text) if slash else 1
    if step < 1:
        raise ValueError(f"the step of day of week {part!r} must be at least 1")
    first, dash, last = spec.partition("-")
    if spec == "*":
        low, high = 0, 7
    else:
        low = _day(first)
        high = _day(last, end=True) if dash else 7 if slash else low
    if high < low:
        raise ValueError(f"day of week {part!r} ends before it starts")
    return range(low, high + 1, step)


def _day(text: str, *, end: bool = False) -> int:
    """A crontab day of week, a number 0-7 or a name; Sunday ending a range is 7."""
    if text in _DAYS:
        day = _DAYS.index(text)
        return 7 if end and day == 0 else day
    if text.isdigit() and int(text) <= 7:
        return int(text)
    raise ValueError(f"not a day of week: {text!r} (0-7 or sun-sat)")


def _longest_gap(trigger: CronTrigger) -> float | None:
    """The most seconds between two of the cron trigger's next fire times (a day if it
    fires once only); None when it never fires (on a 30 February)."""
    now = datetime.now(UTC)
    fired = trigger.get_next_fire_time(None, now)
    if fired is None:
        return None
    longest = 0.0
    for _ in range(_CRON_FIRES_READ):
        following = trigger.get_next_fire_time(fired, fired + timedelta(seconds=1))
        if following is None:
            break
        longest = max(longest, (following - fired).total_seconds())
        if following - now > _CRON_HORIZON:
            break
        fired = following
    return longest or 86400.0


def stream_schedules(settings: Settings, streams: Sequence[Stream]) -> dict[str, Schedule]:
    """Each enabled stream's schedule (SITOO_SCHEDULES or [schedules], else `schedule` in
    its [streams.<name>] table, else its default), or a ConfigError.

    `run` and `run --once` both call this, so a schedule one refuses the other refuses too.
    """
    from sitoo_sync.streams import STREAMS

    unknown = [n for n in settings.schedules if n not in STREAMS]
    if unknown:
        raise ConfigError(
            f"SITOO_SCHEDULES: unknown stream {', '.join(map(repr, unknown))}; "
            f"known: {', '.join(STREAMS)}"
        )
    jitter = settings.schedule_jitter_seconds
    # Every schedule given is checked, also one of a stream not enabled (the example config
    # lists every stream's, opt-in ones too), which waits for the stream to be enabled.
    given = {name: parse_schedule(name, text, jitter) for name, text in settings.schedules.items()}
    for name, section in settings.stream_options.items():
        if "schedule" in section and name not in given:
            source = f"[streams.{name}] schedule"
            given[name] = parse_schedule(name, section["schedule"], jitter, source=source)
    return {
        s.name: given.get(s.name) or parse_schedule(s.name, s.default_schedule, jitter)
        for s in streams
    }


#: Why a tick whose stream lock was lost failed.
LOCK_LOST = (
    "the stream's lock was lost (the server ended the session it lived on, and freed it): "
    "the tick stopped after the window under way; the next one continues"
)


class _Began(NamedTuple):
    """Where a tick began: the client's requests and retries of its stream, and the time
    (time.monotonic)."""

    requests: int
    retries: int
    started: float


def _lost(stream: Stream, results: Sequence[PartitionResult]) -> list[PartitionResult]:
    """A tick's results once its lock was lost: failed, every one (or the stream's, `*`)."""
    failed = [dataclasses.replace(r, status="failed", error=r.error or LOCK_LOST) for r in results]
    return failed or [PartitionResult(stream.name, "*", status="failed", error=LOCK_LOST)]


class _DropMaxInstancesWarning(logging.Filter):
    """Drops APScheduler's own "skipped: maximum number of running instances" warning.

    `Service._on_tick_skipped` reports the same skip as our `tick_skipped` event (with the
    stream and how late it was) and counts it, so the skip is logged once, structured.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return "maximum number of running instances" not in str(record.msg)


_DROP_MAX_INSTANCES_WARNING = _DropMaxInstancesWarning()


class Service:
    """The scheduler, its jobs, the stop signal and the metrics endpoint."""

    def __init__(self, settings: Settings, streams: Sequence[Stream]) -> None:
        self.settings = settings
        self.streams = list(streams)
        self.schedules = stream_schedules(settings, self.streams)
        self.metrics = Metrics({n: s.interval_seconds for n, s in self.schedules.items()})
        self.stop = threading.Event()
        self._stopped_by = ""  # the signal that set `stop`
        self.running = 0  # ticks in flight; SIGTERM waits until none is
        self._running_changed = threading.Condition()
        self.client: SitooClient = make_client(settings, sleep=self._sleep, stop=self.stop)
        self.scheduler = BackgroundScheduler(
            # A worker per stream: with max_instances=1 each stream has at most one tick in
            # flight, and none waits for another stream's.
            executors={"default": ThreadPoolExecutor(max_workers=max(1, len(self.streams)))},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
            timezone=UTC,
        )
        self.scheduler.add_listener(self._on_tick_skipped, EVENT_JOB_MAX_INSTANCES)
        self._recalled = False  # each stream's stored last success, read once
        self._tick_stops: set[threading.Event] = set()  # of the ticks in flight
        self._ticks_lock = threading.Lock()
        self._recalling = threading.Lock()
        #: Why every tick fails at once: a newer sitoo-sync upgraded the target (`_refuse`).
        self._refused: str | None = None
        #: Held while a tick's outcome is recorded and while `_refuse` forgets successes.
        self._refusal_lock = threading.Lock()
        logging.getLogger("apscheduler.scheduler").addFilter(_DROP_MAX_INSTANCES_WARNING)

    def _sleep(self, seconds: float) -> None:
        """Retry backoff that a stop request cuts short."""
        self.stop.wait(seconds)

    def tick(self, stream: Stream) -> None:
        """One tick of one stream, under its lock; never raises into the scheduler."""
        with self._running_changed:
            self.running += 1
        try:
            if not self.stop.is_set():
                self._tick(stream)
        except Exception as exc:  # a bug, a library's own error: failed like any tick
            self.metrics.errors.labels(stream.name).inc()
            error = f"{type(exc).__name__}: {exc}"
            log.error("tick_failed", stream=stream.name, error=error, exc_info=True)
        finally:
            with self._running_changed:
                self.running -= 1
                self._running_changed.notify_all()
            # What the tick left, frozen from the collector during it, is found now, while
            # no tick waits for it (collector.py).
            collector.collect_if_idle()

    def _tick(self, stream: Stream) -> None:
        settings = self.settings
        if self._refused is not None:  # until this process is upgraded: see `_refuse`
            self.metrics.record_failed_tick(stream.name)
            log.error("tick_failed", stream=stream.name, error=self._refused)
            return
        try:
            warehouse = open_warehouse(settings.target_url, schema=settings.target_schema)
            lock = warehouse.lock(stream.name, shared=shares_partitions(settings, stream.name))
        except SitooSyncError as exc:  # e.g. the database server is down: the next tick retries
            self.metrics.record_failed_tick(stream.name)
            log.error("tick_failed", stream=stream.name, error=str(exc))
            return
        self._recall_successes(warehouse)
        if lock is None:
            try:
                if warehouse.capabilities.shared_locks:  # a replica, which may have stopped
                    self._synced_elsewhere(warehouse, stream)
                else:  # a process of this host, which the lock file's flock dies with
                    self._unless_refused(lambda: self.metrics.record_held(stream.name))
            finally:
                warehouse.close()
            log.info("stream_locked", stream=stream.name, action="skipped")
            return
        requests = self.client.requests[stream.name]
        retries = self.client.retries[stream.name]
        started = time.monotonic()
        stop = self._tick_stop()
        lock.watch(stop)
        try:
            report = run_once(self.settings, warehouse, self.client, [stream], stop=stop)
            lost = stop.is_set() and not self.stop.is_set()
            self._record(stream, report, lost=lost, began=_Began(requests, retries, started))
        except SitooSyncError as exc:
            self.metrics.record_failed_tick(stream.name, seconds=time.monotonic() - started)
            log.error("tick_failed", stream=stream.name, error=str(exc))
            if isinstance(exc, SchemaTooNew):
                self._refuse(str(exc))
        finally:
            with self._ticks_lock:
                self._tick_stops.discard(stop)
            lock.release()

    def _record(self, stream: Stream, report: RunReport, *, lost: bool, began: _Began) -> None:
        """A finished tick's outcome into the metrics and the log: its results (each lost
        when the stream's lock was lost meanwhile), or a failure when another stream's tick
        was refused meanwhile (`_refuse`)."""
        requests, retries, started = began
        now = datetime.now(UTC)
        results = _lost(stream, report.results) if lost else report.results
        recorded = self._unless_refused(
            lambda: self.metrics.record_tick(
                stream.name,
                results,
                requests=self.client.requests[stream.name] - requests,
                retries=self.client.retries[stream.name] - retries,
                seconds=time.monotonic() - started,
                lags={
                    r.partition: stream.lag_of(r.cursor, now)
                    for r in report.results
                    if r.partition != "*" and r.status != "gone"  # its cursor stays behind
                },
            )
        )
        if not recorded:  # no success counts once the process was refused
            self.metrics.record_failed_tick(stream.name, seconds=time.monotonic() - started)
            log.error("tick_failed", stream=stream.name, error=self._refused)
        elif lost:
            log.error("tick_failed", stream=stream.name, error=LOCK_LOST)
        elif report.skipped[stream.name, HELD]:
            self._synced_elsewhere(None, stream)

    def _refuse(self, line: str) -> None:
        """A newer sitoo-sync upgraded the target (`SchemaTooNew`, said in `line`): this
        process writes nothing there until it is upgraded, which restarts it. Every later
        tick of every stream fails at once with the same line, and /healthz answers 503 for
        every stream: their successes are forgotten, as of a stream that never succeeded
        (not a crash: a supervisor restarting the same version would fail the same way).
        A tick that passed its upkeep before the upgrade and ends after this fails too: what
        it wrote is kept, but its stream is not healthy again."""
        with self._refusal_lock:  # no tick that ends meanwhile records a success after it
            self._refused = line
            for stream in self.streams:
                self.metrics.record_synced_elsewhere(stream.name, None)

    def _unless_refused(self, record: Callable[[], None]) -> bool:
        """`record` (a stream's success or hold, into the metrics) unless this process was
        refused (`_refuse`), under the lock `_refuse` forgets successes under: a tick that
        passed the refusal check, and found its stream held elsewhere or read the target's
        successes meanwhile, made /healthz ready again after the refusal. Whether it was
        recorded."""
        with self._refusal_lock:
            if self._refused is not None:
                return False
            record()
            return True

    def _tick_stop(self) -> threading.Event:
        """A tick's own stop: set when the service stops (`_serve` relays it) or when the
        stream's lock is lost (`Lock.watch`), which must not stop the other streams."""
        stop = threading.Event()
        with self._ticks_lock:
            self._tick_stops.add(stop)
        if self.stop.is_set():  # set before the relay could see this one
            stop.set()
        return stop

    def _stop_ticks(self) -> None:
        """Relay the service's stop to every tick in flight."""
        with self._ticks_lock:
            stops = list(self._tick_stops)
        for stop in stops:
            stop.set()

    def _synced_elsewhere(self, warehouse: Warehouse | None, stream: Stream) -> None:
        """After a tick that left the stream or some of its partitions to other processes
        (their locks held): the stream's last success as the target keeps it counts, the
        oldest of its partitions' (`health.stored_last_success`), read on `warehouse` or on
        one opened for it. Unread, what the tick did counts (a warning says why)."""
        try:
            named = stream.partitions.values_from_settings(self.settings)
            opened = warehouse or open_warehouse(
                self.settings.target_url, schema=self.settings.target_schema
            )
            try:
                states = [s for s in opened.states() if s.stream == stream.name]
            finally:
                if warehouse is None:
                    opened.close()
        except Exception as exc:  # only /healthz's view of other processes is at stake
            error = f"{type(exc).__name__}: {exc}".splitlines()[0]
            log.warning("last_successes_unread", stream=stream.name, error=error)
            return
        at = stored_last_success(states, named)
        self._unless_refused(lambda: self.metrics.record_synced_elsewhere(stream.name, at))

    def _recall_successes(self, warehouse: Warehouse) -> None:
        """Once, at the first tick to open the target: each stream's last success as the
        target keeps it (`sync_state`), so /healthz shows real ages from the start of a
        process, not null ones and 503 until a tick of every stream has succeeded again."""
        with self._recalling:
            if self._recalled:
                return
            try:
                states = warehouse.states()
            except Exception as exc:  # the tick goes on (its lock is held): the next one retries
                error = f"{type(exc).__name__}: {exc}".splitlines()[0]  # not the statement
                log.warning("last_successes_unread", error=error)
                return
            self._recalled = True
        for stream in self.streams:
            try:
                named = stream.partitions.values_from_settings(self.settings)
            except ConfigError:  # the tick says what is missing
                continue
            mine = [s for s in states if s.stream == stream.name]
            at = stored_last_success(mine, named)
            if at is not None:
                self._unless_refused(
                    functools.partial(self.metrics.recall_success, stream.name, at)
                )

    def _on_tick_skipped(self, event: JobSubmissionEvent) -> None:
        """A tick came due while the stream's previous one was still running or queued."""
        now = datetime.now(UTC)
        late = max((now - t).total_seconds() for t in event.scheduled_run_times)
        self.metrics.ticks_skipped.labels(event.job_id).inc()
        log.warning(
            "tick_skipped",
            stream=event.job_id,
            late_seconds=round(late, 1),
            reason="the previous tick of the stream has not finished",
        )

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        """SIGTERM/SIGINT: the first asks for a stop, which run() carries out outside the
        handler (it interrupts the main thread anywhere: amid the scheduler's start, or
        holding a lock that stopping it takes); a second exits at once."""
        if self.stop.is_set():
            with contextlib.suppress(RuntimeError):  # amid a write to stderr: exit anyway
                log.warning("stop_forced", signal=signal.Signals(signum).name)
            os._exit(130)
        self._stopped_by = signal.Signals(signum).name
        self.stop.set()

    def run(self) -> int:
        """Serve until SIGTERM/SIGINT; returns the exit code."""
        signals = (signal.SIGTERM, signal.SIGINT)
        previous = {sig: signal.signal(sig, self._on_signal) for sig in signals}
        try:
            return self._serve()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _serve(self) -> int:
        server = self._serve_metrics()
        start = datetime.now(UTC)
        for stream in self.streams:
            schedule = self.schedules[stream.name]
            self.scheduler.add_job(
                self.tick,
                schedule.trigger,
                args=[stream],
                id=stream.name,
                name=f"sync {stream.name}",
                next_run_time=start,
            )
            log.info("stream_scheduled", stream=stream.name, every=schedule.interval_seconds)
        if not self.stop.is_set():  # a signal during the start-up: no tick
            log.info("service_started", streams=[s.name for s in self.streams])
            self.scheduler.start()
        while not self.stop.is_set():
            time.sleep(_STOP_POLL_SECONDS)
        log.info("stop_requested", signal=self._stopped_by)
        self._stop_ticks()
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        self._wait_for_ticks()
        self.client.close()
        if server is not None:
            server.shutdown()
            server.server_close()
        log.info("service_stopped")
        return 0

    def _serve_metrics(self) -> ThreadingHTTPServer | None:
        """/metrics and /healthz when SITOO_METRICS_PORT asks for them."""
        if self.settings.metrics_port is None:
            return None
        host, port = self.settings.metrics_host, self.settings.metrics_port
        try:
            server = serve(self.metrics, host, port)
        except OSError as exc:
            raise ConfigError(
                f"SITOO_METRICS_PORT: cannot listen on {host}:{port} "
                f"({exc.strerror or exc}); another process may use it"
            ) from None
        log.info("metrics_listening", host=server.server_address[0], port=server.server_port)
        return server

    def _wait_for_ticks(self) -> None:
        """Until the ticks in flight end (each after its current window commits); past
        SITOO_STOP_TIMEOUT_SECONDS the process exits 1."""
        deadline = time.monotonic() + self.settings.stop_timeout_seconds
        with self._running_changed:
            while self.running:
                left = deadline - time.monotonic()
                if left <= 0:
                    log.error("stop_timeout", seconds=self.settings.stop_timeout_seconds)
                    os._exit(1)
                self._running_changed.wait(min(left, 0.5))
