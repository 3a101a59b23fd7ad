"""One tick: every enabled stream, each of its partitions brought up to date.

A partition (the account, a site, a register ...) is synced by `partition.sync_partition`.
The partitions of a stream declared `concurrent` (registers, warehouses) run on one pool per
tick, with at most SITOO_CONCURRENCY requests in flight; their batches commit in groups
through one `GroupWriter`, each with its own cursor. The rest run one after another. A
failing partition fails alone and is reported; a failing warehouse ends the tick. On a
server target, processes syncing the same stream split its partitions, each synced under a
lock of its own (`_Claims`).
"""

from __future__ import annotations

import functools
import random
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor, wait
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

from sitoo_sync.api.client import SitooClient
from sitoo_sync.collector import frozen_before
from sitoo_sync.commit import AllMissing, GroupWriter, Outcomes, all_missing, shown_cursor
from sitoo_sync.dictionary import all_tables
from sitoo_sync.errors import SitooSyncError, StopRequested, WarehouseError, first_line
from sitoo_sync.inflight import Buffer
from sitoo_sync.listing_ahead import ListingAhead
from sitoo_sync.log import get_logger
from sitoo_sync.overlap import OverlapKeys
from sitoo_sync.partition import ANY_TIME, sync_partition, utcnow
from sitoo_sync.results import PartitionResult
from sitoo_sync.runs import record_run
from sitoo_sync.settings import Settings
from sitoo_sync.streams.base import Stream
from sitoo_sync.streams.cursors import CursorPages, epoch_time, json_cursor_time
from sitoo_sync.streams.partitions import SITES
from sitoo_sync.turns import ANY_THREAD, Gathered, Turns, Worker
from sitoo_sync.views import VIEWS
from sitoo_sync.warehouse.base import (
    SYSTEM_TABLES,
    Claim,
    PartitionLocks,
    SerializedWarehouse,
    Warehouse,
    at_work,
    tick_threads,
)

log = get_logger(__name__)


#: The most new partitions one `partitions_appeared` event names (`count` says how many).
PARTITIONS_NAMED = 20


@dataclass
class RunReport:
    """The outcome of `run_once`: one result per partition."""

    results: list[PartitionResult] = field(default_factory=list)
    #: Partitions left to other processes, by (stream, reason): see `HELD` and `DONE`.
    skipped: Counter[tuple[str, str]] = field(default_factory=Counter)
    #: Requests per stream, as its `sync_runs` row counts them (listings included, which
    #: no partition's result counts).
    requests: Counter[str] = field(default_factory=Counter)

    def stream_requests(self, stream: str) -> int:
        """The stream's requests: its run's count, else its partitions' (no run recorded)."""
        if stream in self.requests:
            return self.requests[stream]
        return sum(r.requests for r in self.results if r.stream == stream)

    @property
    def ok(self) -> bool:
        """True when no partition failed (disabled streams are not failures)."""
        return all(r.status != "failed" for r in self.results)

    @property
    def rows(self) -> int:
        """Rows loaded across every table."""
        return sum(r.rows for r in self.results)

    def summary(self) -> list[str]:
        """One line per stream (partitions added up), plus one per failed partition."""
        from sitoo_sync.streams import STREAMS

        lines: list[str] = []
        streams: dict[str, list[Any]] = {}
        for r in self.results:
            streams.setdefault(r.stream, []).append(r)
        for stream, _reason in self.skipped:
            streams.setdefault(stream, [])
        for stream, parts in streams.items():
            skipped = ", ".join(
                f"{count} skipped ({reason})"
                for (name, reason), count in sorted(self.skipped.items())
                if name == stream
            )
            if not parts:
                lines.append(f"{stream}: {skipped}")
                continue
            notes: dict[str, int] = {}
            for r in parts:
                for note, count in r.notes.items():
                    notes[note] = notes.get(note, 0) + count
            known = STREAMS.get(stream)
            kind = known.partitions.kind if known else "partition"
            where = f"{kind} {parts[0].partition}" if len(parts) == 1 else f"{len(parts)} {kind}s"
            counts = Counter(r.status for r in parts)
            # One status alone; mixed ones counted ("1 failed, 1 ok", not "failed, ok").
            statuses = (
                [next(iter(counts))]
                if len(counts) == 1
                else [f"{counts[s]} {s}" for s in sorted(counts)]
            )
            line = (
                f"{stream} ({where}): {', '.join(statuses)}, "
                f"{_plural(sum(r.windows for r in parts), 'window')}, "
                f"{_plural(sum(r.rows for r in parts), 'row')} loaded (child rows included), "
                f"{_plural(sum(r.rejects for r in parts), 'reject')}, "
                f"{_plural(self.stream_requests(stream), 'request')}"
            )
            if notes:
                line += "; " + ", ".join(
                    f"{note}: {count}" for note, count in sorted(notes.items())
                )
            if skipped:
                line += f"; {skipped}"
            if len(parts) == 1 and parts[0].error:
                line += f" -- {parts[0].error}"
            lines.append(line)
            if len(parts) > 1:
                lines += [f"  {r.partition}: {r.status} -- {r.error}" for r in parts if r.error]
        return lines


