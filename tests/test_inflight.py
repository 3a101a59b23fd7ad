"""Memory is bounded by bytes in flight: the tick's buffer of pages and rows, by design."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sitoo_sync import sync as sync_module
from sitoo_sync.inflight import FIRST_PAGE, Buffer, ByteBudget
from sitoo_sync.normalize.journal_entries import JOURNAL_ENTRIES
from sitoo_sync.partition import prefetch
from sitoo_sync.simulator import SimConfig, Simulator
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
