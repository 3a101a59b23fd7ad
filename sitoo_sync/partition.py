"""One partition's tick: window → normalize → load with cursor, until the present.

The next window is fetched on a helper thread while the current one is normalized and
loaded (a queue of one). Fetching never depends on what was loaded, only on the last page,
so this changes speed and nothing else. Every write is the `PartitionWriter`'s (commit.py):
consecutive windows are committed together, rows, rejects and the last window's cursor in
one transaction, up to SITOO_LOAD_BATCH_ROWS / _SECONDS. What the partition holds meanwhile,
its pages fetched ahead and its batch of typed (Arrow) rows, is held in the tick's
`Buffer` (inflight.py), whose byte budget all partitions share. A crash at any instant
loses nothing: what was not committed is fetched again from the stored cursor.

A partition with nothing new costs one request and no write of its own: the records an
immutable stream re-reads in its overlap and has stored already are skipped, a window that
leaves nothing to load and does not move the cursor takes no turn, and the partition's
"ok" is handed to `Outcomes`, which writes the outcomes of all such partitions of the tick
in one transaction.

Not so after `sitoo-sync reset --since DAY`: what the partition stored after its cursor then
is what an older version (or a normalizer since fixed) wrote, and the reset is the way to
write it again. Until a tick of it reaches the present (`StoredCursors.resets`), a partition
loads every record it reads from its cursor on, stored or not; only the stored ones older
than its cursor (the overlap before the day, or what this reading loaded before a stop) are
skipped still.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime
from typing import Any, TypeVar

import pyarrow as pa

from sitoo_sync.api.client import SitooClient
from sitoo_sync.commit import (
    Batch,
    GroupWriter,
    Outcomes,
    PartitionTakenOver,
    PartitionWriter,
    shown_cursor,
)
from sitoo_sync.errors import (
    DisabledStream,
    FatalApiError,
    RefusedEarlier,
    SitooSyncError,
    StopRequested,
)
from sitoo_sync.inflight import Buffer, ByteBudget
from sitoo_sync.log import get_logger
from sitoo_sync.normalize.columns import ARROW_TYPES
from sitoo_sync.normalize.personal import STAFF_NAMES, PersonalData
from sitoo_sync.normalize.tables import Kind, Table
from sitoo_sync.normalize.values import is_unix_time
from sitoo_sync.overlap import OverlapKeys
from sitoo_sync.results import PartitionResult
from sitoo_sync.settings import MAX_CONCURRENCY, Settings
from sitoo_sync.streams.base import Stream, items_of
from sitoo_sync.streams.cursors import CursorPages, Window, WindowContext
from sitoo_sync.turns import ANY_THREAD, Turns
from sitoo_sync.warehouse.base import Warehouse

log = get_logger(__name__)

T = TypeVar("T")

_DONE = object()
ANY_TIME = nullcontext()  # a partition running alone needs no request slot
_READ = object()  # sync_partition reads the stored cursor itself
NOT_FOUND = 404  # the API's answer for a resource it does not know (a deleted warehouse)
#: Key kinds whose raw JSON value is the stored value, and the Python type it has.
_KEY_TYPES: Mapping[Kind, type] = {Kind.TEXT: str, Kind.INT: int}


def personal_data(settings: Settings) -> PersonalData:
    """What normalizing does with personal columns (SITOO_PERSONAL_DATA and its key)."""
    return PersonalData(settings.personal_data, _hash_key(settings))


def staff_names(settings: Settings) -> PersonalData:
    """What normalizing does with staff names (SITOO_STAFF_NAMES, with the same key)."""
    return PersonalData(settings.staff_names, _hash_key(settings))


def _hash_key(settings: Settings) -> bytes:
    key = settings.personal_data_key
    return key.get_secret_value().encode() if key else b""


def utcnow() -> datetime:
    return datetime.now(UTC)


#: Threads that run `prefetch` producers, reused across partitions and ticks: starting a
#: thread per partition cost 4 ms of a 30 ms budget per register on a loaded 2-core host.
#: A producer runs while its partition does, so at most SITOO_CONCURRENCY run at once.
_PRODUCERS = ThreadPoolExecutor(2 * MAX_CONCURRENCY, thread_name_prefix="sitoo-prefetch")


def prefetch(
    source: Iterator[T],
    *,
    depth: int = 1,
    budget: ByteBudget | None = None,
    size: Callable[[T], int] = lambda _item: 0,
) -> Generator[T, None, None]:
    """Iterate `source` on a helper thread, at most `depth` items ahead of the consumer.

    With a `budget`, each item holds `size(item)` bytes of it (held by the producer before it
    made the item) until the consumer asks for the next one, or leaves.
    """
    box: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def offer(item: Any) -> bool:
        """Hand `item` over, unless the consumer has gone."""
        while not stop.is_set():
            try:
                box.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in source:
                cost = size(item) if budget is not None else 0
                handed = offer((item, cost))
                del item  # the consumer's now: not kept alive here while the next is made
                if not handed:
                    if budget is not None:
                        budget.release(cost)
                    return
            offer(_DONE)
        except BaseException as exc:  # handed to the consumer, raised there
            offer(exc)

    worker = _PRODUCERS.submit(produce)
    held = 0
    try:
        while True:
            got = box.get()
            if got is _DONE:
                return
            if isinstance(got, BaseException):
                raise got
            item, held = got
            del got
            yield item
            # Taken: the item's bytes go back to the budget, and no reference here keeps
            # them alive while the next item is awaited (the budget would not see them).
            del item
            if budget is not None:
                budget.release(held)
            held = 0
    finally:
        stop.set()
        wait([worker], timeout=5)
        if budget is not None:
            while not box.empty():  # handed over, never taken
                left = box.get_nowait()
                if isinstance(left, tuple):
                    held += left[1]
            budget.release(held)


def _split_values_from(
    client: SitooClient, settings: Settings, stream: Stream
) -> Callable[[str, list[Any]], Iterable[str]]:
    """Values to split a crowded window by: those on the page, and every partition the
    stream's `split_by` lists (e.g. every register of the configured sites)."""

    def values(field_name: str, page: list[Any]) -> Iterable[str]:
        seen = {  # only text values: a malformed one is the normalizer's to reject
            v
            for r in page
            if isinstance(r, Mapping) and isinstance(v := r.get(field_name), str) and v
        }
        listed: set[str] = set()
        if stream.split_by is not None:
            listed = set(
                stream.split_by.list_all(
                    client, settings.site_ids, stream=stream.name, concurrency=settings.concurrency
                )
            )
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