#: Why a partition was left to another process: it held the partition's lock, or it
#: moved the partition's cursor since this tick read it (it synced the partition meanwhile).
HELD = "held by another process"
DONE = "synced by another process"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def run_once(
    settings: Settings,
    warehouse: Warehouse,
    client: SitooClient,
    streams: Sequence[Stream],
    *,
    on_window: Callable[[PartitionResult], None] | None = None,
    clock: Callable[[], datetime] = utcnow,
    stop: threading.Event | None = None,
) -> RunReport:
    """One tick of every stream given; the warehouse is closed at the end either way.

    What was alive before the tick is not searched for cycles during it (collector.py)."""
    report = RunReport()
    try:
        with frozen_before():
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
        reason = first_line(exc)
        log.error("warehouse_failed", target=type(warehouse).__name__, error=reason)
        log.debug("warehouse_failed_detail", error=str(exc))  # the statement, for a bug report
        raise WarehouseError(f"the warehouse failed: {reason}") from exc
    finally:
        warehouse.close()
    return report


def _partitions(
    settings: Settings,
    warehouse: Warehouse,
    client: SitooClient,
    stream: Stream,
    *,
    listed_this_tick: bool = False,
    start: Callable[[str], object] | None = None,
    pool: Executor | None = None,
    synced: Iterable[str] = (),
    slots: AbstractContextManager[Any] = ANY_TIME,
    order: Callable[[Iterable[str]], list[str]] = sorted,
    ahead: ListingAhead | None = None,
    named_sites: frozenset[int] = frozenset(),
) -> Partitions:
    """The partitions of a stream for this tick (streams/partitions.py declares them).

    Partitions that follow from the settings are those. Listed ones are what the listing's
    table holds (`stored`), what the stream has a cursor for (`synced`) and what the
    listing shows now; when the stream that writes the table listed every site in this tick
    (`listed_this_tick`), the table is that listing. With a `pool`, each site is listed as
    a task of its own and the known partitions are `start`ed meanwhile, so the listing's
    requests overlap theirs; new ones start as the page that lists them arrives. With
    `named_sites` (SITOO_SITE_IDS as set), a known partition of another site (a warehouse's
    `2/5`, Partitioning.site_of; a register its table lists under that site,
    Partitioning.stored_site) is not synced: the site was taken out of the settings.
    """
    kind = stream.partitions
    configured = kind.values_from_settings(settings)
    if configured is not None:
        return Partitions(configured)
    # A partition of a site SITOO_SITE_IDS no longer names is left alone.
    known = kind.known(
        warehouse.distinct_values, warehouse.latest_values, synced=synced, sites=named_sites
    )
    begin = start or (lambda _partition: None)
    if listed_this_tick:
        for partition in order(known):
            begin(partition)
        return Partitions(sorted(known))
    if pool is not None:
        begun = set(known)
        begun_lock = threading.Lock()

        def list_site(site: int) -> list[str]:
            listed: list[str] = []
            read_ahead = None if ahead is None else ahead.pages(stream.name, site)
            pages = read_ahead or kind.list_site_pages(client, site, stream=stream.name)
            # One request at a time, as a partition's (a listing read ahead holds its slot).
            with slots if read_ahead is None else ANY_TIME:
                # A page's new partitions start as it arrives, not when the listing ends:
                # a first tick's registers wait one round trip, not one per page.
                for page in pages:
                    listed += page
                    with begun_lock:
                        new = [p for p in dict.fromkeys(page) if p not in begun]
                        begun.update(new)
                    for partition in order(new):
                        begin(partition)
            return listed

        sites = [pool.submit(list_site, site) for site in settings.site_ids]
        for partition in order(known):
            begin(partition)
        listed = {value for site in sites for value in site.result()}
    else:
        listed = set(
            kind.list_all(
                client, settings.site_ids, stream=stream.name, concurrency=settings.concurrency
            )
        )
    new = listed - known
    if new and known:  # named a few at a time: a chain may open hundreds of registers at once
        log.info(
            "partitions_appeared",
            stream=stream.name,
            kind=kind.kind,
            count=len(new),
            partitions=sorted(new)[:PARTITIONS_NAMED],
        )
    return Partitions(sorted(known | listed), unlisted=frozenset(known - listed))


