"""Cursor strategies: how a stream walks an endpoint from its stored cursor to the present.

A strategy is a declaration plus one generator, `windows(ctx, cursor)`, which yields
`Window`s: the records of one request and the cursor that is safe to store once they are
loaded. The strategies do no I/O themselves; they call the functions in `ctx`. Cursors are
stored as text; each strategy reads and writes its own format.

`TimeWindows` — an endpoint filtered by an inclusive time range, sorted ascending on that
time, capped at `cap` items, with no paging parameter (`/pos-z-reports`):

* The stored cursor is the *resume point*: the next read starts there, inclusively.
* Every tick starts `overlap` seconds before the cursor, so late arrivals are found.
* A page shorter than `cap` is the end: the cursor becomes its newest time.
* A full page is loaded and the next read starts at its newest time (inclusively: that
  second may hold more items than the page showed). Items of that second which come back
  identical are not yielded twice: loading them again would change nothing.
* A full page whose items all share one second cannot be advanced past; that second is
  split by `split_param` (e.g. one request per register) and then stepped over.
* The split's values are those the engine knows (the page's, and a listing's), which need
  not be all the second holds: a register deleted from the listing still has its reports.
  So the second is also asked for by `check_param` (e.g. `eshopid`), once per value its
  items showed: an answer shorter than the cap holds every item of that value in the
  second, those of a `split_param` value no listing names too. Only a value whose own
  share fills a page is left unproven (logged): the engine knows nothing narrower.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from sitoo_sync.errors import DisabledStream, FatalApiError, SitooSyncError, StuckWindowError
from sitoo_sync.log import get_logger
from sitoo_sync.normalize.values import is_unix_time, to_int_or_none, zone_named

log = get_logger(__name__)

Fetch = Callable[[Mapping[str, str | int]], list[Any]]
SplitValues = Callable[[str, list[Any]], Iterable[str]]  # (param, full page) → values


def _no_split(param: str, page: list[Any]) -> Iterable[str]:
    return ()


def _no_get(path: str) -> Any:
    raise NotImplementedError(f"this strategy was given no way to GET {path}")


def _no_fetch(params: Mapping[str, str | int]) -> Any:
    raise NotImplementedError("this strategy was given no way to fetch whole responses")


def _no_records(params: Mapping[str, str | int]) -> list[Any]:
    raise NotImplementedError("this strategy was given no way to fetch records")


@dataclass(frozen=True)
class WindowContext:
    """What a strategy may use during one tick of one partition: I/O functions and the
    engine's settings that every strategy shares. A strategy's own settings are fields of
    the strategy itself (a stream's `options` set them)."""

    fetch: Fetch = _no_records  # GET the stream's own path with these params → its records
    get: Callable[[str], Any] = _no_get  # GET another path of the same API → JSON
    fetch_raw: Callable[[Mapping[str, str | int]], Any] = _no_fetch  # the whole response body
    partition: str = ""
    key: tuple[str, ...] = ()
    overlap: int = 0  # SITOO_OVERLAP_SECONDS: how far back every tick starts again
    split_values: SplitValues = _no_split
    now: datetime = field(default_factory=lambda: datetime.now(UTC))


class CursorStrategy(Protocol):
    """What every strategy offers the sync engine."""

    def windows(self, ctx: WindowContext, stored: str | None) -> Iterator[Window]:
        """Windows from the stored cursor to the present."""
        ...

    def lag_seconds(self, stored: str | None, now: datetime) -> float | None:
        """How far the stored cursor is behind `now`, in seconds (None before any load)."""
        ...

    def resume_from(self, day: date, previous: str | None = None) -> str:
        """The cursor under which the next tick reads again from `day` (UTC) on; `previous`
        (the partition's cursor until now) for what a strategy must not forget (the keyset's
        records that can still change)."""
        ...

    def summary(self) -> str:
        """How it reads, in a few words, for the README and `--help`."""
        ...


@dataclass(frozen=True)
class Window:
    """One request's records and the cursor to store when they are loaded.

    A `sweep` window lists which records exist (e.g. only their ids) and loads nothing:
    once a tick's sweep has run to its end, the partition's stored rows it did not show
    get `missing_since` (a deleted product).
    """

    records: list[Any]
    cursor: str
    params: Mapping[str, str | int]
    sweep: bool = False


def record_times(records: list[Any], field: str) -> list[int]:
    """The cursor field of each record that has a usable one (bad records are rejected later).

    Usable is what a timestamp column accepts (`is_unix_time`): a time in milliseconds
    rejects its record, and must not carry the cursor past every later record with it.
    Records of a type that reads one field of many at once (`values_of`, e.g. the typed
    journal entries) are read that way."""
    values_of = getattr(type(records[0]), "values_of", None) if records else None
    values = values_of(records, field) if values_of is not None else None
    if values is not None:
        return [t for t in values if is_unix_time(t)]
    return [t for r in records if isinstance(r, Mapping) and is_unix_time(t := r.get(field))]


def epoch_lag(stored: str | None, now: datetime) -> float | None:
    """Seconds from a cursor stored as Unix seconds to `now` (None before any load)."""
    return None if not stored else max(0.0, now.timestamp() - int(stored))


def json_cursor_time(strategy: CursorStrategy, stored: str, now: datetime) -> datetime | None:
    """The time a JSON cursor (a keyset's, a modified feed's) stands for, as `lag_seconds`
    reckons it: what a reader is shown instead of the JSON. None when it cannot be told;
    showing a cursor never fails."""
    try:
        lag = strategy.lag_seconds(stored, now)
    except (SitooSyncError, ValueError, TypeError):  # an unreadable cursor
        return None
    return None if lag is None else datetime.fromtimestamp(round(now.timestamp() - lag), UTC)


def epoch_cursor(stored: str | None) -> int | None:
    """A cursor stored as Unix seconds (None before any load); StuckWindowError, with the way
    out, for one that is not (a time in milliseconds an older version stored)."""
    if not stored:
        return None
    cursor = _unix_seconds(stored)
    if cursor is None:
        raise StuckWindowError(
            f"the stored cursor {stored[:40]!r} is not Unix seconds; `sitoo-sync reset "
            "<stream> --since <day>` moves it back to a day"
        )
    return cursor


def day_cursor(stored: str) -> date:
    """A cursor stored as a day (YYYY-MM-DD); StuckWindowError, with the way out, for one
    that is not (a value written by hand, or by another strategy)."""
    try:
        return date.fromisoformat(stored)
    except ValueError:
        raise StuckWindowError(
            f"the stored cursor {stored[:40]!r} is not a day (YYYY-MM-DD); `sitoo-sync reset "
            "<stream> --since <day>` sets it to one"
        ) from None


def epoch_time(stored: str) -> datetime | None:
    """The time a cursor stored as Unix seconds stands for, to show it; None for one that is
    not (a day, JSON, or milliseconds an older version stored), which is shown as it is."""
    seconds = _unix_seconds(stored)
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)


