"""`Keyset`: walk an endpoint by an ascending id (`orderidfrom`, `sort=orderid`), the REST v2
orders and warehouse transactions (fact sheet sections 2.9, 6.5).

Ids are given when the backend stores a record, so a record that arrives late (an offline
register's sale with an old `orderdate`) still gets a higher id than everything before it:
a cursor on the id misses nothing that a cursor on the record's own time would. Paging moves
the lower bound (`<from_param>` = last id + 1) and always asks `start=0`, so new records
arriving during the walk only add later pages; offset paging would shift under them.

Rules, each a field of the strategy (the stream declares them, options set some):

* The cursor is JSON: `{"after": <highest id loaded>, "newest": <newest time_field
  loaded>, "open": [<ids that can still change>]}`; `lag_seconds` reads `newest`.
* Every tick starts `trailing_ids` ids below the cursor (`after + 1 - trailing_ids`): ids a
  backend hands out in one order may become visible in another (a transaction that commits
  late), and a record changed soon after it was read is read again. **Assumed** (no source
  says how ids are allocated): a span of ids, not of records; the account's ids are shared
  by its sites, so one site's share of the span is smaller.
* Records `changeable(record)` says can still change are remembered in `open` and read
  again by id (`ids_param`, in chunks of `reread_chunk`) at the start of every tick, until
  they come back final (or no longer come back at all: gone, dropped from the set).
  A server that answers fewer than asked (it caps `num`) is asked again for the ids it
  has not answered, not for the next offset: one that ignored `start` would answer the
  same records again, and they would load twice.
  A tick reads at most `reread_per_tick` of them again: when more are open (a web shop
  with thousands of orders awaiting delivery), each tick takes the next ones in id order
  from where the last left off (`"next"` in the cursor), wrapping around, so every open
  record is read again every few ticks and none is forgotten. At most `max_changeable`
  ids are kept: past that the lowest (oldest) ids are dropped, no longer re-read, and only
  a trailing window that still covers them would see them change. Each drop is logged
  with its count (never an id list).
* A re-read answered with ids it did not ask for (the endpoint ignored `ids_param`) stops
  the re-reads, their open ids kept (forgetting the chunk would drop open records never
  read again); the walk still loads what is new, and then the tick fails with that
  StuckWindowError, so the partition is reported failed without its new records stalling.
* A page ends the walk when it holds the whole remaining match (`totalcount`) or nothing;
  an answer without a totalcount (a bare array) is paged on until a page is empty, and a
  re-read by id asks again for the ids it has not answered, never one page per tick (a
  server that caps `num` would leave the rest for later ticks, or forget open records).
  A page whose ids do not ascend (the endpoint ignored `sort`) or start below the bound
  (it ignored `<from_param>`) stops the walk with StuckWindowError instead of skipping
  records or looping.
* `resume_from(day, previous)` (and the `start` option for a first tick) stores
  `{"from": <epoch>}`: the next tick asks for the lowest id whose time field is on or after
  that instant (`time_from_param`, `sort`, `num=1`) and walks from there. The open ids of
  `previous` are kept (`"open"` beside `"from"`) and read again by id as on any tick: the
  walk from the day does not reach an order dated before it that is still open.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sitoo_sync.errors import StuckWindowError
from sitoo_sync.log import get_logger
from sitoo_sync.normalize.values import is_unix_time, to_int_or_none
from sitoo_sync.streams.cursors import Window, WindowContext, epoch_of

log = get_logger(__name__)

Changeable = Callable[[Mapping[str, Any]], bool]
#: How far past the tick's clock a record's time may be and still count as the newest
#: loaded (`lag_seconds`): clocks disagree by minutes, a till set to the wrong year by more.
FUTURE_SLACK_SECONDS = 3600


def _never(_record: Mapping[str, Any]) -> bool:
    return False


@dataclass
class KeysetState:
    """A parsed cursor: where the walk resumes, and what must be read again."""

    after: int | None = None  # the highest id loaded
    newest: int | None = None  # the newest time_field loaded (for lag)
    open: tuple[int, ...] = ()  # ids that can still change, ascending
    start_time: int | None = None  # a reset or a `start` option: walk from this time on
    #: Where the next tick's re-reads begin when not every open id fits in one tick: the
    #: lowest open id above it (None: from the lowest).
    reread_after: int | None = None

    @classmethod
    def parse(cls, stored: str | None) -> KeysetState:
        """The state a stored cursor holds (None or empty: a first tick)."""
        if not stored:
            return cls()
        if stored.lstrip("-").isdigit():  # a bare id: the highest loaded
            return cls(after=int(stored))
        try:
            data = json.loads(stored)
        except ValueError:
            data = None
        opened = (data.get("open") or []) if isinstance(data, Mapping) else None
        if not isinstance(opened, list):  # not JSON, not an object, or its open ids not a list
            raise StuckWindowError(f"unreadable keyset cursor: {stored[:80]!r}")
        assert isinstance(data, Mapping)
        return cls(
            after=_int_or_none(data.get("after")),
            # milliseconds an older version let in would make the lag read nil for good
            newest=t if is_unix_time(t := data.get("newest")) else None,
            open=tuple(sorted({i for i in opened if type(i) is int})),
            start_time=_int_or_none(data.get("from")),
            reread_after=_int_or_none(data.get("next")),
        )

    def text(self) -> str:
        """The cursor to store."""
        if self.after is None and self.start_time is not None:
            if not self.open:
                return json.dumps({"from": self.start_time})
            return json.dumps({"from": self.start_time, "open": list(self.open)})
        data: dict[str, Any] = {"after": self.after, "newest": self.newest, "open": list(self.open)}
        if self.reread_after is not None:
            data["next"] = self.reread_after
        return json.dumps(data, separators=(",", ":"))


def _int_or_none(value: Any) -> int | None:
    return value if type(value) is int else None


@dataclass(frozen=True)
class Keyset:
    """Keyset paging on an ascending id, with re-reads of records that can still change."""

    id_field: str
    from_param: str  # inclusive lower bound on the id
    sort: str  # the `sort` value for ascending ids
    time_field: str  # the record's own time (lag; resets by day)
    time_from_param: str  # inclusive lower bound on time_field
    #: The partition as a query filter (e.g. `eshopid` on the account-wide orders).
    partition_param: str | None = None
    #: Exact ids (comma-separated), for re-reading changeable records; None: never re-read.
    ids_param: str | None = None
    fixed: tuple[tuple[str, str | int], ...] = ()
    changeable: Changeable = _never
    #: Records per request (`num`). **Assumed** accepted: no maximum is documented.
    page_size: int = 100
    #: Ids below the cursor read again every tick.
    trailing_ids: int = 0
    #: The most ids of changeable records the cursor remembers.
    max_changeable: int = 2000
    #: The most remembered ids read again in one tick (the rest in the next ticks, in turn).
    reread_per_tick: int = 2000
    #: Ids per re-read request.
    reread_chunk: int = 100
    #: The first day (UTC) a partition with no cursor reads from (None: the first id).
    start: date | None = None

    def lag_seconds(self, stored: str | None, now: datetime) -> float | None:
        """Seconds between the newest record loaded (by its own time) and `now`."""
        state = KeysetState.parse(stored)
        at = state.newest if state.newest is not None else state.start_time
        return None if at is None else max(0.0, now.timestamp() - at)

    def resume_from(self, day: date, previous: str | None = None) -> str:
        """A cursor under which the next tick walks from the first id of `day` (UTC) on and
        still reads again the records `previous` holds open."""
        try:
            opened = KeysetState.parse(previous).open
        except (StuckWindowError, ValueError):  # unreadable: nothing to keep
            opened = ()
        return KeysetState(start_time=int(epoch_of(day)), open=opened).text()

    def summary(self) -> str:
        """How it reads."""
        again = f"re-reading the {self.trailing_ids} ids below the cursor"
        if self.ids_param is not None:
            again += (
                f" and, by id, every record that can still change ({self.reread_per_tick} a "
                "tick at most, the rest in turns)"
            )
        return f"keyset on `{self.id_field}` (`{self.from_param}`, `sort={self.sort}`), {again}"

    def _base(self, ctx: WindowContext) -> dict[str, str | int]:
        params: dict[str, str | int] = dict(self.fixed)
        if self.partition_param is not None:
            params[self.partition_param] = ctx.partition
        return params

    def windows(self, ctx: WindowContext, stored: str | None) -> Iterator[Window]:
        """Re-reads of the open records, then the pages from the trailing window on."""
        state = KeysetState.parse(stored)
        if state.after is None and state.start_time is None and self.start is not None:
            state.start_time = int(epoch_of(self.start))
        if state.after is None:
            lo = self._first_id(ctx, state.start_time) if state.start_time is not None else 0
            state = KeysetState(after=lo - 1, newest=state.start_time, open=state.open)
        else:
            lo = max(0, state.after + 1 - self.trailing_ids)
        try:
            yield from self._reread(ctx, state, below=lo)
        except StuckWindowError as exc:  # the open ids stay; new records still load
            yield from self._walk(ctx, state, lo)
            raise exc from None
        yield from self._walk(ctx, state, lo)

    def _first_id(self, ctx: WindowContext, since: int) -> int:
        """The lowest id whose time is on or after `since`; past the newest id if none."""
        base = self._base(ctx)
        first = _envelope(ctx.fetch_raw({**base, self.time_from_param: since,
                                         "sort": self.sort, "num": 1}))[0]  # fmt: skip
        ids = _ids(first, self.id_field)
        if ids:
            return ids[0]
        last = _envelope(ctx.fetch_raw({**base, "sort": "-" + self.sort, "num": 1}))[0]
        ids = _ids(last, self.id_field)
        return ids[0] + 1 if ids else 0

    def _reread(self, ctx: WindowContext, state: KeysetState, *, below: int) -> Iterator[Window]:
        """The remembered open records below `below` (the walk reads the others), by id."""
        if self.ids_param is None:
            return
        due = self._due([i for i in state.open if i < below], state)
        for n in range(0, len(due), self.reread_chunk):
            chunk = due[n : n + self.reread_chunk]
            records = self._read_ids(ctx, chunk)
            self._update(state, records, forget=set(chunk), now=ctx.now)
            if state.reread_after is not None:  # turns: the next tick goes on from here
                state.reread_after = chunk[-1]
            yield Window(records, state.text(), self._by_ids(ctx, chunk))

    def _due(self, below: list[int], state: KeysetState) -> list[int]:
        """The open ids this tick reads again: all of them when they fit in
        `reread_per_tick`, else that many in id order after `state.reread_after`, wrapping
        around to the lowest (and the state keeps a place to go on from)."""
        if len(below) <= self.reread_per_tick:
            state.reread_after = None
            return below
        at = next((n for n, i in enumerate(below) if i > (state.reread_after or -1)), 0)
        turn = (below[at:] + below[:at])[: self.reread_per_tick]
        log.info(
            "changeable_ids_in_turns",
            open=len(below),
            per_tick=self.reread_per_tick,
            ticks_per_round=-(-len(below) // self.reread_per_tick),
        )
        state.reread_after = turn[0] - 1
        return turn

    def _by_ids(self, ctx: WindowContext, ids: list[int]) -> dict[str, str | int]:
        assert self.ids_param is not None
        return {**self._base(ctx), self.ids_param: ",".join(map(str, ids)), "num": len(ids),
                "start": 0}  # fmt: skip

    def _read_ids(self, ctx: WindowContext, chunk: list[int]) -> list[Any]:
        """The records of `chunk`, each once. A server that caps `num` below the chunk is
        asked again for the ids it has not answered yet (never by `start`: one that ignores
        `start` would answer the same records again, loaded twice), until it answers
        nothing new: the ids left are gone."""
        records: list[Any] = []
        seen: set[int] = set()
        want = chunk
        while want:
            items, total = _envelope(ctx.fetch_raw(self._by_ids(ctx, want)))
            ids = _ids(items, self.id_field)
            stray = set(ids) - set(chunk)
            if stray:  # forgetting the chunk now would drop records never read again
                raise StuckWindowError(
                    f"{self.ids_param}= answered other {self.id_field}s (e.g. {min(stray)}): "
                    "the endpoint ignores the id filter, open records cannot be read again"
                )
            new = set(ids) - seen
            for record in items:
                i = _id_of(record, self.id_field)
                if i is None or i not in seen:  # (a bad record is rejected later)
                    records.append(record)
                if i is not None:
                    seen.add(i)
            if not new or (total is not None and len(items) >= total):
                return records
            want = [i for i in want if i not in seen]
        return records

    def _walk(self, ctx: WindowContext, state: KeysetState, lo: int) -> Iterator[Window]:
        """Pages of ascending ids from `lo` until the match is exhausted."""
        base = self._base(ctx)
        while True:
            params = {**base, self.from_param: lo, "sort": self.sort,
                      "start": 0, "num": self.page_size}  # fmt: skip
            items, total = _envelope(ctx.fetch_raw(params))
            ids = _ids(items, self.id_field)
            if ids != sorted(ids):
                raise StuckWindowError(
                    f"{self.id_field} does not ascend with sort={self.sort}: keyset paging "
                    "would skip records"
                )
            if ids and ids[0] < lo:
                raise StuckWindowError(
                    f"{self.from_param}={lo} answered {self.id_field} {ids[0]}: the endpoint "
                    "ignores the lower bound, keyset paging would never end"
                )
            self._update(state, items, forget=set(ids), now=ctx.now)
            if ids:
                state.after = max(state.after if state.after is not None else -1, ids[-1])
            yield Window(items, state.text(), params)
            if not ids or (total is not None and len(items) >= total):
                return  # without a totalcount (a bare array), only an empty page ends it
            lo = ids[-1] + 1

    def _update(
        self, state: KeysetState, records: list[Any], *, forget: set[int], now: datetime
    ) -> None:
        """`state` after `records` are loaded: ids in `forget` leave the open set unless
        they came back changeable; the newest time moves on, but not past `now` by more
        than `FUTURE_SLACK_SECONDS` (a register's wrong clock would make the lag read nil
        for as long, hiding a stream that stopped)."""
        still = {
            i
            for r in records
            if isinstance(r, Mapping)
            and (i := to_int_or_none(r.get(self.id_field))) is not None
            and self.changeable(r)
        }
        opened = sorted((set(state.open) - forget) | still)
        if len(opened) > self.max_changeable:
            dropped = len(opened) - self.max_changeable
            opened = opened[dropped:]
            log.warning("changeable_ids_dropped", count=dropped, kept=self.max_changeable)
        state.open = tuple(opened)
        latest = now.timestamp() + FUTURE_SLACK_SECONDS
        times = [  # a record rejected for its time does not make the lag look nil
            t
            for r in records
            if isinstance(r, Mapping) and is_unix_time(t := r.get(self.time_field)) and t <= latest
        ]
        if times:
            state.newest = max(times) if state.newest is None else max(state.newest, *times)


def _envelope(payload: Any) -> tuple[list[Any], int | None]:
    """(items, totalcount) of a REST v2 envelope (a bare array: no total)."""
    if isinstance(payload, list):
        return payload, None
    if isinstance(payload, Mapping):
        items = payload.get("items")
        total = payload.get("totalcount")
        if isinstance(items, list):
            return items, total if type(total) is int else None
        if items is None and not payload:
            return [], 0
    raise StuckWindowError(f"expected an envelope with items, got {type(payload).__name__}")


def _id_of(record: Any, field: str) -> int | None:
    """The record's usable id; None for a bad record (rejected later)."""
    return to_int_or_none(record.get(field)) if isinstance(record, Mapping) else None


def _ids(records: list[Any], field: str) -> list[int]:
    """The usable ids of `records`, in page order (bad records are rejected later)."""
    return [i for r in records if (i := _id_of(r, field)) is not None]