class Partitions(NamedTuple):
    """A stream's partitions for this tick, and which of them its listing, read in full in
    this tick, no longer shows (None: no listing was read, or the table is the listing)."""

    names: list[str]
    unlisted: frozenset[str] | None = None


@dataclass
class _Claims:
    """The partitions of a stream this process syncs, when processes split them."""

    locks: PartitionLocks
    stream: str
    #: The cursors as this tick read them first: one that moved since was synced elsewhere.
    cursors: Mapping[str, str | None]
    report: RunReport
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def open(
        cls,
        warehouse: Warehouse,
        stream: Stream,
        cursors: Mapping[str, str | None],
        report: RunReport,
    ) -> _Claims | None:
        """Claims on `stream`'s partitions, or None when this process syncs them all: the
        target keeps no shared locks, or the stream is one partition, which cannot be split."""
        if stream.partitions.single:
            return None
        locks = warehouse.partition_locks(stream.name)
        return None if locks is None else cls(locks, stream.name, cursors, report)

    def run(
        self, partition: str, sync: Callable[[str, Claim], PartitionResult]
    ) -> PartitionResult | None:
        """`sync(partition, claim)` under the partition's lock, or None (skipped)."""
        claim = self.locks.try_acquire(partition)
        if claim is None:
            self._skip(partition, HELD)
            return None
        try:
            if claim.cursor != self.cursors.get(partition):
                self._skip(partition, DONE)
                return None
            return sync(partition, claim)
        finally:
            self.locks.release(partition)

    def _skip(self, partition: str, reason: str) -> None:
        log.info("partition_skipped", stream=self.stream, partition=partition, reason=reason)
        with self._lock:
            self.report.skipped[self.stream, reason] += 1


class _Permit:
    """One of a semaphore's permits, held from `with` until `give_back` or the block's end,
    whichever comes first."""

    def __init__(self, semaphore: threading.BoundedSemaphore) -> None:
        self._semaphore = semaphore
        self._held = False
        self._lock = threading.Lock()

    def __enter__(self) -> _Permit:
        self._semaphore.acquire()
        self._held = True
        return self

    def __exit__(self, *exc: object) -> None:
        self.give_back()

    def give_back(self) -> None:
        """Release the permit now (once; later calls do nothing)."""
        with self._lock:
            if self._held:
                self._held = False
                self._semaphore.release()


def _shuffled(partitions: Iterable[str]) -> list[str]:
    """`partitions` in a random order (each replica its own)."""
    order = sorted(partitions)
    random.shuffle(order)
    return order


