"""Every site's time zone, read at the start of a tick and remembered for a while: the local
day of a record that carries no zone of its own.

The site's zone is `timezone` of `GET {v2}/sites/{id}/settings.json` (fact sheet, "Timezone");
the sites are those `GET {v2}/sites.json` lists (the whole account: a z-report or an order
names its own site). A zone the API failed to give (retries spent, a timeout) is *unread*: a
stream then makes the records that need it wait for the next tick rather than date them in
another zone for good. A site whose settings the API says are not there (404, 403), or that
names no zone, has none, and so has every site when the listing itself is refused so
(credentials without REST v2): retrying would not bring one.

The sites' settings are read side by side, `TickSources.concurrency` at once: 300 sites at
100 ms took 30 s one after another, every tick, for each stream that needs them.

Each site's zone is remembered by the process for `ZONE_TTL_SECONDS` (`ZONES`), for every
tick of every stream, and so is a site the API said has none (404, 403, no `timezone`). A
failure is never remembered: the next tick asks again. The listing itself is read by every
tick (one request, a page per 100 sites beyond the first ten): a site added to the account
has its zone read by the first tick that lists it. So the ticks
within the hour make one request for the zones, not one per site. Two streams' ticks that
need a zone at the same time share one read of it: the second waits for the first's answer
(no lock is held while a request is in flight, and the second would have waited as long
for its own). Staleness is what this costs, and it is bounded and rare:
* A site's zone changed in its settings (it hardly ever does: a store does not move, a
  wrong zone is set right once). For up to an hour (or until a restart), the records that
  take their site's zone (web orders without `pos-timezone`, z-reports of registers whose
  journal names no zone) are dated in the old zone. Only those within the zones' offset of
  local midnight get another business day, and they keep it until read again, as the
  records loaded just before the change keep theirs whenever the zone is read.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from sitoo_sync.api.client import Api
from sitoo_sync.errors import FatalApiError, SitooSyncError
from sitoo_sync.log import get_logger
from sitoo_sync.normalize.values import to_int_or_none
from sitoo_sync.streams.base import TickSources, items_of
from sitoo_sync.streams.cursors import OffsetPages
from sitoo_sync.streams.partitions import SITE_LIST

log = get_logger(__name__)

#: Unread, for every site: the listing of the sites itself failed.
EVERY_SITE = "*"
#: How long an answer about the sites' zones is used before it is asked again (see above).
ZONE_TTL_SECONDS = 3600.0
#: Sites asked for a page of the listing after its first (as the engine's listing of sites).
LISTING_PAGE = OffsetPages.page_size


@dataclass(frozen=True)
class SiteZones:
    """Each site's zone (eshopid as text -> IANA name), the sites whose zone could not be
    read this tick (`EVERY_SITE` when the listing failed), and every listed site."""

    zones: Mapping[str, str]
    unread: tuple[str, ...] = ()
    sites: tuple[str, ...] = field(default=(), compare=False)  # (an aside to the answer)

    def unread_for(self, eshopid: str) -> bool:
        """Whether the zone of site `eshopid` may exist but was not read this tick."""
        return EVERY_SITE in self.unread or eshopid in self.unread


@dataclass(frozen=True)
class Answer:
    """What one read gave: `value` (a site's zone or None; the listed eshopids), or `error`
    when it failed. `lasting` unless the failure may pass (retries spent): an answer that
    does not last is unread, and never remembered."""

    value: Any = None
    error: str | None = None
    lasting: bool = True


@dataclass
class _Kept:
    answer: Answer
    expires: float
    told: set[str] = field(default_factory=set)  # streams that logged its failure


class Remembered:
    """Answers kept for `ttl` seconds of `clock`, shared by every thread of the process.

    A key another thread is reading is waited for rather than read twice; the lock is held
    only to look up and store, never while a request is in flight.
    """

    def __init__(
        self, ttl: float = ZONE_TTL_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl = ttl
        self.clock = clock
        self._lock = threading.Lock()
        self._kept: dict[Hashable, _Kept] = {}
        self._reading: dict[Hashable, Future[Answer]] = {}

    def clear(self) -> None:
        """Forget every answer (reads under way still finish, and are kept)."""
        with self._lock:
            self._kept.clear()

    def answers(
        self,
        keys: Sequence[Hashable],
        read: Callable[[list[Hashable]], Mapping[Hashable, Answer]],
        stream: str,
    ) -> dict[Hashable, tuple[Answer, bool]]:
        """Each key's answer: kept, read by another thread meanwhile, or read by `read` (one
        call for all the keys left); with whether `stream` has not been told of it yet (a
        failure to log: one that does not last, or a lasting one once per stream and TTL)."""
        now = self.clock()
        got: dict[Hashable, Answer] = {}
        mine: dict[Hashable, Future[Answer]] = {}
        theirs: dict[Hashable, Future[Answer]] = {}
        with self._lock:
            for key in keys:
                if key in got or key in mine or key in theirs:
                    continue
                kept = self._kept.get(key)
                if kept is not None and kept.expires > now:
                    got[key] = kept.answer
                elif key in self._reading:
                    theirs[key] = self._reading[key]
                else:
                    mine[key] = self._reading[key] = Future()
        if mine:
            got.update(self._read(mine, read, now))
        for key, future in theirs.items():
            got[key] = future.result()  # raises what the reading thread's read raised
        out: dict[Hashable, tuple[Answer, bool]] = {}
        with self._lock:
            for key in keys:
                answer = got[key]
                kept = self._kept.get(key)
                told = kept.told if kept is not None and kept.answer is answer else None
                out[key] = (answer, told is None or stream not in told)
                if told is not None:
                    told.add(stream)
        return out

    def _read(
        self,
        mine: dict[Hashable, Future[Answer]],
        read: Callable[[list[Hashable]], Mapping[Hashable, Answer]],
        now: float,
    ) -> Mapping[Hashable, Answer]:
        """`read` the keys this thread claimed; keep what lasts, hand every answer (or the
        error) to the threads waiting for it."""
        try:
            fresh = read(list(mine))
        except BaseException as exc:
            with self._lock:
                for key in mine:
                    del self._reading[key]
            for future in mine.values():
                future.set_exception(exc)
            raise
        expires = now + self.ttl  # the answer's age counts from before it was asked
        with self._lock:
            for key in [k for k, kept in self._kept.items() if kept.expires <= now]:
                del self._kept[key]
            for key in mine:
                if fresh[key].lasting:
                    self._kept[key] = _Kept(fresh[key], expires)
                del self._reading[key]
        for key, future in mine.items():
            future.set_result(fresh[key])
        return fresh


#: The process's answers about the sites' zones (a process syncs one account).
ZONES = Remembered()


def clear_site_zones() -> None:
    """Forget every remembered zone: the next tick reads them all again."""
    ZONES.clear()


def read_site_zones(
    sources: TickSources, stream: str, *, wait: str, no_zone: str, cache: Remembered = ZONES
) -> SiteZones:
    """The account's site zones for `stream`'s tick; what a failure costs is logged with it
    (`wait`: a zone that failed to read, `no_zone`: a site that has none)."""

    listing = _list_sites(sources)
    if listing.error is not None:
        gone = listing.lasting  # no REST v2 for these credentials: no zones
        effect = no_zone if gone else wait
        log.warning("site_zones_unavailable", stream=stream, error=listing.error, effect=effect)
        return SiteZones({}, () if gone else (EVERY_SITE,))
    sites: tuple[int, ...] = listing.value
    read = cache.answers(sites, lambda keys: _read_zones(sources, keys), stream)
    zones: dict[str, str] = {}
    unread: list[str] = []
    for site in sites:
        answer, news = read[site]
        if answer.error is None:
            if answer.value is not None:
                zones[str(site)] = answer.value
            continue
        gone = answer.lasting  # 404, 403: no retry brings a zone
        if not gone:
            unread.append(str(site))
        if news:
            log.warning(
                "site_zone_unavailable",
                stream=stream,
                site=site,
                error=answer.error,
                effect=no_zone if gone else wait,
            )
    return SiteZones(zones, tuple(unread), tuple(map(str, sites)))


def _list_sites(sources: TickSources) -> Answer:
    """The listed eshopids, in order, or why not (a refusal lasts, other failures do not).

    The listing is paged by `start`/`num` like every REST v2 collection, 10 sites a page
    unless asked for more: the first page is asked for plainly, the rest `LISTING_PAGE` at
    a time while `totalcount` says there are more.
    """
    try:
        payload = sources.get(Api.V2, SITE_LIST)
        listed = list(items_of(payload))
        total = payload.get("totalcount") if isinstance(payload, Mapping) else None
        while isinstance(total, int) and len(listed) < total:
            path = f"{SITE_LIST}?start={len(listed)}&num={LISTING_PAGE}"
            page = items_of(sources.get(Api.V2, path))
            if not page:
                break
            listed += page
    except (SitooSyncError, ValueError) as exc:
        return Answer(error=str(exc), lasting=isinstance(exc, FatalApiError))
    sites = [s.get("eshopid") if isinstance(s, Mapping) else None for s in listed]
    ids = (to_int_or_none(s) for s in sites)  # "2" is 2, as the engine's listing reads it
    return Answer(tuple(dict.fromkeys(i for i in ids if i is not None)))


def _read_zones(sources: TickSources, sites: Sequence[Hashable]) -> dict[Hashable, Answer]:
    """Each site's zone from its settings, `sources.concurrency` sites at once."""

    def one(site: Hashable) -> Answer:
        try:
            settings = sources.get(Api.V2, f"/sites/{site}/settings.json")
        except SitooSyncError as exc:
            return Answer(error=exc.message, lasting=isinstance(exc, FatalApiError))
        zone = settings.get("timezone") if isinstance(settings, Mapping) else None
        return Answer(zone if isinstance(zone, str) and zone else None)

    workers = min(sources.concurrency, len(sites))
    if workers > 1:
        with ThreadPoolExecutor(workers, thread_name_prefix="sitoo-zones") as pool:
            answers = list(pool.map(one, sites))
    else:
        answers = [one(site) for site in sites]
    return dict(zip(sites, answers, strict=True))