class PageHolds:
    """One partition's pages held in the tick's `Buffer`: from before each request (the
    buffer's estimate, waiting until it fits), grown to the page's real cost before it is
    parsed (waiting again), and claimed by the window they make, which gives them back
    once the partition has taken it (`PartitionWriter.take`: normalized, and committed
    when it filled the batch)."""

    def __init__(self, buffer: Buffer | None, stop: threading.Event | None) -> None:
        self.buffer = buffer
        self.stop = stop
        self.unclaimed = 0

    def fetch(self, request: Callable[[Callable[[int], None] | None], Any]) -> Any:
        """Run `request(on_body)` (→ the decoded body) under a hold; the client calls
        `on_body(wire_bytes)` once the page is in, before parsing it."""
        if self.buffer is None:
            return request(None)
        budget = self.buffer.pages
        held = self.buffer.page_estimate()
        if not budget.acquire(held, self.stop):
            budget.add(held)  # stopping: the last request goes without waiting

        def arrived(wire: int) -> None:
            nonlocal held
            cost = Buffer.page_cost(wire)
            budget.grow(held, cost, self.stop)
            held = cost

        try:
            body = request(arrived)
        except BaseException:
            budget.release(held)
            raise
        self.unclaimed += held
        return body

    def claim(self, _window: Any) -> int:
        """The bytes held by the pages fetched since the last window: this window's."""
        held, self.unclaimed = self.unclaimed, 0
        return held

    def drop(self) -> None:
        """Give back pages no window claimed (the partition ended mid-window)."""
        if self.buffer is not None and self.unclaimed:
            self.buffer.pages.release(self.unclaimed)
        self.unclaimed = 0


def _fetchers(
    client: SitooClient,
    stream: Stream,
    partition: str,
    slots: AbstractContextManager[Any],
    holds: PageHolds,
) -> tuple[
    Callable[[Mapping[str, str | int]], list[Any]], Callable[[Mapping[str, str | int]], Any]
]:
    """GET the stream's path for this partition, each request holding one of the `slots`
    and its page held in the buffer: (records only, whole response)."""
    path = stream.path_for(partition)

    def fetch_raw(params: Mapping[str, str | int]) -> Any:
        def request(on_body: Callable[[int], None] | None) -> Any:
            return client.get_json(
                stream.api,
                path,
                params,
                stream=stream.name,
                partition=partition,
                on_body=on_body,
                decode=stream.decode,
            )

        # The slot first: a fetcher waiting for one holds no bytes, so bytes are only ever
        # waited for by those that can use them (see inflight.ByteBudget.grow).
        with slots:
            return holds.fetch(request)

    def fetch(params: Mapping[str, str | int]) -> list[Any]:
        try:
            return items_of(fetch_raw(params))
        except ValueError as exc:
            raise SitooSyncError(
                str(exc), stream=stream.name, partition=partition, url=client.url(stream.api, path)
            ) from exc

    return fetch, fetch_raw