def _cursor_at(stream: Stream, cursor: str | None, now: datetime) -> str | None:
    """The cursor as a time a log reader can read: an epoch cursor as ISO time, a day
    cursor as it is, and a JSON cursor (a keyset's, a modified feed's) as the time its
    strategy says it stands for, the one `status` shows and reckons the lag from. Only the
    log field: the stored cursor is what it was."""
    if cursor is not None and cursor.isdigit():
        at = epoch_time(cursor)  # out of range (milliseconds an older version stored): as is
        return cursor if at is None else at.isoformat()
    if cursor is None or not cursor.startswith("{"):
        return cursor  # a day
    at = json_cursor_time(stream.cursor, cursor, now)
    return None if at is None else at.isoformat()


def _log_result(stream: Stream, result: PartitionResult) -> None:
    log.info(
        "partition_synced",
        stream=result.stream,
        partition=result.partition,
        status="stopped" if result.stopped and result.status == "ok" else result.status,
        windows=result.windows,
        rows=result.rows,
        rejects=result.rejects,
        requests=result.requests,
        cursor=shown_cursor(result.cursor),
        cursor_at=_cursor_at(stream, result.cursor, datetime.now(UTC)),
        seconds=round(result.seconds, 3),
    )


def _load_turn(warehouse: Warehouse) -> Turns:
    """Where concurrent partitions normalize a page they fetched and load their batches.

    Pages of partitions started together arrive together. If all of them then shared the
    CPU (one GIL, here two cores, an in-process engine), all would finish late and
    together, and fetch their next pages together again: a convoy that leaves the network
    idle while the CPU works, and the CPU idle while the network waits. Taking turns makes
    the first page processed the first next request sent, so the requests of the pool
    spread out and CPU work overlaps waiting. The turns are two threads, one normalizing and
    one running transactions, that do that work for every partition (turns.py). A server
    that works in its own processes (PostgreSQL) takes turns only to write: each partition
    normalizes on its own thread, and the windows handed over while one is normalized go
    together in the next call (turns.Gathered: a 201-register backfill at concurrency 32
    took 2.4-3.2 s instead of 4.5-5.3 s with a call per window). Its writing thread keeps
    the partitions' threads free of connections, so they can be more than the server's
    connections allow (`tick_threads`).
    """
    if warehouse.concurrent_loads and not warehouse.in_process:
        return Turns(Gathered(), Worker())
    return Turns.workers()


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
    # One pool for the tick: its threads serve every stream, and hold no connection of the
    # target's (tick_threads). Its requests in flight are bounded by SITOO_CONCURRENCY
    # slots, not by its threads. At SITOO_CONCURRENCY=1 too: one request in flight, while
    # a register's page is normalized and committed the next register's request is on its
    # way (201 one-page registers at 100 ms: 22 s instead of 26 s, against a 20.4 s limit).
    pool: ThreadPoolExecutor | None = None
    slots = threading.BoundedSemaphore(settings.concurrency)
    # The sites and the first stream's listing are read while the warehouse gets ready.
    ahead = ListingAhead.start(settings, client, streams, slots=slots, stop=stop)
    buffer = Buffer(settings.buffer_mb)  # SITOO_BUFFER_MB: the tick's bytes in flight
    try:
        # An upgrade of the schema revision runs over every table this version declares,
        # whichever streams this tick syncs: the revision is recorded once for them all.
        warehouse.ensure_schema(
            [*SYSTEM_TABLES, *(t for s in streams for t in s.tables)], VIEWS, declared=all_tables()
        )
        named_sites = frozenset(settings.site_ids)  # empty: every site the account lists
        try:
            settings = ahead.settings(client)
        except StopRequested as exc:  # our own stop cut the sites' listing short: no failure
            log.info("stop_honoured", stream="*", during=exc.message)
            return
        except SitooSyncError as exc:  # no site known: every stream fails this tick, visibly
            log.error("sites_unlisted", error=str(exc))
            for stream in streams:
                report.results.append(
                    PartitionResult(
                        stream.name, "*", status="failed", error=f"listing sites: {exc}"
                    )
                )
                warehouse.record_outcome(stream.name, "*", "failed", f"listing sites: {exc}")
            return
        for stream in streams:
            if stop is not None and stop.is_set():
                break
            concurrent = stream.partitions.concurrent
            if pool is None and concurrent:
                threads = tick_threads(settings.concurrency)
                pool = ThreadPoolExecutor(threads, thread_name_prefix="sitoo")
            with record_run(
                warehouse,
                client,
                stream,
                report.results,
                report.skipped,
                stop=stop,
                began=ahead.began(stream.name),
                requests=report.requests,
                concurrency=settings.concurrency,
            ) as run:
                _run_stream(
                    settings,
                    warehouse,
                    client,
                    stream,
                    report=report,
                    on_window=on_window,
                    clock=clock,
                    stop=stop,
                    pool=pool if concurrent else None,
                    slots=slots,
                    tick=run.context,
                    buffer=buffer,
                    ahead=ahead,
                    named_sites=named_sites,
                )
    finally:
        ahead.close()
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        log.info("buffer_peak", **buffer.summary())