def _unix_seconds(stored: str) -> int | None:
    """A cursor's Unix seconds, or None when it is not Unix seconds."""
    seconds = int(stored) if stored.isdigit() else None
    return seconds if is_unix_time(seconds) else None


def epoch_of(day: date) -> str:
    """A cursor stored as Unix seconds at the start of `day` (UTC)."""
    return str(int(datetime.combine(day, time(), UTC).timestamp()))


def _key(record: Any, key: tuple[str, ...]) -> tuple[Any, ...]:
    """The record's key values, hashable: a malformed one (a list, an object) by its text,
    so it reaches the normalizer, which rejects it, rather than raising here."""
    if not isinstance(record, Mapping):
        return ()
    values = (record.get(k) for k in key)
    return tuple(repr(v) if isinstance(v, list | dict) else v for v in values)


@dataclass(frozen=True)
class TimeWindows:
    """Inclusive time-range windows over an ascending, capped endpoint."""

    field: str
    lo_param: str
    hi_param: str
    cap: int
    split_param: str
    #: A coarser filter whose values the items carry (e.g. `eshopid`), asked for once per
    #: value a crowded second shows, after its split: it finds the items of split values
    #: no listing names (None: the split alone).
    check_param: str | None = None

    def lag_seconds(self, stored: str | None, now: datetime) -> float | None:
        """Seconds between the newest item loaded and `now`."""
        return epoch_lag(stored, now)

    def resume_from(self, day: date, previous: str | None = None) -> str:
        """The start of `day`: the next tick reads from there, minus the overlap."""
        return epoch_of(day)

    def summary(self) -> str:
        """How it reads."""
        check = f" and checked by `{self.check_param}`" if self.check_param else ""
        return (
            f"`{self.field}`, inclusive windows of at most {self.cap}, a crowded second "
            f"split by `{self.split_param}`{check}"
        )

    def windows(self, ctx: WindowContext, stored: str | None) -> Iterator[Window]:
        """Windows from `cursor - overlap` (or the beginning) to the newest item. The cursor
        never passes the clock plus the overlap (`_not_ahead`): an item stamped years ahead
        loads, but taken as the cursor it would have every later tick ask from its year."""
        for records, moved, params in self._walk(ctx, epoch_cursor(stored)):
            cursor = moved
            if moved > (latest := _latest(ctx)):
                _not_ahead([moved], ctx)  # logged
                cursor = max(latest, epoch_cursor(stored) or 0)
            yield Window(records, str(cursor), params)

    def _walk(
        self, ctx: WindowContext, cursor: int | None
    ) -> Iterator[tuple[list[Any], int, Mapping[str, str | int]]]:
        fetch, key, start = ctx.fetch, ctx.key, 0
        resume = cursor if cursor is not None else start
        lo = max(start, resume - ctx.overlap) if cursor is not None else start
        seen: dict[tuple[Any, ...], Any] = {}  # the last full page's items at second `lo`
        while True:
            params: dict[str, str | int] = {self.lo_param: lo}
            page = fetch(params)
            times = record_times(page, self.field)
            fresh = [r for r in page if not seen or seen.get(_key(r, key)) != r] if key else page
            newest = max(times, default=lo)
            if len(page) < self.cap or not times:
                # A full page with no usable time (every item's time malformed: rejects)
                # cannot be paged on from; splitting it a second at a time would not end.
                yield fresh, max(resume, newest), params
                return
            oldest = min(times, default=lo)
            if oldest < newest:
                # Seconds before `newest` are complete; `newest` is re-read next time.
                resume = max(resume, newest)
                yield fresh, resume, params
                lo = newest
                if key:
                    seen = {
                        _key(r, key): r
                        for r in page
                        if isinstance(r, Mapping) and r.get(self.field) == newest
                    }
                continue
            # One second alone fills the page: split it, then step past it.
            second = newest
            yield from self._split(ctx, second, page, resume)
            resume = max(resume, second + 1)
            lo = second + 1

    def _split(
        self, ctx: WindowContext, second: int, page: list[Any], resume: int
    ) -> Iterator[tuple[list[Any], int, Mapping[str, str | int]]]:
        fetch, key = ctx.fetch, ctx.key
        values = sorted(set(ctx.split_values(self.split_param, page)))
        if not values:
            raise StuckWindowError(
                f"{self.cap} items share {self.field}={second} and nothing is known to split "
                f"them by {self.split_param}"
            )
        bounds: dict[str, str | int] = {self.lo_param: second, self.hi_param: second}
        loaded: set[tuple[Any, ...]] = set()  # the keys of the second's parts so far
        checks = _values_of(page, self.check_param)
        # Each part is yielded once the next is read: the cursor may only step past the
        # second with the last part.
        held: tuple[list[Any], Mapping[str, str | int]] | None = None
        for value in values:
            params: dict[str, str | int] = {**bounds, self.split_param: value}
            part = fetch(params)
            if len(part) >= self.cap:
                raise StuckWindowError(
                    f"{self.cap} items share {self.field}={second} even for "
                    f"{self.split_param}={value}; cannot split further without skipping"
                )
            if held is not None:
                yield held[0], max(resume, second), held[1]
            held = (part, params)
            if key:
                loaded.update(_key(r, key) for r in part)
            checks |= _values_of(part, self.check_param)
        unlisted = 0
        for check in sorted(checks):
            assert self.check_param is not None
            params = {**bounds, self.check_param: check}
            part = fetch(params)
            if len(part) >= self.cap:  # a share too crowded to prove: the split stands
                log.warning(
                    "crowded_second_unchecked",
                    by=self.check_param,
                    items=len(part),
                    second=second,
                )
            new = [r for r in part if _key(r, key) not in loaded] if key else part
            unlisted += len(new)
            if held is not None:
                yield held[0], max(resume, second), held[1]
            held = (new, params)
            if key:
                loaded.update(_key(r, key) for r in new)
        if unlisted:
            log.info("crowded_second_unlisted", by=self.split_param, items=unlisted, second=second)
        assert held is not None
        yield held[0], max(resume, second + 1), held[1]