def _window_context(
    settings: Settings,
    client: SitooClient,
    stream: Stream,
    partition: str,
    *,
    now: datetime,
    slots: AbstractContextManager[Any],
    holds: PageHolds,
) -> WindowContext:
    """What the stream's cursor strategy may use during this tick."""
    fetch, fetch_raw = _fetchers(client, stream, partition, slots, holds)

    def get(path: str) -> Any:
        with slots:
            return client.get_json(stream.api, path, stream=stream.name, partition=partition)

    return WindowContext(
        fetch=fetch,
        fetch_raw=fetch_raw,
        get=get,
        partition=partition,
        key=stream.key,
        overlap=settings.overlap_seconds,
        split_values=_split_values_from(client, settings, stream),
        now=now,
    )


def _key_of(record: Any, names: tuple[str, ...], types: tuple[type, ...]) -> tuple[Any, ...] | None:
    """A raw record's key as stored, or None when it is malformed (normalizing rejects it)."""
    if not isinstance(record, Mapping):
        return None
    key = tuple(record.get(n) for n in names)
    for value, kind in zip(key, types, strict=True):
        if type(value) is not kind or value == "":
            return None
    return key


def _unstored(
    warehouse: Warehouse, parent: Table, records: list[Any], known: OverlapKeys | None = None
) -> list[Any]:
    """`records` without those whose key `parent` holds already: looked up in the tick's
    `known` keys when they cover the records' times, else one read (no turn)."""
    kinds = [parent.column(c).kind for c in parent.key]
    if not records or any(k not in _KEY_TYPES for k in kinds):
        return records
    types = tuple(_KEY_TYPES[k] for k in kinds)
    keys = [_key_of(r, parent.key, types) for r in records]
    if all(k is None for k in keys):
        return records
    found = known.stored(records) if known is not None else None
    if found is None:
        found = _stored_keys(warehouse, parent, kinds, keys)
    if not found:
        return records
    return [r for r, k in zip(records, keys, strict=True) if k is None or k not in found]


def _stored_keys(
    warehouse: Warehouse, parent: Table, kinds: list[Kind], keys: list[tuple[Any, ...] | None]
) -> set[tuple[Any, ...]]:
    """Which of one partition's `keys` (None: malformed) `parent` holds, asked of the warehouse."""
    valid = sorted({k for k in keys if k is not None})
    columns = list(zip(*valid, strict=True))
    asked = pa.table(
        {
            c: pa.array(list(v), ARROW_TYPES[k])
            for c, v, k in zip(parent.key, columns, kinds, strict=True)
        }
    )
    return warehouse.stored_keys(parent, asked)


def _times_of(records: list[Any], field: str) -> list[Any]:
    """Each record's `field` as the cursor reads it (`record_times`), one per record (anything
    but Unix seconds where it has none)."""
    values_of = getattr(type(records[0]), "values_of", None) if records else None
    values = values_of(records, field) if values_of is not None else None
    if values is not None:
        return list(values)
    return [r.get(field) if isinstance(r, Mapping) else None for r in records]


class Rereads:
    """The records of an immutable stream's windows that one partition's tick skips: those
    it reads again and has stored.

    They sit at the start of a tick (the overlap): once a window brings something new, the
    rest load as they come (upserts make re-reads harmless). A partition reading again a
    period `sitoo-sync reset` moved its cursor back over (`rereading`) skips only the stored
    records older than its cursor (the overlap before the period, or what this reading of it
    loaded before a stop or failure: both as this version writes them) and loads every other
    one, stored or not: a stream paged by time (journals) reads from the overlap before its
    cursor; a keyset's walk lies in the period from the reset's first id on, and skips none.
    """

    def __init__(
        self,
        warehouse: Warehouse,
        stream: Stream,
        stored: str | None,
        *,
        rereading: bool,
        known: OverlapKeys | None,
    ) -> None:
        self.warehouse = warehouse
        self.stream = stream
        self.known = known
        self.on = stream.immutable and stored is not None
        #: Reading a reset's period again: the cursor's time, before which stored ones skip.
        self.before: int | None = None
        if self.on and rereading:
            timed = isinstance(stream.cursor, CursorPages) and str(stored).isdigit()
            self.before = int(str(stored)) if timed else None
            self.on = self.before is not None

    def kept(self, records: list[Any]) -> list[Any]:
        """`records` (a window's, in order) less those skipped."""
        if not self.on:
            return records
        if self.before is None:
            records = _unstored(self.warehouse, self.stream.parent, records, self.known)
            self.on = not records
            return records
        return self._kept_before(records, self.before)

    def _kept_before(self, records: list[Any], before: int) -> list[Any]:
        """`records` less the stored ones older than `before`; the check goes on only while
        every record of a window is older."""
        assert isinstance(self.stream.cursor, CursorPages)
        times = _times_of(records, self.stream.cursor.time_field)
        older = [r for r, t in zip(records, times, strict=True) if is_unix_time(t) and t < before]
        self.on = bool(older) and len(older) == len(records)
        if not older:
            return records
        kept = _unstored(self.warehouse, self.stream.parent, older, self.known)
        if len(kept) == len(older):
            return records
        skipped = {id(r) for r in older} - {id(r) for r in kept}
        return [r for r in records if id(r) not in skipped]