def _overlap_keys(
    warehouse: Warehouse, stream: Stream, cursors: Mapping[str, str | None], overlap: int
) -> OverlapKeys | None:
    """The keys an immutable stream paged by time re-reads this tick, read once for all of
    its partitions (overlap.py); None for any other stream."""
    cursor = stream.cursor
    if not stream.immutable or not isinstance(cursor, CursorPages):
        return None
    if cursor.time_field not in stream.parent.column_names:
        return None
    return OverlapKeys.for_tick(warehouse, stream.parent, cursor.time_field, cursors, overlap)


def _run_stream(
    settings: Settings,
    warehouse: Warehouse,
    client: SitooClient,
    stream: Stream,
    *,
    report: RunReport,
    on_window: Callable[[PartitionResult], None] | None,
    clock: Callable[[], datetime],
    stop: threading.Event | None,
    pool: ThreadPoolExecutor | None,
    slots: threading.BoundedSemaphore,
    tick: Mapping[str, Any] | None = None,
    buffer: Buffer | None = None,
    ahead: ListingAhead | None = None,
    named_sites: frozenset[int] = frozenset(),
) -> None:
    """One stream's partitions: on `pool` (registers, concurrently) or one after another.

    Each pool thread fetches on its own; the windows of partitions that arrive together are
    normalized together, and every transaction runs on the tick's writing thread (see
    _load_turn); a target that must not be written from two threads at all is serialized
    whole. Batches commit in groups through the stream's `GroupWriter`. The cursors are
    read in one query first, and the partitions that load nothing have their outcomes
    written together at the end (`Outcomes`).

    When processes split the stream's partitions (`Warehouse.partition_locks`), each takes them
    in an order of its own (so replicas rarely reach for the same one) and syncs each under
    its lock. A partition another process holds is skipped, and so is one whose cursor moved
    since this tick read the cursors (another process synced it meanwhile; what it left
    undone, if it died, the next tick loads).
    """
    stream = stream.configured(settings.stream_options)
    shared = warehouse
    turns = ANY_THREAD
    if pool is not None:
        concurrent = warehouse.capabilities.concurrent_loads
        shared = warehouse if concurrent else SerializedWarehouse(warehouse)
        turns = _load_turn(warehouse)
    cursors = warehouse.get_cursors(stream.name)
    known = _overlap_keys(shared, stream, cursors, settings.overlap_seconds)
    outcomes = Outcomes(stream.name, cursors.resets)
    writer = None
    if pool is not None:
        writer = GroupWriter(
            shared,
            stream,
            max_rows=settings.load_batch_rows,
            write=turns.write,
            new=stream.immutable,
        )

    claims = _Claims.open(warehouse, stream, cursors, report)
    # Partitions at work at once; the pool's further threads take the next partition while
    # one only waits for its last commit (`tick_threads`).
    working = threading.BoundedSemaphore(at_work(settings.concurrency))

    def one(partition: str) -> PartitionResult | None:
        if stop is not None and stop.is_set():
            return None
        if pool is None:
            return claimed(partition, None)
        with _Permit(working) as permit:
            return claimed(partition, permit.give_back)

    def claimed(partition: str, finishing: Callable[[], None] | None) -> PartitionResult | None:
        synced = functools.partial(sync, finishing=finishing)
        if claims is None:
            return synced(partition, cursors.claim(partition))
        return claims.run(partition, synced)

    def sync(
        partition: str, claim: Claim, finishing: Callable[[], None] | None = None
    ) -> PartitionResult:
        return sync_partition(
            settings,
            shared,
            client,
            stream,
            partition,
            on_window=on_window,
            clock=clock,
            stop=stop,
            turns=turns,
            stored=claim.cursor,
            stored_windows=claim.windows,
            outcomes=outcomes,
            writer=writer,
            slots=slots if pool is not None else ANY_TIME,
            tick=tick,
            buffer=buffer,
            known=known,
            finishing=finishing,
            rereading=partition in cursors.resets,
        )

    started: dict[str, Future[PartitionResult | None]] = {}

    def start(partition: str) -> None:
        if pool is not None and partition not in started:
            started[partition] = pool.submit(one, partition)

    try:
        lister = stream.partitions.listed_by
        listing = [r for r in report.results if lister is not None and r.stream == lister]
        partitions, unlisted = _partitions(
            settings,
            warehouse,
            client,
            stream,
            listed_this_tick=len(listing) == len(settings.site_ids)
            and all(r.status == "ok" for r in listing),
            start=start,
            pool=pool,
            slots=slots,
            synced=[p for p, cursor in cursors.items() if cursor is not None],
            order=sorted if claims is None else _shuffled,
            ahead=ahead,
            named_sites=named_sites,
        )
    except SitooSyncError as exc:  # e.g. the register listing failed: the others go on
        _unlisted(stream, exc, report, shared)
        # Registers started before the listing failed still finish; none is called gone.
        partitions, unlisted = [], None
    try:
        results = _gathered(stream, started, partitions, one)
    finally:
        turns.close()
        if claims is not None:
            claims.locks.close()
    done = _not_found(
        stream,
        results,
        unlisted,
        outcomes,
        stopped=stop is not None and stop.is_set(),
        clock=clock,
    )
    if not named_sites:
        done += _sites_delisted(stream, cursors, partitions, outcomes, clock)
    outcomes.flush(shared)
    _report(report, stream, done)