def _values_of(records: list[Any], name: str | None) -> set[str]:
    """The values of `name` the records carry, as query text (an integer, or non-empty
    text; a malformed one is the normalizer's to reject)."""
    if name is None:
        return set()
    found: set[str] = set()
    for record in records:
        value = record.get(name) if isinstance(record, Mapping) else None
        if (type(value) is int) or (isinstance(value, str) and value and "," not in value):
            found.add(str(value))
    return found


#: The zones whose day starts first (UTC+14) and ends last (UTC-12); POSIX signs are inverted.
_EARLIEST_ZONE = ZoneInfo("Etc/GMT-14")
_LATEST_ZONE = ZoneInfo("Etc/GMT+12")


@dataclass(frozen=True)
class DayWindows:
    """One request per calendar day (`?day=YYYY-MM-DD`), for aggregates made once a day.

    The endpoint says when a day's aggregate is made: its config (`config_path`) gives the
    hour and time zone of the daily run. **Assumed** (API_CONTRACT.md leaves it open which
    day a run aggregates): a day is *final* once the first run after the day has ended has
    happened, i.e. at `hour_of_day` on the next day, plus a grace period. Days up to today
    are read (fresh partial aggregates are worth having); the cursor, the last final day
    loaded, only moves past final days; and every tick re-reads the `lookback_days` final
    days before the cursor, because a day can be re-aggregated later. A config whose zone
    this system cannot open (newer than its tz database) or whose hour is out of range is
    scheduled for the worst case rather than failing every tick: see `schedule`.
    """

    param: str
    config_path: str
    active_field: str = "aggregation_active"
    hour_field: str = "hour_of_day"
    zone_field: str = "time_zone"
    default_start_days: int = 90
    #: The first day a first tick reads (None: `default_start_days` back).
    start_day: date | None = None
    #: Final days before the cursor read again every tick (a day can be re-aggregated).
    lookback_days: int = 3
    #: After the daily run, how long before the day it made counts as final.
    grace_minutes: int = 60

    def schedule(self, ctx: WindowContext) -> tuple[date, date]:
        """(today, last final day) in the aggregation's zone; DisabledStream if it is off."""
        try:
            config = ctx.get(self.config_path)
        except FatalApiError as exc:
            if exc.status == 404:
                raise DisabledStream(
                    "store z-report aggregation is not configured for this account "
                    f"({self.config_path} answers 404); ask Sitoo to enable it"
                ) from exc
            raise
        if not isinstance(config, Mapping) or config.get(self.active_field) is not True:
            raise DisabledStream(
                f"store z-report aggregation is switched off for this account "
                f"({self.config_path}: {self.active_field}="
                f"{config.get(self.active_field) if isinstance(config, Mapping) else config!r})"
            )
        hour = to_int_or_none(config.get(self.hour_field))  # "22" is 22: tolerant reader
        zone = zone_named(config.get(self.zone_field))
        if hour is None or not 0 <= hour <= 23 or zone is None:
            # Unreadable config (a zone newer than our tzdata, an hour out of range): rather
            # than failing the stream every tick, schedule for the worst case. Today is the
            # newest day anywhere on Earth; a day is final once it is final in the zone that
            # ends it last, after a run at the latest hour. Re-reads cover the rest.
            log.warning(
                "day_schedule_unreadable",
                path=self.config_path,
                hour_of_day=config.get(self.hour_field),
                time_zone=config.get(self.zone_field),
            )
            today = ctx.now.astimezone(_EARLIEST_ZONE).date()
            return today, self._last_final(ctx.now.astimezone(_LATEST_ZONE), 23)
        local = ctx.now.astimezone(zone)
        return local.date(), self._last_final(local, hour)

    def _last_final(self, local: datetime, hour: int) -> date:
        """The newest day a daily run at `hour` (local) has made final by `local`."""
        ran = local - timedelta(minutes=self.grace_minutes)
        # The run at `hour` on day X makes day X-1 final.
        return ran.date() - timedelta(days=1 if ran.hour >= hour else 2)

    def lag_seconds(self, stored: str | None, now: datetime) -> float | None:
        """Seconds between the end of the last final day loaded (UTC) and `now`."""
        if not stored:
            return None
        end = datetime.combine(day_cursor(stored) + timedelta(days=1), time(), UTC)
        return max(0.0, (now - end).total_seconds())

    def resume_from(self, day: date, previous: str | None = None) -> str:
        """The day before: the next tick reads from there, minus the lookback days."""
        return (day - timedelta(days=1)).isoformat()

    def summary(self) -> str:
        """How it reads."""
        return (
            f"day by day (`{self.param}`) up to the last final day, re-reading "
            f"{self.lookback_days} final days for re-aggregations"
        )

    def windows(self, ctx: WindowContext, stored: str | None) -> Iterator[Window]:
        """One window per day from the lookback (or the start day) to today."""
        today, last_final = self.schedule(ctx)
        if stored:
            cursor: date | None = day_cursor(stored)
            assert cursor is not None
            first = cursor - timedelta(days=self.lookback_days - 1)
        else:
            cursor = None
            first = self.start_day or today - timedelta(days=self.default_start_days)
        day = first
        while day <= today:
            params: dict[str, str | int] = {self.param: day.isoformat()}
            records = ctx.fetch(params)
            if day <= last_final and (cursor is None or day > cursor):
                cursor = day
            yield Window(records, cursor.isoformat() if cursor else "", params)
            day += timedelta(days=1)


