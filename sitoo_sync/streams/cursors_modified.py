"""`ModifiedSince`: a REST v2 collection filtered by a last-modified time, with no sort.

For `products` (`datelastmodified`, strictly after) and `warehouse_items`
(`datelastmodifiedfrom`, inclusive). The fact sheet (rest-v2-catalogue.md 3.3, 5.2) gives
no sort and no documented inclusivity, so the rules are:

* The stored cursor is JSON: `after` (the newest modification time loaded), `snapshot_at`,
  `swept_at` and `listed_at` (when the last full listing, the last id sweep and the last
  complete listing of either kind began, Unix seconds), and `page` while a listing is under
  way (where it resumes after a crash).
* A tick asks for records modified since `after - overlap` (one second earlier still when
  the bound is exclusive, so either reading of the docs loses nothing), and pages with
  start/num until `totalcount` (an answer without one, a bare array as the contract's
  tolerant reader takes it, until a page comes back short). The listing is unsorted, so
  `after` only moves when the listing is complete: the last page's cursor carries
  `max(after, newest time seen)`.
* A record stamped later than the tick's clock plus the overlap (a till with a wrong
  clock) loads, but does not move `after`: taken as the cursor, it would hide every real
  change until the next snapshot. It is counted in a warning (`modification_time_ahead`)
  and read again by each tick until its time comes; a stored `after` that far ahead (an
  older version's) makes the next tick a snapshot.
* Every `snapshot_hours` (and on the first tick) the listing has no time filter at all: it
  catches what a modified feed cannot show (stock reservations move `decimalreserved`
  without touching `datelastmodified`) and anything an unsorted listing's pages shifted
  past while it was read.
* Every `sweep_hours`, after the records, the ids alone are listed (`fields=<key>`) in
  `sweep` windows; when the sweep ran to its end, the engine marks the partition's rows it
  did not show with `missing_since` (a deleted product never shows up in a modified feed).
  The sweep runs last, so a record created during the tick is listed by it; when the
  `totalcount` moves during a pass, or the pass lists an id twice (a record that moved,
  edited, in a listing kept in modification order), pages may have shifted and the ids
  are listed again.
* A crash mid-listing resumes at the page after the last one committed (`page`), with the
  same filter and the `totalcount` its first page saw.
* A listing whose `totalcount` moved between its first page and its last (a record
  deleted, or one modified into the filter), or one of several pages whose last page
  shows a record modified since it began (a server that lists in modification order, as
  an index on the time would, moves that record to the end, and the count stays), may
  have had its offset pages shift over a record: it is not complete. Its last cursor
  keeps `after`, `snapshot_at` and `listed_at` as they were, so the next tick lists the
  same again (a snapshot again, a modified feed from the same bound) rather than the
  skipped record waiting for the next snapshot. A catalogue that changes during every
  listing of several pages would never have a quiet one: the cursor counts such listings
  in a row (`shifted`), and the `relist_passes`-th is taken as complete (logged), as
  every listing was before; the next snapshot repairs what a shift skipped. The records
  read meanwhile load all the same.

**Assumed** (the docs say none of it): a record's time field moves on every change the
endpoint shows, except where the fact sheet says otherwise (reservations); offset pages of
an unchanged filter are stable enough within a tick; the server's clock and the records'
times agree within the overlap.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Any

from sitoo_sync.errors import StuckWindowError
from sitoo_sync.log import get_logger
from sitoo_sync.normalize.values import is_unix_time, to_int_or_none
from sitoo_sync.streams.cursors import Window, WindowContext, epoch_of, split_ahead

log = get_logger(__name__)


@dataclass(frozen=True)
class _State:
    """What the stored cursor holds."""

    after: int | None = None
    snapshot_at: int | None = None
    swept_at: int | None = None
    listed_at: int | None = None  # when the last complete listing began
    page: Mapping[str, Any] | None = None  # {"lo", "start", "newest", "snapshot", "began"}
    shifted: int = 0  # listings in a row whose totalcount moved, listed again since

    def text(self) -> str:
        body: dict[str, Any] = {
            "after": self.after,
            "snapshot_at": self.snapshot_at,
            "swept_at": self.swept_at,
            "listed_at": self.listed_at,
        }
        if self.page is not None:
            body["page"] = dict(self.page)
        if self.shifted:
            body["shifted"] = self.shifted
        return json.dumps(body, sort_keys=True)


def _int_or_none(value: Any) -> int | None:
    return value if type(value) is int else None


def _time_or_none(value: Any) -> int | None:
    """A modification time as Unix seconds; None for one that is not (milliseconds an older
    version let into `after`: kept, it would ask for changes after the year 58000 forever,
    while None makes the next tick a snapshot that sets `after` anew)."""
    return value if is_unix_time(value) else None


def parse_state(stored: str | None) -> _State:
    """The stored cursor (a bare number is taken as `after`); empty before any load."""
    if not stored:
        return _State()
    try:
        raw = json.loads(stored)
    except ValueError:
        raise StuckWindowError(f"unreadable cursor {stored!r}") from None
    if type(raw) is int:
        return _State(after=_time_or_none(raw))
    if not isinstance(raw, Mapping):
        raise StuckWindowError(f"unreadable cursor {stored!r}")
    page = raw.get("page")
    return _State(
        after=_time_or_none(raw.get("after")),
        snapshot_at=_int_or_none(raw.get("snapshot_at")),
        swept_at=_int_or_none(raw.get("swept_at")),
        listed_at=_int_or_none(raw.get("listed_at")),
        page=page if isinstance(page, Mapping) else None,
        shifted=_int_or_none(raw.get("shifted")) or 0,
    )


def _plausible(state: _State, latest: int) -> _State:
    """`state` without an `after` or a listing's `newest` later than `latest` (an older
    version took them from a record stamped in the future; without `after` the next tick
    is a snapshot that sets it anew)."""
    if state.after is not None and state.after > latest:
        state = replace(state, after=None)
    newest = state.page.get("newest") if state.page is not None else None
    if state.page is not None and type(newest) is int and newest > latest:
        state = replace(state, page={**state.page, "newest": None})
    return state


def _due(last: int | None, hours: int, now: int) -> bool:
    return hours > 0 and (last is None or now - last >= hours * 3600)


@dataclass(frozen=True)
class ModifiedSince:
    """Modified-since pages with an overlap, periodic full snapshots and id sweeps."""

    #: The query parameter of the lower bound (`datelastmodified`, `datelastmodifiedfrom`).
    lo_param: str
    #: The record's modification time (`datemodified`, `datelastmodified`).
    time_field: str
    #: Whether the server includes records exactly at the bound (**assumed** per endpoint).
    inclusive: bool
    #: The field an id sweep asks for (`productid`); None: no sweeps.
    sweep_field: str | None = None
    #: Explicit `fields` for the record pages (empty: the endpoint's default set).
    fields: tuple[str, ...] = ()
    fixed: tuple[tuple[str, str | int], ...] = ()
    page_size: int = 100  # **assumed** maximum `num` for REST v2 (API_CONTRACT.md)
    #: Seconds every tick reads back before the cursor (the stream's own setting: a
    #: modified feed needs more than an event log, and SITOO_OVERLAP_SECONDS stays theirs).
    overlap_seconds: int = 600
    #: Hours between full listings without a time filter (0: only the first tick's).
    snapshot_hours: int = 24
    #: Hours between id sweeps that mark deleted records missing (0: never).
    sweep_hours: int = 6
    #: Listings of the ids at most, while their count keeps changing during one.
    sweep_passes: int = 3
    #: Listings in a row whose totalcount moved (pages may have shifted) before one of them
    #: counts as complete all the same (a catalogue that never keeps still during one).
    relist_passes: int = 3

    def lag_seconds(self, stored: str | None, now: datetime) -> float | None:
        """Seconds since the last complete listing began: everything modified before it is
        loaded (a catalogue that rarely changes is not behind). A cursor that only names a
        modification time (`resume_from`) is as far behind as that time."""
        state = parse_state(stored) if stored else _State()
        since = state.listed_at if state.listed_at is not None else state.after
        return None if since is None else max(0.0, now.timestamp() - since)

    def resume_from(self, day: date, previous: str | None = None) -> str:
        """A cursor that reads modifications from `day` (UTC) on; a snapshot and a sweep
        come first, as on a first tick."""
        return _State(after=int(epoch_of(day))).text()

    def summary(self) -> str:
        """How it reads."""
        sweep = (
            f", every {self.sweep_hours} h an id sweep (`{self.sweep_field}`) marks deleted "
            "rows `missing_since`"
            if self.sweep_field and self.sweep_hours
            else ""
        )
        snapshot = f", every {self.snapshot_hours} h all of it" if self.snapshot_hours else ""
        return f"`{self.lo_param}` from the newest `{self.time_field}` less the overlap" + (
            snapshot + sweep
        )

    def windows(self, ctx: WindowContext, stored: str | None) -> Iterator[Window]:
        """The record pages (modified since the cursor, or all), then a sweep when due."""
        now = int(ctx.now.timestamp())
        state = _plausible(parse_state(stored), now + self.overlap_seconds)  # see `_times`
        page = state.page
        if page is not None and type(page.get("start")) is int:
            snapshot = page.get("snapshot") is True
            lo = _int_or_none(page.get("lo"))
            start = int(page["start"])
            newest = _time_or_none(page.get("newest"))
            began = _int_or_none(page.get("began")) or now
            first_total = _int_or_none(page.get("total"))
        else:
            snapshot = state.after is None or _due(state.snapshot_at, self.snapshot_hours, now)
            lo = None
            if not snapshot:
                assert state.after is not None
                lo = max(0, state.after - self.overlap_seconds - (0 if self.inclusive else 1))
            start, newest, began, first_total = 0, None, now, None
        base: dict[str, str | int] = dict(self.fixed)
        if self.fields:
            base["fields"] = ",".join(self.fields)
        if lo is not None:
            base[self.lo_param] = lo
        while True:
            params: dict[str, str | int] = {**base, "start": start, "num": self.page_size}
            items, total = _page(ctx.fetch_raw(params))
            times = self._times(items, now)
            newest = max([*times, *([newest] if newest is not None else [])], default=None)
            start += len(items)
            first_total = total if first_total is None else first_total
            if _more(items, start, total, self.page_size):  # resume here after a crash
                progress = {"lo": lo, "start": start, "newest": newest, "total": first_total}
                progress |= {"snapshot": snapshot, "began": began}
                yield Window(items, replace(state, page=progress).text(), params)
                continue
            if total != first_total or _modified_during(int(params["start"]), times, began):
                again = state.shifted + 1 < self.relist_passes  # an offset may have skipped one
                log.info(
                    "listing_shifted",
                    first_total=first_total,
                    last_total=total,  # the same: a record modified during the listing
                    listed_again=again,
                )
                if again:
                    state = replace(state, page=None, shifted=state.shifted + 1)
                    yield Window(items, state.text(), params)
                    break
            after = max([v for v in (state.after, newest) if v is not None], default=None)
            if after is None and snapshot:
                after = began  # an empty listing: later ticks ask from when it was read
            state = _State(after, began if snapshot else state.snapshot_at, state.swept_at, began)
            yield Window(items, state.text(), params)
            break
        if self.sweep_field is not None and _due(state.swept_at, self.sweep_hours, now):
            yield from self._sweep(ctx, state, now)

    def _times(self, items: list[Any], now: int) -> list[int]:
        """The records' modification times that may move `after`: Unix seconds (a time in
        milliseconds or garbage rejects its record, and must not carry `after` past every
        later change with it) no later than the tick's clock (`now`) plus the overlap (the
        server's clock and ours agree within it, assumed: a later time is a device's wrong
        clock). A record stamped later still loads; it is counted in a warning, and read
        again by every tick until its time comes."""
        times = [
            t for r in items if isinstance(r, Mapping) and is_unix_time(t := r.get(self.time_field))
        ]
        latest = now + self.overlap_seconds
        kept, ahead = split_ahead(times, latest)
        if ahead:
            log.warning(
                "modification_time_ahead",
                field=self.time_field,
                records=len(ahead),
                seconds_ahead=max(ahead) - latest + self.overlap_seconds,
            )
        return kept

    def _sweep(self, ctx: WindowContext, state: _State, now: int) -> Iterator[Window]:
        """Every id, in sweep windows; the last one's cursor records the sweep.

        The listing is unsorted and paged by offset, so a record deleted or created while
        it is read can shift a live id past the pages: when `totalcount` changed during a
        pass, the ids are listed again (the engine marks only ids no pass showed), at most
        `sweep_passes` times. So does a record that moves while the ids are read (a server
        that lists in modification order moves an edited record to one end, the count
        unchanged): a move across the pages already read shifts one id past them, and
        lists one id twice, the moved one or the one the shift pushed back; an id a pass
        lists twice makes it list again too. (The pass keeps the ids it listed to see
        that, as many as the engine keeps for the missing marks.)
        """
        assert self.sweep_field is not None
        base: dict[str, str | int] = {**dict(self.fixed), "fields": self.sweep_field}
        for attempt in range(1, self.sweep_passes + 1):
            start, totals = 0, set[int]()  # the counts this pass saw (a bare page has none)
            listed: set[Any] = set()  # the ids this pass showed
            twice = 0  # ids it showed again: the pages shifted under a move
            while True:
                params: dict[str, str | int] = {**base, "start": start, "num": self.page_size}
                items, total = _page(ctx.fetch_raw(params))
                if total is not None:
                    totals.add(total)
                for item in items:
                    value = item.get(self.sweep_field) if isinstance(item, Mapping) else None
                    if isinstance(value, int | str):  # (a malformed id: rejected, not counted)
                        twice += value in listed
                        listed.add(value)
                start += len(items)
                last = not _more(items, start, total, self.page_size)
                again = len(totals) > 1 or twice > 0
                done = last and (not again or attempt == self.sweep_passes)
                if last and twice:
                    log.info("sweep_shifted", ids_listed_twice=twice, listed_again=not done)
                swept = now if done else state.swept_at
                cursor = replace(state, swept_at=swept, page=None)
                yield Window(items, cursor.text(), params, sweep=True)
                if done:
                    return
                if last:
                    break


def _modified_during(start: int, times: list[int], began: int) -> bool:
    """Whether the last page (at offset `start`, its records' `times`) of a listing of
    several pages shows a record modified since the listing `began`: a server listing in
    modification order put it last, and its move shifted the pages under the offset as a
    count that moved does."""
    return start > 0 and any(t >= began for t in times)


def _page(payload: Any) -> tuple[list[Any], int | None]:
    """(items, totalcount) of one page: an envelope, or a bare array (the contract's
    tolerant reader), whose count is unknown (None), as an envelope's without an integer
    one (digits count as it)."""
    if isinstance(payload, list):
        return payload, None
    if not isinstance(payload, Mapping):
        raise StuckWindowError(f"expected an envelope, got {type(payload).__name__}")
    items = payload.get("items")
    if not isinstance(items, list):
        raise StuckWindowError("the envelope has no items list")
    return items, to_int_or_none(payload.get("totalcount"))


def _more(items: list[Any], start: int, total: int | None, num: int) -> bool:
    """Whether pages follow one of `items` that ends at offset `start`: up to `total` when
    the count is known, else while a page comes back full."""
    if not items:
        return False
    return start < total if total is not None else len(items) >= num