def _unlisted(stream: Stream, exc: SitooSyncError, report: RunReport, shared: Warehouse) -> None:
    """The stream's partitions could not be listed: failed as partition * (`status` shows
    it so even before any partition was ever known), unless our own stop cut the listing's
    retries short, which is a stop, not a failure."""
    if isinstance(exc, StopRequested):
        log.info("stop_honoured", stream=stream.name, partition="*", during=exc.message)
        return
    log.error("partitions_failed", stream=stream.name, error=str(exc))
    report.results.append(PartitionResult(stream.name, "*", status="failed", error=str(exc)))
    shared.record_outcome(stream.name, "*", "failed", str(exc))


def _gathered(
    stream: Stream,
    started: Mapping[str, Future[PartitionResult | None]],
    partitions: Sequence[str],
    one: Callable[[str], PartitionResult | None],
) -> list[PartitionResult | None]:
    """Every partition's result: those started on the pool once each has ended, then the
    others run here, in turn. When one raised (the warehouse failed), the tick dies with
    it, but only after every started one has ended, and a 404 met before is still said
    (as failed: no listing decides anything now)."""
    results: list[PartitionResult | None] = []
    try:
        wait(started.values())
        results += [started[p].result() for p in sorted(started) if not started[p].exception()]
        for raised in (started[p].exception() for p in sorted(started)):
            if raised is not None:
                raise raised
        for partition in partitions:
            if partition not in started:
                results.append(one(partition))
    except BaseException:
        _not_found(stream, results, None, Outcomes(stream.name), stopped=True)
        raise
    return results


#: Why a partition is gone (sync_state.last_status_detail, `status`).
GONE = "the API no longer knows it (404) and its listing no longer shows it"


