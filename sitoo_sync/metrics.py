"""Observability for the service: Prometheus `/metrics` and a `/healthz` readiness check.

`/healthz` answers 200 when the last tick of every stream succeeded (or found its stream
disabled) within three of its intervals, and 503 with the reasons otherwise; a stream whose
lock, or some of whose partitions, another replica holds is as fresh as its `sync_state` on the
shared target says (`record_synced_elsewhere`). A service that
starts knows each stream's last success from the target (`Service` recalls it at its first
tick), so a restart shows the real ages, and is ready at once when they are recent; a
stream with no stored success is not ready before a tick of it succeeds.
"""

from __future__ import annotations

import contextlib
import json
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge
from prometheus_client.exposition import generate_latest

from sitoo_sync.health import HEALTHY_WITHIN_INTERVALS, is_late
from sitoo_sync.log import get_logger
from sitoo_sync.results import PartitionResult

log = get_logger(__name__)

#: How a tick of a stream ends, as `sitoo_ticks_total` counts it.
TICK_OUTCOMES = ("ok", "failed", "disabled")


@dataclass
class Metrics:
    """The service's counters and gauges, and what /healthz needs to know."""

    intervals: Mapping[str, float]  # stream → seconds between ticks
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    last_ok: dict[str, float] = field(default_factory=dict)
    #: When a tick last found the stream's lock held by another process (a replica).
    last_held: dict[str, float] = field(default_factory=dict)
    #: Unix time now (a test's own clock).
    clock: Callable[[], float] = time.time
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        r = self.registry
        self.rows = Counter("sitoo_rows_loaded", "Rows loaded", ["stream"], registry=r)
        self.requests = Counter("sitoo_requests", "HTTP requests to Sitoo", ["stream"], registry=r)
        self.retries = Counter("sitoo_retries", "Retried HTTP requests", ["stream"], registry=r)
        self.errors = Counter("sitoo_errors", "Failed ticks", ["stream"], registry=r)
        self.rejects = Counter("sitoo_rejects", "Records rejected", ["stream"], registry=r)
        self.ticks = Counter("sitoo_ticks", "Ticks by outcome", ["stream", "status"], registry=r)
        self.ticks_skipped = Counter(
            "sitoo_ticks_skipped",
            "Ticks not started because the stream's previous tick had not finished",
            ["stream"],
            registry=r,
        )
        self.lag = Gauge(
            "sitoo_cursor_lag_seconds",
            "How far the cursor is behind now",
            ["stream", "partition"],
            registry=r,
        )
        self.duration = Gauge(
            "sitoo_tick_duration_seconds", "Duration of the last tick", ["stream"], registry=r
        )
        self.last_success = Gauge(
            "sitoo_last_success_timestamp_seconds",
            "Unix time of the last successful tick",
            ["stream"],
            registry=r,
        )
        for stream in self.intervals:  # (see _zeroed)
            self._zeroed(stream)

    def _zeroed(self, stream: str) -> None:
        """Expose `stream`'s counters at 0 before anything happened: a series that first
        appears at 1 is no increase to Prometheus' `increase()` and `rate()`, so an alert on
        the first failure after a (re)start would not fire."""
        for counter in (
            self.rows,
            self.requests,
            self.retries,
            self.errors,
            self.rejects,
            self.ticks_skipped,
        ):
            counter.labels(stream)
        for status in TICK_OUTCOMES:
            self.ticks.labels(stream, status)

    def _show_lag(self, stream: str, partition: str, at: float) -> None:
        """`sitoo_cursor_lag_seconds` of the partition whose cursor stands for Unix time
        `at`: how far it is behind now, read at each scrape (as `status` reckons it), so it
        grows between ticks and while a tick hangs, rather than stay as the last tick left it."""
        clock = self.clock
        self.lag.labels(stream, partition).set_function(lambda: max(0.0, clock() - at))

    def record_tick(
        self,
        stream: str,
        results: Sequence[PartitionResult],
        *,
        requests: int,
        retries: int,
        seconds: float,
        lags: Mapping[str, float | None],
    ) -> None:
        """Account for one finished tick of a stream, all its partitions together: requests
        and retries are the stream's counts over the tick, counted once; the tick counts
        once, failed when a partition failed; its duration is the whole tick's."""
        statuses = {r.status for r in results}
        status = (
            "failed" if "failed" in statuses else "disabled" if statuses == {"disabled"} else "ok"
        )
        self.rows.labels(stream).inc(sum(r.rows for r in results))
        self.requests.labels(stream).inc(requests)
        self.retries.labels(stream).inc(retries)
        self.rejects.labels(stream).inc(sum(r.rejects for r in results))
        self.ticks.labels(stream, status).inc()
        self.duration.labels(stream).set(seconds)
        now = self.clock()
        for partition, lag in lags.items():
            if lag is not None:
                self._show_lag(stream, partition, now - lag)
        for gone in (r.partition for r in results if r.status == "gone"):
            with contextlib.suppress(KeyError):  # no lag of a partition Sitoo deleted
                self.lag.remove(stream, gone)
        if status == "failed":
            self.errors.labels(stream).inc()
            return
        with self._lock:
            self.last_ok[stream] = now
            self.last_success.labels(stream).set(now)

    def record_failed_tick(self, stream: str, *, seconds: float | None = None) -> None:
        """A tick that failed as a whole (the target could not be opened, the warehouse
        failed mid-tick): an error, and a failed tick as `record_tick` counts one."""
        self.ticks.labels(stream, "failed").inc()
        self.errors.labels(stream).inc()
        if seconds is not None:
            self.duration.labels(stream).set(seconds)

    def recall_success(self, stream: str, at: float) -> None:
        """A success of `stream` from before this process (at Unix time `at`, as the target
        keeps it), counted as this process's own until a tick of it succeeds."""
        with self._lock:
            if stream not in self.last_ok:  # a tick's success is newer
                self.last_ok[stream] = at
                self.last_success.labels(stream).set(at)

    def record_held(self, stream: str) -> None:
        """A tick found the stream held by another process, which syncs it (a replica of a
        stream that is one partition, say): this one is not late with it."""
        with self._lock:
            self.last_held[stream] = self.clock()

    def record_synced_elsewhere(self, stream: str, at: float | None) -> None:
        """A tick left some or all of the stream to other processes, which hold their locks
        on the shared target: the stream is only as fresh as the target says, the oldest
        last success of its partitions there (Unix time `at`; None: one never succeeded),
        whatever this tick did. A holder that stopped syncing shows so, in three intervals."""
        with self._lock:
            self.last_held.pop(stream, None)
            if at is None:
                self.last_ok.pop(stream, None)
                with contextlib.suppress(KeyError):
                    self.last_success.remove(stream)
            else:
                self.last_ok[stream] = at
                self.last_success.labels(stream).set(at)

    def health(self, now: float | None = None) -> tuple[bool, dict[str, Any]]:
        """(ready, details per stream)."""
        now = self.clock() if now is None else now
        details: dict[str, Any] = {}
        ready = True
        with self._lock:
            for stream, interval in self.intervals.items():
                last = self.last_ok.get(stream)
                held = self.last_held.get(stream)
                ok = not is_late(last, interval, now) or not is_late(held, interval, now)
                ready &= ok
                details[stream] = {
                    "ok": ok,
                    "last_success_age_seconds": None if last is None else round(now - last, 1),
                    "limit_seconds": HEALTHY_WITHIN_INTERVALS * interval,
                }
                if held is not None:
                    details[stream]["held_elsewhere_age_seconds"] = round(now - held, 1)
        return ready, details


class _Server(ThreadingHTTPServer):
    """Reports a failed request (say, a scraper that hung up) as an event, not a traceback
    printed straight to stderr, which would be the one non-JSON line of a JSON log."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.warning("metrics_request_failed", error=repr(sys.exc_info()[1]))


def serve(metrics: Metrics, host: str, port: int) -> ThreadingHTTPServer:
    """Serve /metrics and /healthz from a daemon thread; returns the server."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: scrapes are not events."""

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            if self.path.startswith("/metrics"):
                self._send(200, generate_latest(metrics.registry), CONTENT_TYPE_LATEST)
            elif self.path.startswith("/healthz"):
                ready, details = metrics.health()
                body = json.dumps({"ready": ready, "streams": details}).encode()
                self._send(200 if ready else 503, body, "application/json")
            else:
                self._send(404, b"not found\n", "text/plain")

    server = _Server((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="sitoo-metrics", daemon=True).start()
    return server
