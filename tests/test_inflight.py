"""Memory is bounded by bytes in flight: the tick's buffer of pages and rows, by design."""

from __future__ import annotations

import gc
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sitoo_sync import sync as sync_module
from sitoo_sync.inflight import FIRST_PAGE, Buffer, ByteBudget
from sitoo_sync.normalize.journal_entries import JOURNAL_ENTRIES
from sitoo_sync.partition import prefetch
from sitoo_sync.simulator import SimConfig, Simulator
from sitoo_sync.streams.cursors import WindowContext
from sitoo_sync.streams.journal_entries import JOURNAL_ENTRIES as JOURNAL_STREAM
from sitoo_sync.turns import Joining
from tests.conftest import SyncFn
from tests.support import assert_each_entry_once, target_settings
from tests.targets import target_for


def test_a_hold_that_does_not_fit_waits_until_bytes_are_given_back() -> None:
    """acquire blocks while the bytes held plus the new ones pass the limit, and goes on
    as soon as enough are released; the most ever held stays within the limit."""
    budget = ByteBudget(100)
    assert budget.acquire(60)
    got = threading.Event()

    def second() -> None:
        budget.acquire(60)
        got.set()

    waiter = threading.Thread(target=second)
    waiter.start()
    assert not got.wait(0.3)  # 60 + 60 > 100: it waits
    budget.release(60)
    assert got.wait(2)
    waiter.join()
    assert budget.used == 60
    assert budget.peak == 60
    assert budget.waits == 1


def test_a_page_larger_than_the_budget_goes_alone_and_a_cancelled_wait_holds_nothing() -> None:
    """With nothing held, even an oversize hold is granted (no deadlock on a huge page); a
    waiter whose tick is stopping gives up without holding anything."""
    budget = ByteBudget(100)
    assert budget.acquire(250)
    stopping = threading.Event()
    stopping.set()
    assert budget.acquire(10, stopping) is False
    assert budget.used == 250
    budget.release(250)
    assert budget.used == 0


def test_grow_turns_an_estimate_into_the_real_size() -> None:
    """A hold taken before a request at the estimate becomes the page's real size, and the
    largest size seen is the next estimate."""
    buffer = Buffer(1)
    first = buffer.page_estimate()
    buffer.pages.acquire(first)
    buffer.pages.grow(first, 1000)
    assert buffer.pages.used == 1000
    assert buffer.page_estimate() == FIRST_PAGE  # at least that
    buffer.pages.release(1000)  # its window was normalized
    buffer.pages.acquire(first)
    buffer.pages.grow(first, FIRST_PAGE * 2)
    assert buffer.page_estimate() == FIRST_PAGE * 2


