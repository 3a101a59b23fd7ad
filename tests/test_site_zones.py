"""The sites' time zones: read side by side, remembered for a while, failures never."""

from __future__ import annotations

import io
import json
import re
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from sitoo_sync.errors import FatalApiError, RetryBudgetExhausted
from sitoo_sync.log import configure_logging
from sitoo_sync.simulator import Simulator
from sitoo_sync.streams.base import TickSources
from sitoo_sync.streams.site_zones import (
    EVERY_SITE,
    ZONE_TTL_SECONDS,
    Answer,
    Remembered,
    SiteZones,
    read_site_zones,
)
from tests.conftest import SyncFn
from tests.support import settings_for

LISTING = "/sites.json"
SETTINGS = re.compile(r"/sites/(\d+)/settings\.json")
ZONE_NAMES = ("Europe/Stockholm", "Europe/Oslo", "Europe/Helsinki")


def zone_of(site: int) -> str:
    return ZONE_NAMES[site % len(ZONE_NAMES)]


class FakeApi:
    """`TickSources.get` for an account of `sites`, each GET taking `latency` seconds; a
    path in `failing` raises its error instead (remove it to heal)."""

    def __init__(self, sites: range, latency: float = 0.0) -> None:
        self.sites = sites
        self.latency = latency
        self.failing: dict[str, Exception] = {}
        self.asked: Counter[str] = Counter()
        self.in_flight = 0
        self.most_in_flight = 0
        self.hold: threading.Event | None = None  # the listing waits for it when set
        self._lock = threading.Lock()

    def get(self, _api: Any, path: str) -> Any:
        with self._lock:
            self.asked[path] += 1
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            time.sleep(self.latency)
            if path.startswith(LISTING) and self.hold is not None:
                self.hold.wait(5)
            if path in self.failing:
                raise self.failing[path]
            if path.partition("?")[0] == LISTING:
                return self.listing(path)
            match = SETTINGS.fullmatch(path)
            assert match is not None, path
            return {"timezone": zone_of(int(match[1]))}
        finally:
            with self._lock:
                self.in_flight -= 1

    def listing(self, path: str) -> dict[str, Any]:
        """A page of the sites: 10 unless `num` says otherwise, from `start`."""
        params = dict(p.split("=") for p in path.partition("?")[2].split("&") if p)
        start, num = int(params.get("start", 0)), int(params.get("num", 10))
        page = self.sites[start : start + num]
        return {"totalcount": len(self.sites), "items": [{"eshopid": s} for s in page]}

    def site_reads(self) -> int:
        return sum(n for path, n in self.asked.items() if SETTINGS.fullmatch(path))

    def forget_asked(self) -> None:
        self.asked.clear()


class Clock:
    """A monotonic clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def read(
    api: FakeApi, cache: Remembered, *, stream: str = "orders", concurrency: int = 4
) -> SiteZones:
    sources = TickSources(
        latest=lambda *_a: {}, get=api.get, now=datetime.now(UTC), concurrency=concurrency
    )
    return read_site_zones(sources, stream, wait="waits", no_zone="none", cache=cache)


def every_zone(sites: range) -> dict[str, str]:
    return {str(s): zone_of(s) for s in sites}


def logged(run: Any) -> list[dict[str, Any]]:
    """The JSON log events written while `run()` ran."""
    out = io.StringIO()
    configure_logging(fmt="json", level="INFO", stream=out)
    try:
        run()
    finally:
        configure_logging(fmt="console", level="INFO")
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_the_sites_settings_are_read_side_by_side_up_to_the_concurrency() -> None:
    """12 sites at 100 ms and concurrency 4 take about 3 latencies after the listing, not
    12, with never more than 4 requests in flight."""
    api = FakeApi(range(1, 13), latency=0.1)
    started = time.monotonic()
    got = read(api, Remembered(), concurrency=4)
    elapsed = time.monotonic() - started
    assert got == SiteZones(every_zone(range(1, 13)))
    assert api.most_in_flight == 4
    assert elapsed < 0.9, elapsed  # one after another: 1.3 s; side by side: 0.4 s


def test_concurrency_one_reads_one_site_at_a_time_in_order() -> None:
    """At concurrency 1 (what a TickSources says unless told) the sites are read one after
    another, in the listing's order."""
    api = FakeApi(range(1, 4), latency=0.01)
    sources = TickSources(latest=lambda *_a: {}, get=api.get, now=datetime.now(UTC))
    got = read_site_zones(sources, "orders", wait="w", no_zone="n", cache=Remembered())
    assert got.zones == every_zone(range(1, 4))
    assert api.most_in_flight == 1
    assert list(api.asked) == [LISTING, *(f"/sites/{s}/settings.json" for s in range(1, 4))]


