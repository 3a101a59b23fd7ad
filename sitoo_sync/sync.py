"""One tick: for every enabled stream and partition, window → normalize → load with cursor.

The next window is fetched on a helper thread while the current one is normalized and
loaded (a queue of one). Fetching never depends on what was loaded, only on the last page,
so this changes speed and nothing else. Consecutive windows are committed together, rows,
rejects and the last window's cursor in one transaction, up to SITOO_LOAD_BATCH_ROWS /
_SECONDS; memory holds two raw windows and one batch of typed (Arrow) rows. A crash at any
instant loses nothing: what was not committed is fetched again from the stored cursor.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, TypeVar

from sitoo_sync.api.client import SitooClient
from sitoo_sync.errors import DisabledStream, SitooSyncError, WarehouseError
from sitoo_sync.log import get_logger
from sitoo_sync.normalize.records import NormalizedWindow
from sitoo_sync.settings import Settings
from sitoo_sync.streams.base import Stream, items_of
from sitoo_sync.streams.cash_registers import list_registers
from sitoo_sync.streams.cursors import Window, WindowContext
from sitoo_sync.warehouse.base import SYSTEM_TABLES, Warehouse
from sitoo_sync.warehouse.load import Batch, load_window

log = get_logger(__name__)

T = TypeVar("T")

Status = Literal["ok", "failed", "disabled"]


@dataclass
class PartitionResult:
    """What one tick of one (stream, partition) did."""

    stream: str
    partition: str
    status: Status = "ok"
    windows: int = 0
    rows: int = 0
    rejects: int = 0
    requests: int = 0
    cursor: str | None = None
    error: str | None = None
    seconds: float = 0.0


@dataclass
class RunReport:
    """The outcome of `run_once`: one result per partition."""

    results: list[PartitionResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no partition failed (disabled streams are not failures)."""
        return all(r.status != "failed" for r in self.results)

    @property
    def rows(self) -> int:
        """Rows loaded across every table."""
        return sum(r.rows for r in self.results)


_DONE = object()


def _utcnow() -> datetime:
    return datetime.now(UTC)