def _not_found(
    stream: Stream,
    results: Iterable[PartitionResult | None],
    unlisted: frozenset[str] | None,
    outcomes: Outcomes,
    *,
    stopped: bool,
    clock: Callable[[], datetime] = utcnow,
) -> list[PartitionResult]:
    """The outcome of each partition the API answered 404 for, decided once the tick's
    listing is read: gone when that full listing no longer shows it either (a warehouse
    deleted in Sitoo), else failed. Gone is not a failure: the tick is ok, `status` does
    not judge it, its rows and cursor stay, and it is asked for again next tick (one
    request), so one listed again syncs on. A stopped tick's listing may be cut short, so
    it calls nothing gone. Returns the results of the partitions that ran (None: left to
    another process).

    A gone partition's rows are no longer listed: where its stream marks rows a listing
    no longer shows (it has a scope for the partition: a warehouse's stock), every row of
    it gets `missing_since` (`clock()`), with its outcome (`Outcomes.flush`); one that
    already has a mark keeps it. Listed again, its rows lose the marks as the stream's
    listings read them again (`mark_missing`, upserts). A stream without a scope (an
    immutable journal) keeps its rows as they are."""
    done = [r for r in results if r is not None]
    for result in done:
        if result.status != "failed" or not result.not_found:
            continue
        missing: AllMissing | None = None
        if not stopped and result.partition in (unlisted or ()):
            result.status = "gone"
            result.error = GONE
            log.warning("partition_gone", stream=stream.name, partition=result.partition)
            missing = all_missing(stream, result.partition, clock())
        else:
            log.error(
                "partition_failed",
                stream=stream.name,
                partition=result.partition,
                error=result.error,
            )
        outcomes.add(result.partition, result.status, result.error, missing=missing)
    gone = [r for r in done if r.status == "gone"]
    if gone and all(r.status == "gone" for r in done):  # not one it knew is there any more
        log.warning(
            "partitions_all_gone",
            stream=stream.name,
            count=len(gone),
            hint="if Sitoo did not delete them all, check SITOO_API_ID: another account?",
        )
    return done


#: Why a site's partition is gone (sync_state.last_status_detail, `status`).
SITE_GONE = "the account's site listing (/sites.json) no longer shows this site"


def _sites_delisted(
    stream: Stream,
    cursors: Mapping[str, str | None],
    partitions: Iterable[str],
    outcomes: Outcomes,
    clock: Callable[[], datetime],
) -> list[PartitionResult]:
    """With SITOO_SITE_IDS unset, a stream of one partition a site (its stock of products,
    its registers, ...) syncs the sites `/sites.json` lists in this tick. A site it synced
    before that the listing no longer shows (deleted in Sitoo, or no longer visible to
    these credentials) is gone (`SITE_GONE`), not silently left behind: where the stream
    marks rows a listing no longer shows, every row of that site gets `missing_since` with
    the outcome (`all_missing`), as a gone partition's do (`_not_found`). Listed again, it
    syncs on, and its rows lose the marks as its listings read them again."""
    listed = set(partitions)
    if stream.partitions is not SITES or not listed:  # (no site at all: said by the listing)
        return []
    delisted = sorted(p for p in cursors if p != "*" and p not in listed)
    results = []
    for partition in delisted:
        log.warning("partition_gone", stream=stream.name, partition=partition, reason=SITE_GONE)
        missing = all_missing(stream, partition, clock())
        outcomes.add(partition, "gone", SITE_GONE, missing=missing)
        results.append(PartitionResult(stream.name, partition, status="gone", error=SITE_GONE))
    return results


def _report(report: RunReport, stream: Stream, results: Sequence[PartitionResult]) -> None:
    """The stream's partitions' results into the tick's report and the log, and one warning
    per note of the tick (e.g. an entry type nobody documented) with how many entries and
    partitions it concerns: a 300-register backfill says it once, not 300 times (each
    partition's count is logged at info)."""
    entries: Counter[str] = Counter()
    partitions: Counter[str] = Counter()
    for result in results:
        report.results.append(result)
        _log_result(stream, result)
        entries.update(result.notes)
        partitions.update(result.notes.keys())
    for note, count in sorted(entries.items()):
        log.warning(
            "entries_noted", stream=stream.name, note=note, count=count, partitions=partitions[note]
        )