def test_a_second_tick_within_the_ttl_reads_only_the_listing() -> None:
    """What a tick read is used by the next ticks of both streams until the TTL has passed:
    they list the sites (one request each) and read no site's settings, and see the same
    zones."""
    clock = Clock()
    cache = Remembered(ttl=ZONE_TTL_SECONDS, clock=clock)
    api = FakeApi(range(1, 6))
    first = read(api, cache, stream="orders")
    assert api.asked[LISTING] == 1
    assert api.site_reads() == 5
    api.forget_asked()
    clock.now += ZONE_TTL_SECONDS - 1
    assert read(api, cache, stream="orders") == first
    assert read(api, cache, stream="pos_z_reports") == first
    assert api.asked == Counter({LISTING: 2})


def test_a_site_added_within_the_ttl_has_its_zone_read_at_once() -> None:
    """A site the account gains between two ticks is listed by the next one, which reads
    its zone (and only its): its records are never dated as a site's without one."""
    cache = Remembered(clock=Clock())
    api = FakeApi(range(1, 4))
    read(api, cache)
    api.forget_asked()
    api.sites = range(1, 5)
    assert read(api, cache) == SiteZones(every_zone(range(1, 5)))
    assert api.asked == Counter({LISTING: 1, "/sites/4/settings.json": 1})


def test_after_the_ttl_the_listing_and_every_site_are_read_again() -> None:
    """Once the TTL has passed, the listing and each site's settings are asked again, and a
    zone changed meanwhile is the one used."""
    clock = Clock()
    cache = Remembered(ttl=60, clock=clock)
    api = FakeApi(range(1, 4))
    read(api, cache)
    api.forget_asked()
    clock.now += 60
    api.sites = range(1, 5)  # a site added meanwhile
    got = read(api, cache)
    assert api.asked[LISTING] == 1
    assert api.site_reads() == 4
    assert got == SiteZones(every_zone(range(1, 5)))


def test_an_unread_site_is_asked_again_next_tick_and_only_it() -> None:
    """A site whose settings failed past their retries is unread, not remembered: the next
    tick asks for it (and no other site), and once read it is remembered too."""
    cache = Remembered(clock=Clock())
    api = FakeApi(range(1, 4))
    api.failing["/sites/2/settings.json"] = RetryBudgetExhausted("gave up after 6 attempts")
    first = read(api, cache)
    assert first == SiteZones({"1": zone_of(1), "3": zone_of(3)}, ("2",))
    assert first.unread_for("2")
    assert not first.unread_for("1")
    api.forget_asked()
    assert read(api, cache) == first  # still failing: still unread
    assert list(api.asked) == [LISTING, "/sites/2/settings.json"]
    del api.failing["/sites/2/settings.json"]
    api.forget_asked()
    assert read(api, cache) == SiteZones(every_zone(range(1, 4)))
    assert list(api.asked) == [LISTING, "/sites/2/settings.json"]
    api.forget_asked()
    read(api, cache)
    assert list(api.asked) == [LISTING]


@pytest.mark.parametrize("status", [404, 403])
def test_a_site_refused_has_no_zone_is_not_unread_and_is_not_asked_again(status: int) -> None:
    """A site whose settings are refused for good (404, 403) has no zone and is not unread;
    that answer lasts the TTL like a zone, and each stream logs its cost once."""
    cache = Remembered(clock=Clock())
    api = FakeApi(range(1, 4))
    api.failing["/sites/2/settings.json"] = FatalApiError("Not Found", status=status)
    ticks: list[SiteZones] = []

    def three_ticks() -> None:
        for stream in ("orders", "orders", "pos_z_reports"):
            ticks.append(read(api, cache, stream=stream))

    events = logged(three_ticks)
    assert ticks == [SiteZones({"1": zone_of(1), "3": zone_of(3)})] * 3
    assert api.asked["/sites/2/settings.json"] == 1
    warned = [
        (e["stream"], e["site"], e["effect"])
        for e in events
        if e["event"] == "site_zone_unavailable"
    ]
    assert warned == [("orders", 2, "none"), ("pos_z_reports", 2, "none")]


def test_a_failed_listing_leaves_every_site_unread_and_is_asked_again() -> None:
    """A listing that failed past its retries leaves every site unread (logged as a wait),
    reads no site, and is asked again next tick."""
    cache = Remembered(clock=Clock())
    api = FakeApi(range(1, 4))
    api.failing[LISTING] = RetryBudgetExhausted("gave up after 6 attempts")
    ticks: list[SiteZones] = []
    events = logged(lambda: ticks.append(read(api, cache)))
    ticks.append(read(api, cache))
    assert ticks == [SiteZones({}, (EVERY_SITE,))] * 2
    assert ticks[0].unread_for("3")
    assert api.asked == Counter({LISTING: 2})
    [warning] = [e for e in events if e["event"] == "site_zones_unavailable"]
    assert warning["effect"] == "waits"
    del api.failing[LISTING]
    assert read(api, cache) == SiteZones(every_zone(range(1, 4)))