@dataclass(frozen=True)
class CursorPages:
    """An endpoint paged by an opaque `next` token, filtered by an inclusive time (journals).

    Each tick asks for everything added since the stored cursor minus the overlap, sorted
    ascending, and follows `next_field` until the response has none (absent, null or empty:
    **assumed**, API_CONTRACT.md) or hands back the token it was asked with. Every page is a
    window; its cursor is the newest time loaded so far. The token never outlives the tick:
    the next tick starts again from the cursor.

    A bare array instead of the envelope (the contract's tolerant reader) carries no token:
    one shorter than `num_param` ends the query; a full one is asked again from its newest
    time (inclusively, as the next tick would), and one whose entries all share that time
    cannot be paged past without skipping some, which stops the partition (StuckWindowError).
    """

    partition_param: str
    time_field: str
    lo_param: str
    next_param: str
    next_field: str
    fixed: tuple[tuple[str, str | int], ...]
    #: The first day (UTC) a partition with no cursor reads from (None: its beginning).
    start: date | None = None
    #: The page size among `fixed`: a bare array that long may not be the whole answer.
    num_param: str = "num"

    def lag_seconds(self, stored: str | None, now: datetime) -> float | None:
        """Seconds between the newest entry loaded and `now`."""
        return epoch_lag(stored, now)

    def resume_from(self, day: date, previous: str | None = None) -> str:
        """The start of `day`: the next tick reads from there, minus the overlap."""
        return epoch_of(day)

    def summary(self) -> str:
        """How it reads."""
        return f"`{self.time_field}` from the cursor, following `{self.next_field}`"

    def _first_time(self) -> int:
        """Unix seconds where a partition with no cursor starts."""
        return int(epoch_of(self.start)) if self.start else 0

    def windows(self, ctx: WindowContext, stored: str | None) -> Iterator[Window]:
        """Pages from `cursor - overlap` (or the start) to the end of the query."""
        cursor = epoch_cursor(stored)
        lo = max(0, cursor - ctx.overlap) if cursor is not None else self._first_time()
        params: dict[str, str | int] = {
            self.partition_param: ctx.partition,
            **dict(self.fixed),
            self.lo_param: lo,
        }
        resume = cursor if cursor is not None else lo
        size = dict(self.fixed).get(self.num_param)
        asked: set[str] = set()  # the tokens this query was asked with
        last: tuple[int, Any, Any] | None = None  # the last page's size, first and last entry
        while True:
            payload = ctx.fetch_raw(params)
            bare = isinstance(payload, list)
            if not bare and not isinstance(payload, Mapping):
                raise StuckWindowError(f"expected an envelope, got {type(payload).__name__}")
            records = payload if bare else payload.get("items") or []
            if not isinstance(records, list):
                raise StuckWindowError("the envelope's items is not a list")
            times = record_times(records, self.time_field)
            resume = max(resume, *_not_ahead(times, ctx), resume)
            token = None if bare else payload.get(self.next_field)
            full = bare and isinstance(size, int) and len(records) >= size
            page = (len(records), records[0], records[-1]) if records else (0, None, None)
            repeated, last = page == last, page
            del payload  # the page lives in its window alone, not here during the next fetch
            yield Window(records, str(resume), dict(params))
            del records
            # A token that names the page just read would read it again, forever (an API
            # that hands back where the data ends, to poll from later): the query ends. So
            # does one this query followed before (a loop), and a page that repeats the one
            # before under a new token: the next tick goes on from the cursor.
            if token and str(token) != params.get(self.next_param):
                if str(token) not in asked and not repeated:
                    asked.add(str(token))
                    params = {**params, self.next_param: str(token)}
                    continue
                log.warning("next_token_loop", partition=ctx.partition, pages=len(asked) + 1)
            if not full:
                return
            newest = max(times, default=None)
            if newest is None or newest == min(times) or newest <= int(params[self.lo_param]):
                raise StuckWindowError(
                    f"a full page of {size} entries came as a bare array (no {self.next_field}) "
                    f"and cannot be paged on from {self.time_field}={newest} without skipping"
                )
            # Its newest second may go on past the page: asked again from it, inclusively.
            params = {**params, self.lo_param: newest}