def sync_partition(
    settings: Settings,
    warehouse: Warehouse,
    client: SitooClient,
    stream: Stream,
    partition: str,
    *,
    on_window: Callable[[PartitionResult], None] | None = None,
    clock: Callable[[], datetime] = utcnow,
    stop: threading.Event | None = None,
    turns: Turns = ANY_THREAD,
    stored: Any = _READ,
    stored_windows: int | None = None,
    outcomes: Outcomes | None = None,
    writer: GroupWriter | None = None,
    slots: AbstractContextManager[Any] = ANY_TIME,
    tick: Mapping[str, Any] | None = None,
    buffer: Buffer | None = None,
    known: OverlapKeys | None = None,
    finishing: Callable[[], None] | None = None,
    rereading: bool = False,
) -> PartitionResult:
    """Bring one (stream, partition) up to date; errors are caught and reported, not raised.

    Fetching runs freely; what comes after a page arrives (the re-read check,
    normalizing, loading, the outcome) runs on `turns`, which concurrent partitions share:
    see `sync._load_turn`.
    `stored` is the partition's cursor when the caller read it already (None: never loaded),
    and `stored_windows` the `windows_loaded` read with it (`Claim`): its commits are fenced
    with both (None: with the cursor alone). With `outcomes`, a partition that loads nothing
    leaves its "ok" there; with `writer`, its batches commit in groups with other
    partitions'. Each request holds one of the `slots` (SITOO_CONCURRENCY of them, shared by
    the tick's partitions). `tick` is the stream tick's context (its run id, the stream's
    `tick_context`), given to the normalizer with the partition's own. `buffer` bounds the
    bytes in flight: the pages fetched ahead and the rows batched, shared with the tick's
    other partitions. `known` holds the keys the tick's re-reads will meet, read once for
    all partitions (overlap.py). `finishing` is called when everything is fetched and
    normalized and only the last commit is left, which may wait for a group: the tick starts
    another partition meanwhile.
    `rereading`: the partition reads again a period `sitoo-sync reset` moved its cursor back
    over (`StoredCursors.resets`, read with `stored`): what it reads from its cursor on loads
    whole, stored or not.
    A `stop` between windows commits what was loaded, with its cursor, and no outcome: short
    of the present, the partition has not succeeded (`/healthz` and `status` would call a
    backfill cut short fresh).
    """
    result = PartitionResult(stream=stream.name, partition=partition)
    started = time.monotonic()
    requests_before = client.partition_requests[(stream.name, partition)]
    if stored is _READ:
        cursors = warehouse.get_cursors(stream.name)
        stored, rereading = cursors.get(partition), partition in cursors.resets
        stored_windows = cursors.windows.get(partition, 0)
    result.cursor = stored
    now = clock()
    holds = PageHolds(buffer, stop)
    windows: Iterator[Window] = stream.cursor.windows(
        _window_context(settings, client, stream, partition, now=now, slots=slots, holds=holds),
        stored,
    )
    batch = Batch(
        max_rows=settings.load_batch_rows,
        max_seconds=settings.load_batch_seconds,
        budget=buffer.rows if buffer is not None else None,
    )
    context = {
        **(tick or {}),
        "partition": partition,
        "now": now,
        "personal_data": personal_data(settings),
        STAFF_NAMES: staff_names(settings),
    }
    loader = PartitionWriter(
        warehouse,
        stream,
        partition,
        batch,
        result,
        on_window,
        turns,
        context,
        stored,
        writer,
        new=stream.immutable and not rereading,
        rereading=rereading,
        committed_windows=stored_windows,
    )
    rereads = Rereads(warehouse, stream, stored, rereading=rereading, known=known)
    cut = False  # a stop ended it between windows, short of the present
    try:
        for window in prefetch(
            windows,
            budget=buffer.pages if buffer is not None else None,
            size=holds.claim,
        ):
            records = rereads.kept(window.records)
            loader.take(window, records)
            # Taken, its holds given back: the page must not outlive them in this frame
            # while the next one is fetched (each partition at work would keep one more
            # page than the buffer counts).
            del window, records
            if stop is not None and stop.is_set():
                log.info("stop_honoured", stream=stream.name, partition=partition)
                cut = True
                break
        if cut:  # what it loaded commits with its cursor; its outcome is not a success
            loader.commit()
            result.stopped = True
        else:
            stopped = stop is not None and stop.is_set()
            listed = stream.full_refresh or loader.swept
            mark = bool(listed and stream.scope_of(partition) is not None and not stopped)
            if finishing is not None:
                finishing()
            loader.finish(outcomes, mark=mark, now=now)
    except SitooSyncError as exc:
        _cut_short(stream, partition, loader, result, exc)
    except PartitionTakenOver as taken:
        _taken_over(result, taken)
    finally:
        batch.clear()  # what a failed partition never committed gives its bytes back
        holds.drop()
    for note, count in result.notes.items():  # the tick warns once per stream (sync.py)
        log.info("entries_noted", stream=stream.name, partition=partition, note=note, count=count)
    result.requests = client.partition_requests[(stream.name, partition)] - requests_before
    result.seconds = time.monotonic() - started
    return result