def _until(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    """Wait for `condition` (another thread's progress), however loaded the host."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the other thread never got there"
        time.sleep(0.01)


def test_a_page_that_grows_past_the_limit_waits_and_new_requests_wait_behind_it() -> None:
    """A page larger than its hold waits to be parsed until its real size fits; meanwhile a
    new request waits too (it would only add a page that cannot be parsed), and both go on
    once bytes are given back."""
    budget = ByteBudget(100)
    budget.acquire(50)  # a parsed page, waiting for its window's normalizing
    budget.acquire(20)  # a request in flight
    grown, started = threading.Event(), threading.Event()

    def arrive() -> None:
        budget.grow(20, 80)  # its page is 80: 50 + 80 > 100
        grown.set()

    def request() -> None:
        budget.acquire(10)  # would fit (90), but a page waits to grow
        started.set()

    grower = threading.Thread(target=arrive)
    grower.start()
    _until(lambda: budget.waits == 1)  # the page waits to grow
    requester = threading.Thread(target=request)
    requester.start()
    _until(lambda: budget.waits == 2)  # and the request behind it
    assert not grown.is_set()
    assert not started.is_set()
    budget.release(50)
    assert grown.wait(10)
    assert started.wait(10)
    grower.join()
    requester.join()
    assert budget.used == 90
    assert budget.peak == 90


def test_when_every_byte_held_waits_to_grow_one_page_goes_on() -> None:
    """Fetchers that all wait to grow hold every byte, so none would be given back: one of
    them goes on (passing the limit by its growth alone) and the other waits for it."""
    budget = ByteBudget(100)
    budget.acquire(40)
    budget.acquire(40)
    done: list[str] = []

    def arrive(name: str) -> None:
        budget.grow(40, 70)
        done.append(name)

    threads = [threading.Thread(target=arrive, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    _until(lambda: len(done) == 1)
    time.sleep(0.2)  # time enough for the other to go on too, were it let
    assert len(done) == 1  # exactly one went on
    assert budget.used == 110  # 40 + 70: past the limit by that one growth
    budget.release(70)  # its window was normalized
    for t in threads:
        t.join(10)
    assert len(done) == 2
    assert budget.used == 70
    assert budget.peak == 110


def test_prefetch_gives_back_what_each_item_held_when_the_consumer_moves_on() -> None:
    """Each item's bytes are released once the consumer asks for the next one, and what
    was handed over but never taken is released when the consumer leaves."""
    budget = ByteBudget(10_000)
    sizes = iter([100, 200, 300, 400])

    def source() -> Any:
        for n in range(4):
            budget.acquire(100 * (n + 1))  # as a fetch does, before the request
            yield n

    items = prefetch(source(), budget=budget, size=lambda _item: next(sizes))
    assert next(items) == 0
    time.sleep(0.2)  # the producer has fetched item 1 and waits to hand over item 2
    assert next(items) == 1
    items.close()
    time.sleep(0.2)
    assert budget.used == 0


class _Page(list[Any]):
    """A page of records that a weak reference can follow (a list cannot)."""


def test_a_page_taken_is_not_kept_alive_while_the_next_is_fetched() -> None:
    """Once the consumer has taken a page and asks for the next, neither the producer thread
    nor the generator keeps the page: the budget has it back, so nothing may hold it."""
    kept: list[bool] = []
    previous: list[weakref.ref[_Page]] = []
    taken = threading.Event()  # the consumer is done with the last page and asks for more

    def held_on(refs: list[weakref.ref[_Page]]) -> bool:
        """Whether a page of `refs` is still alive a second on (the consumer's thread may
        need a moment to reach its next request after saying it will)."""
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            gc.collect()  # only references keep a page: no cycle waits for the collector
            if all(ref() is None for ref in refs):
                return False
            time.sleep(0.01)
        return True

    def source() -> Iterator[_Page]:
        for n in range(4):
            if previous:  # fetching page n while the consumer waits for it
                assert taken.wait(5)
                taken.clear()
                kept.append(held_on(previous))
            page = _Page([n])
            previous.append(weakref.ref(page))
            yield page
            del page

    for page in prefetch(source(), budget=ByteBudget(10_000), size=lambda _page: 100):
        assert page[0] in range(4)
        del page  # the consumer is done with it
        taken.set()
    assert kept == [False] * 3  # fetches 1, 2 and 3 found every page before them gone


def test_a_journal_page_lives_in_its_window_alone_while_the_next_page_is_fetched() -> None:
    """The cursor that pages the journals keeps neither the last response nor its records
    once their window is handed on: the next request finds them gone."""

    def responses() -> Iterator[dict[str, Any]]:
        yield {"items": _Page([{"dateadded": 10}]), "next": "t"}
        yield {"items": _Page()}

    pages = responses()
    refs: list[weakref.ref[_Page]] = []
    seen_alive: list[bool] = []

    def fetch_raw(_params: Any) -> Any:
        gc.collect()
        seen_alive.extend(ref() is not None for ref in refs)
        payload = next(pages)
        refs.append(weakref.ref(payload["items"]))
        return payload

    ctx = WindowContext(fetch_raw=fetch_raw, partition="1")
    windows = JOURNAL_STREAM.cursor.windows(ctx, None)
    first = next(windows)
    assert first.cursor == "10"
    del first
    assert [w.records for w in windows] == [[]]
    assert seen_alive == [False]


def test_the_normalizing_thread_keeps_no_window_it_normalized_together() -> None:
    """Windows normalized in one call on the tick's normalizing thread are not held by that
    thread while it waits for the next ones."""
    refs: list[weakref.ref[_Page]] = []
    release = threading.Event()

    def one(records: list[Any], _context: Any) -> int:
        release.wait(5)
        return len(records)

    def many(windows: Any) -> list[int]:
        return [len(records) for records, _context in windows]

    turns = Joining()
    results: list[int] = []

    def hand_over(n: int) -> None:
        page = _Page(range(n))
        refs.append(weakref.ref(page))
        results.append(turns.normalize(one, many, page, {}))

    threads = [threading.Thread(target=hand_over, args=(n,)) for n in (1, 2, 3)]
    for t in threads:
        t.start()
        time.sleep(0.05)  # the first blocks the thread in `one`; the others wait, to join
    release.set()
    for t in threads:
        t.join()
    assert sorted(results) == [1, 2, 3]
    gc.collect()
    assert [ref() for ref in refs] == [None, None, None]
    turns.close()


def _backfill_with_buffer(
    megabytes: float,
    config: SimConfig,
    target_name: str,
    tmp_path: Path,
    sync: SyncFn,
    monkeypatch: pytest.MonkeyPatch,
    *,
    latency: float = 0.0,
) -> Buffer:
    """A journal backfill at concurrency 16 whose tick gets a `megabytes` buffer, which
    loads every entry exactly once: the buffer, to look at what it held."""
    buffers: list[Buffer] = []

    def small_buffer(_megabytes: float) -> Buffer:
        buffer = Buffer(megabytes)
        buffers.append(buffer)
        return buffer

    monkeypatch.setattr(sync_module, "Buffer", small_buffer)
    with Simulator.create(config) as sim, target_for(target_name, tmp_path) as target:
        sim.faults.latency = latency
        settings = target_settings(sim, target, streams=["journal_entries"], concurrency=16)
        report = sync(settings)
        assert report.ok, [r.error for r in report.results if r.error]
        assert_each_entry_once(sim, target.rows(JOURNAL_ENTRIES))
    [buffer] = buffers
    return buffer


@pytest.mark.slow
@pytest.mark.parametrize("target_name", ["duckdb", "postgres"])
def test_the_pages_in_flight_never_exceed_the_byte_budget(
    target_name: str, tmp_path: Path, sync: SyncFn, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A journal backfill at concurrency 16 with a buffer of a few pages: the budget
    binds (fetchers wait), the pages held never pass it, everything held is given back, and
    every entry is loaded exactly once."""
    config = SimConfig(seed=41, days=3, registers_per_store=4)
    # 1 MiB for pages: a few of this simulator's pages.
    buffer = _backfill_with_buffer(
        2, config, target_name, tmp_path, sync, monkeypatch, latency=0.01
    )
    pages = buffer.pages
    assert pages.waits > 0, "the budget never bound: the test would prove nothing"
    assert pages.largest > 0
    # A request holds FIRST_PAGE before its page is seen; only a page larger than that
    # (this simulator's pages are about that size, how large depends on the hour the
    # test runs) grows its hold, and only one such growth may pass the limit.
    assert pages.peak <= pages.limit + max(0, pages.largest - FIRST_PAGE)
    assert pages.used == 0
    assert buffer.rows.used == 0


@pytest.mark.slow
def test_pages_larger_than_a_first_hold_never_pass_the_budget_by_more_than_one_page(
    tmp_path: Path, sync: SyncFn, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A backfill of 1,000-entry pages (each parsed far larger than what a request holds
    before any page was seen) at concurrency 16: the first requests' pages wait to be
    parsed until they fit, so the pages held pass their half by at most one page, and
    every entry is loaded once."""
    config = SimConfig(seed=43, days=1, registers_per_store=4, lazy_journal_size=40_000)
    # 4 MiB for pages: about three parsed pages here.
    buffer = _backfill_with_buffer(8, config, "duckdb", tmp_path, sync, monkeypatch)
    pages = buffer.pages
    assert pages.largest > 4 * FIRST_PAGE, "pages this small would prove nothing"
    assert pages.waits > 0
    assert pages.peak <= pages.limit + pages.largest
    assert pages.used == 0