def prefetch(source: Iterator[T], *, depth: int = 1) -> Iterator[T]:
    """Iterate `source` on a helper thread, at most `depth` items ahead of the consumer."""
    box: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in source:
                while not stop.is_set():
                    try:
                        box.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            box.put(_DONE)
        except BaseException as exc:  # handed to the consumer, raised there
            box.put(exc)

    worker = threading.Thread(target=produce, name="sitoo-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            item = box.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        worker.join(timeout=5)


def _split_values_from(
    client: SitooClient, settings: Settings, stream: Stream
) -> Callable[[str, list[Any]], Iterable[str]]:
    """Values to split a crowded second by: those on the page, and for `registerid` every
    register the cash-register listing of the configured sites knows."""

    def values(field_name: str, page: list[Any]) -> Iterable[str]:
        seen = {r[field_name] for r in page if isinstance(r, Mapping) and r.get(field_name)}
        listed: set[str] = set()
        if field_name == "registerid":
            listed = {
                r["registerid"]
                for r in list_registers(client, settings.site_ids, stream=stream.name)
                if isinstance(r.get("registerid"), str)
            }
        log.info(
            "window_split",
            stream=stream.name,
            by=field_name,
            values=len(seen | listed),
            on_page=len(seen),
            listed=len(listed),
        )
        return seen | listed

    return values


def _log_batch(stream: Stream, partition: str, batch: Batch, normalized: NormalizedWindow) -> None:
    log.info(
        "batch_loaded",
        stream=stream.name,
        partition=partition,
        windows=len(batch.windows),
        records=batch.records,
        rows=normalized.row_count(),
        rejects=len(normalized.rejects),
        cursor=batch.cursor,
    )
    for reject in normalized.rejects:
        log.warning(
            "record_rejected",
            stream=stream.name,
            partition=partition,
            record_key=reject.record_key,
            reason=reject.reason,
        )


def _fetcher(
    client: SitooClient, stream: Stream, partition: str
) -> Callable[[Mapping[str, str | int]], list[Any]]:
    """GET the stream's path with given params and return its records."""

    def fetch(params: Mapping[str, str | int]) -> list[Any]:
        payload = client.get_json(
            stream.api, stream.path, params, stream=stream.name, partition=partition
        )
        try:
            return items_of(payload)
        except ValueError as exc:
            raise SitooSyncError(
                str(exc),
                stream=stream.name,
                partition=partition,
                url=client.url(stream.api, stream.path),
            ) from exc

    return fetch


def _window_context(
    settings: Settings,
    client: SitooClient,
    stream: Stream,
    partition: str,
    *,
    fetch: Callable[[Mapping[str, str | int]], list[Any]],
    now: datetime,
) -> WindowContext:
    """What the stream's cursor strategy may use during this tick."""
    return WindowContext(
        fetch=fetch,
        get=lambda path: client.get_json(stream.api, path, stream=stream.name, partition=partition),
        key=stream.key,
        overlap=settings.overlap_seconds,
        split_values=_split_values_from(client, settings, stream),
        start_day=settings.store_z_reports_start_day,
        lookback_days=settings.store_z_reports_lookback_days,
        grace=timedelta(minutes=settings.store_z_reports_grace_minutes),
        now=now,
    )


def sync_partition(
    settings: Settings,
    warehouse: Warehouse,
    client: SitooClient,
    stream: Stream,
    partition: str,
    *,
    on_window: Callable[[PartitionResult], None] | None = None,
    clock: Callable[[], datetime] = _utcnow,
    stop: threading.Event | None = None,
) -> PartitionResult:
    """Bring one (stream, partition) up to date; errors are caught and reported, not raised."""
    result = PartitionResult(stream=stream.name, partition=partition)
    started = time.monotonic()
    requests_before = client.requests[stream.name]
    stored = warehouse.get_cursor(stream.name, partition)
    result.cursor = stored

    fetch = _fetcher(client, stream, partition)
    ctx = _window_context(settings, client, stream, partition, fetch=fetch, now=clock())
    windows: Iterator[Window] = stream.cursor.windows(ctx, stored)
    batch = Batch(max_rows=settings.load_batch_rows, max_seconds=settings.load_batch_seconds)

    def commit() -> None:
        if not batch.windows:
            return
        normalized = NormalizedWindow.concat(batch.windows)
        load_window(
            warehouse, stream, partition, normalized, batch.cursor, windows=len(batch.windows)
        )
        result.rows += normalized.row_count()
        result.rejects += len(normalized.rejects)
        result.cursor = batch.cursor
        _log_batch(stream, partition, batch, normalized)
        batch.clear()
        if on_window is not None:
            on_window(result)

    try:
        for window in prefetch(windows):
            normalized = stream.normalize(window.records)
            keys = normalized.keys()
            if not batch.accepts(keys):
                commit()
            batch.add(normalized, keys, len(window.records), str(window.cursor))
            result.windows += 1
            log.debug(
                "window_fetched",
                stream=stream.name,
                partition=partition,
                params=dict(window.params),
                records=len(window.records),
                cursor=window.cursor,
            )
            if batch.full():
                commit()
            if stop is not None and stop.is_set():
                log.info("stop_honoured", stream=stream.name, partition=partition)
                break
        commit()
        warehouse.record_outcome(stream.name, partition, "ok")
    except DisabledStream as exc:
        result.status = "disabled"
        result.error = exc.message
        log.info("stream_disabled", stream=stream.name, partition=partition, reason=exc.message)
        warehouse.record_outcome(stream.name, partition, "disabled", exc.message)
    except SitooSyncError as exc:
        # Windows already fetched are whole and their cursor is right: keep that progress.
        commit()
        result.status = "failed"
        result.error = str(exc)
        log.error(
            "partition_failed",
            error=exc.message,
            **{"stream": stream.name, **exc.context(), "partition": partition},
        )
        warehouse.record_outcome(stream.name, partition, "failed", str(exc))
    result.requests = client.requests[stream.name] - requests_before
    result.seconds = time.monotonic() - started
    return result


def run_once(
    settings: Settings,
    warehouse: Warehouse,
    client: SitooClient,
    streams: Sequence[Stream],
    *,
    on_window: Callable[[PartitionResult], None] | None = None,
    clock: Callable[[], datetime] = _utcnow,
    stop: threading.Event | None = None,
) -> RunReport:
    """One tick of every stream given; the warehouse is closed at the end either way."""
    report = RunReport()
    try:
        _run_streams(
            settings,
            warehouse,
            client,
            streams,
            report=report,
            on_window=on_window,
            clock=clock,
            stop=stop,
        )
    except warehouse.errors as exc:
        log.error("warehouse_failed", target=type(warehouse).__name__, error=str(exc))
        raise WarehouseError(f"the warehouse failed: {exc}") from exc
    finally:
        warehouse.close()
    return report


def _run_streams(
    settings: Settings,
    warehouse: Warehouse,
    client: SitooClient,
    streams: Sequence[Stream],
    *,
    report: RunReport,
    on_window: Callable[[PartitionResult], None] | None,
    clock: Callable[[], datetime],
    stop: threading.Event | None,
) -> None:
    warehouse.ensure_schema([*SYSTEM_TABLES, *(t for s in streams for t in s.tables)])
    partition = settings.resolved_account_id
    for stream in streams:
        if stop is not None and stop.is_set():
            break
        result = sync_partition(
            settings,
            warehouse,
            client,
            stream,
            partition,
            on_window=on_window,
            clock=clock,
            stop=stop,
        )
        report.results.append(result)
        log.info(
            "partition_synced",
            stream=result.stream,
            partition=result.partition,
            status=result.status,
            windows=result.windows,
            rows=result.rows,
            rejects=result.rejects,
            requests=result.requests,
            cursor=result.cursor,
            seconds=round(result.seconds, 3),
        )