#: Why a partition stopped whose commit was fenced off (`PartitionTakenOver`).
TAKEN_OVER = (
    "another process moved its cursor since this one claimed it (the server ended the "
    "session its lock lived on, and freed the lock): the batch was not written, and "
    "that process syncs it on"
)


def _taken_over(result: PartitionResult, taken: PartitionTakenOver) -> None:
    """The partition's commit was fenced off: it stops, with one warning, what it committed
    before kept, its outcome left to the process that took it over. Not a failure: no
    window is lost or loaded twice, and the other process goes on from its own cursor."""
    result.stopped = True
    result.cursor = taken.cursor
    log.warning(
        "partition_taken_over",
        stream=taken.stream,
        partition=taken.partition,
        cursor=shown_cursor(taken.cursor),
        reason=TAKEN_OVER,
    )


def _cut_short(
    stream: Stream,
    partition: str,
    loader: PartitionWriter,
    result: PartitionResult,
    exc: SitooSyncError,
) -> None:
    """`_ended_by` `exc`, unless its last commit, too, is fenced off (`_taken_over`)."""
    try:
        _ended_by(stream, partition, loader, result, exc)
    except PartitionTakenOver as taken:
        _taken_over(result, taken)


def _ended_by(
    stream: Stream,
    partition: str,
    loader: PartitionWriter,
    result: PartitionResult,
    exc: SitooSyncError,
) -> None:
    """How a partition ends that could not go on: what it fetched before commits with its
    cursor either way; then, by why, its outcome.

    - The stop cut a failing request's retries (`StopRequested`): as at a stop between
      windows, the partition has not failed.
    - The account has the stream switched off: disabled, with why.
    - A 404: failed or gone, which the tick decides once its listing is read, and records
      (sync._not_found): a partition Sitoo deleted never reads as failed meanwhile.
    - Anything else: failed, with the error (logged at info when the request was not sent
      for a refusal of the credentials logged already: `RefusedEarlier`).
    """
    if isinstance(exc, StopRequested):
        log.info("stop_honoured", stream=stream.name, partition=partition, during=exc.message)
        loader.commit()
    elif isinstance(exc, DisabledStream):
        result.status = "disabled"
        result.error = exc.message
        log.info("stream_disabled", stream=stream.name, partition=partition, reason=exc.message)
        loader.stopped("disabled", exc.message)
    else:
        result.status = "failed"
        result.error = str(exc)
        result.not_found = isinstance(exc, FatalApiError) and exc.status == NOT_FOUND
        if result.not_found:  # said now: the commit below may fail, and the tick with it
            log.info("partition_not_found", stream=stream.name, partition=partition, url=exc.url)
            loader.commit()
            return
        # A request not sent for a refusal said already is no news: one line for a
        # tick's 300 partitions, not 300 (its `partition_synced` line says it failed).
        say = log.info if isinstance(exc, RefusedEarlier) else log.error
        say(
            "partition_failed",
            error=exc.message,
            **{"stream": stream.name, **exc.context(), "partition": partition},
        )
        loader.stopped("failed", str(exc))