def test_a_refused_listing_means_no_zones_and_is_asked_again() -> None:
    """A listing refused for good (credentials without REST v2) means no site has a zone,
    none unread; the listing is asked again by each tick (credentials can be given REST v2)."""
    cache = Remembered(clock=Clock())
    api = FakeApi(range(1, 4))
    api.failing[LISTING] = FatalApiError("Forbidden", status=403)
    assert read(api, cache) == SiteZones({}, ())
    assert read(api, cache, stream="pos_z_reports") == SiteZones({}, ())
    assert api.asked == Counter({LISTING: 2})


def test_every_page_of_the_listing_is_read() -> None:
    """An account of more sites than the listing's default page (10) has every site's zone
    read: the listing is followed page by page until its `totalcount`."""
    api = FakeApi(range(1, 136))
    assert read(api, Remembered()) == SiteZones(every_zone(range(1, 136)))
    assert [p for p in api.asked if p.startswith(LISTING)] == [
        LISTING,
        f"{LISTING}?start=10&num=100",
        f"{LISTING}?start=110&num=100",
    ]


def test_two_ticks_at_once_share_one_read() -> None:
    """Two streams' ticks that start together each list the sites but read each site's
    settings once: the second waits for the first's answers instead of asking again, and
    both get them."""
    cache = Remembered(clock=Clock())
    api = FakeApi(range(1, 5), latency=0.01)
    api.hold = threading.Event()
    results: dict[str, SiteZones] = {}

    def tick(stream: str) -> None:
        results[stream] = read(api, cache, stream=stream)

    threads = [threading.Thread(target=tick, args=(s,)) for s in ("orders", "pos_z_reports")]
    threads[0].start()
    while not api.asked[LISTING]:  # the first tick's listing is in flight, held
        time.sleep(0.005)
    threads[1].start()
    while api.asked[LISTING] < 2:  # the second tick's listing is in flight, held too
        time.sleep(0.005)
    api.hold.set()
    for thread in threads:
        thread.join(5)
    assert results["orders"] == results["pos_z_reports"] == SiteZones(every_zone(range(1, 5)))
    assert api.asked[LISTING] == 2
    assert api.site_reads() == 4


def test_no_lock_is_held_while_a_read_is_in_flight() -> None:
    """While one thread's read hangs, another thread's read of another key is answered."""
    cache = Remembered(clock=Clock())
    hold = threading.Event()

    def slow(keys: list[Any]) -> dict[Any, Answer]:
        hold.wait(5)
        return {k: Answer("slow") for k in keys}

    slow_thread = threading.Thread(target=cache.answers, args=(["a"], slow, "orders"))
    slow_thread.start()
    try:
        started = time.monotonic()
        got = cache.answers(["b"], lambda keys: {k: Answer("fast") for k in keys}, "orders")
        assert got == {"b": (Answer("fast"), True)}
        assert time.monotonic() - started < 1
    finally:
        hold.set()
        slow_thread.join(5)


def test_a_read_that_raises_leaves_nothing_behind() -> None:
    """An error the read lets out reaches the caller and is not remembered: the next call
    reads the key again rather than wait for a read that ended."""
    cache = Remembered(clock=Clock())

    def broken(_keys: list[Any]) -> dict[Any, Answer]:
        raise ValueError("not JSON")

    with pytest.raises(ValueError, match="not JSON"):
        cache.answers(["a"], broken, "orders")
    got = cache.answers(["a"], lambda keys: {k: Answer("ok") for k in keys}, "orders")
    assert got == {"a": (Answer("ok"), True)}


def test_ticks_with_the_simulator_ask_for_the_zones_once(
    sim: Simulator, sync: SyncFn, tmp_path: Path
) -> None:
    """Two real ticks of both streams that need site zones read each site's settings once
    in all; each tick of each stream lists the sites."""
    settings = settings_for(sim, tmp_path / "w.duckdb", streams=["pos_z_reports", "orders"])
    assert sync(settings).ok
    sites = len(sim.world.site_ids())
    assert (sim.requests_to(LISTING), sim.requests_to("/settings.json")) == (2, sites)
    assert sync(settings).ok
    assert (sim.requests_to(LISTING), sim.requests_to("/settings.json")) == (4, sites)