def _latest(ctx: WindowContext) -> int:
    """The latest time a cursor may take: the clock (the tick's, or the wall's in a long
    tick) plus the overlap."""
    return max(int(ctx.now.timestamp()), int(datetime.now(UTC).timestamp())) + ctx.overlap


def split_ahead(times: list[int], latest: int) -> tuple[list[int], list[int]]:
    """`times` as (those no later than `latest`, those later). A time cursor takes only the
    first: a record stamped later (a clock gone wrong) loads, but taken as the cursor it
    would have every later tick ask from there and never read what is added meanwhile; it
    is read again by each tick until its time comes."""
    if all(t <= latest for t in times):
        return times, []
    return [t for t in times if t <= latest], [t for t in times if t > latest]


def _not_ahead(times: list[int], ctx: WindowContext) -> list[int]:
    """The times that may move a time cursor (`split_ahead`): none later than the clock (the
    tick's, or the wall's in a long tick) plus the overlap; the later ones are logged."""
    latest = _latest(ctx)
    kept, ahead = split_ahead(times, latest)
    if ahead:
        log.warning(
            "cursor_time_ahead",
            partition=ctx.partition,
            records=len(ahead),
            seconds_ahead=max(ahead) - latest + ctx.overlap,
        )
    return kept


@dataclass(frozen=True)
class OffsetPages:
    """A full listing paged by `start`/`num` until `totalcount` (REST v2 collections).

    Nothing is incremental: every tick reads the whole listing. The cursor is the time of the
    listing, so `status` can say how old the picture is.
    """

    start_param: str = "start"
    num_param: str = "num"
    page_size: int = 100  # **assumed** maximum `num` for REST v2 (API_CONTRACT.md)
    total_field: str = "totalcount"
    fixed: tuple[tuple[str, str | int], ...] = ()
    #: Listings at most in one tick while the count moves during one: a record deleted
    #: between two pages shifts the next one back into a page already read, and a row
    #: that no listing of the tick showed is marked missing.
    passes: int = 3

    def lag_seconds(self, stored: str | None, now: datetime) -> float | None:
        """Seconds since the last complete listing."""
        return epoch_lag(stored, now)

    def resume_from(self, day: date, previous: str | None = None) -> str:
        """Never used: every tick reads the whole listing, whatever the cursor says."""
        raise ValueError("a full listing has no cursor to move back")

    def summary(self) -> str:
        """How it reads."""
        return f"the whole listing every tick, paged by `{self.start_param}`/`{self.num_param}`"

    def windows(self, ctx: WindowContext, stored: str | None) -> Iterator[Window]:
        """One window per page of the listing: a page ends it when it is empty, reaches the
        count (digits count), or repeats the page before (an endpoint that ignores `start`).
        A bare array (the contract's tolerant reader) may be only the first page, 10 at a
        time whatever `num` asks, so it is paged on too. A listing that ends short of its
        own count fails once what it showed is loaded: the rows it did not show must not
        be taken for gone. A listing whose count moved between its pages is listed again
        (at most `passes` times): the rows of every pass count as seen."""
        listed_at = str(int(ctx.now.timestamp()))
        for attempt in range(1, self.passes + 1):
            totals = yield from self._pass(ctx, listed_at)
            if len(totals) <= 1 or attempt >= self.passes:
                return

    def _pass(self, ctx: WindowContext, listed_at: str) -> Generator[Window, None, set[int]]:
        """One listing from the first page; returns the counts its pages gave (a listing
        that ends short of its count raises)."""
        start = 0
        totals: set[int] = set()
        last: tuple[int, Any, Any] | None = None  # the last page's size, first and last item
        while True:
            params: dict[str, str | int] = {
                **dict(self.fixed),
                self.start_param: start,
                self.num_param: self.page_size,
            }
            payload = ctx.fetch_raw(params)
            envelope = isinstance(payload, Mapping)
            items = payload.get("items") if envelope else payload
            if not isinstance(items, list):
                raise StuckWindowError("the listing has no items list")
            total = to_int_or_none(payload.get(self.total_field)) if envelope else None
            if items and (len(items), items[0], items[-1]) == last:
                listing_complete(start, total)  # `start` ignored: the pages before were all
                return totals
            if total is not None:
                totals.add(total)
            yield Window(items, listed_at, params)
            if not items:  # an empty page short of its own count ends the listing short
                listing_complete(start, total)
                return totals
            start += len(items)
            if total is not None and start >= total:
                return totals
            last = (len(items), items[0], items[-1])


def listing_complete(shown: int, total: int | None) -> None:
    """StuckWindowError when a listing that ends after `shown` records says it has more:
    what it showed is loaded, and the rows it did not show are not marked missing."""
    if total is not None and shown < total:
        raise StuckWindowError(
            f"the listing showed {shown} of its totalcount {total}; rows it did not show "
            "are not marked missing"
        )
