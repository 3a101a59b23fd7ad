"""TimeWindows against an in-memory endpoint that obeys the POS z-report contract."""

from __future__ import annotations

import json
import random
from collections.abc import Mapping
from typing import Any

import pytest

from sitoo_sync.errors import StuckWindowError
from sitoo_sync.streams.cursors import TimeWindows, WindowContext

WINDOWS = TimeWindows(field="dateadded", lo_param="from", hi_param="to", cap=5, split_param="reg")


class Endpoint:
    """Ascending by time, inclusive bounds, capped, same-second order shuffled per call."""

    def __init__(self, records: list[dict[str, Any]], cap: int = 5) -> None:
        self.records = sorted(records, key=lambda r: r["dateadded"])
        self.cap = cap
        self.calls: list[dict[str, Any]] = []
        self.rng = random.Random(4)

    def __call__(self, params: Mapping[str, str | int]) -> list[Any]:
        self.calls.append(dict(params))
        lo = int(params.get("from", 0))
        hi = int(params.get("to", 10**12))
        reg = params.get("reg")
        hits = [
            r
            for r in self.records
            if lo <= r["dateadded"] <= hi and (reg is None or r["reg"] == reg)
        ]
        groups: dict[int, list[dict[str, Any]]] = {}
        for r in hits:
            groups.setdefault(r["dateadded"], []).append(r)
        out: list[dict[str, Any]] = []
        for t in sorted(groups):
            group = groups[t][:]
            self.rng.shuffle(group)
            out.extend(group)
        return out[: self.cap]


def rec(t: int, reg: str, n: int) -> dict[str, Any]:
    return {"dateadded": t, "reg": reg, "id": n}


def collect(
    endpoint: Endpoint, cursor: int | None = None, overlap: int = 0
) -> tuple[set[Any], int]:
    keys: set[Any] = set()
    last = -1
    ctx = WindowContext(
        fetch=endpoint,
        overlap=overlap,
        split_values=lambda param, page: {r[param] for r in endpoint.records},
    )
    for window in WINDOWS.windows(ctx, None if cursor is None else str(cursor)):
        keys |= {(r["reg"], r["id"]) for r in window.records}
        assert int(window.cursor) >= last, "the cursor never moves backwards"
        last = int(window.cursor)
    return keys, last


def test_pages_through_more_than_a_cap_without_loss() -> None:
    """Full pages continue from their newest second; every record is seen once at least."""
    records = [rec(100 + i // 2, "a", i) for i in range(23)]
    endpoint = Endpoint(records)
    keys, cursor = collect(endpoint)
    assert keys == {("a", i) for i in range(23)}
    assert cursor == 111
    assert endpoint.calls[0] == {"from": 0}


def test_a_second_that_fills_a_page_is_split_not_looped_or_skipped() -> None:
    """Twelve records in one second with a cap of five: split by register, all found."""
    records = [rec(50, f"r{i % 4}", i) for i in range(12)] + [rec(51, "r0", 99)]
    endpoint = Endpoint(records)
    keys, cursor = collect(endpoint)
    assert keys == {(r["reg"], r["id"]) for r in records}
    split_calls = [c for c in endpoint.calls if "reg" in c]
    assert {c["reg"] for c in split_calls} == {"r0", "r1", "r2", "r3"}
    assert all(c["from"] == c["to"] == 50 for c in split_calls)
    assert cursor == 51
    assert len(endpoint.calls) < 10


def test_cursor_stays_on_the_crowded_second_until_its_last_part_is_loaded() -> None:
    """Mid-split windows keep the cursor on the second, so a crash there re-reads it."""
    records = [rec(50, f"r{i % 3}", i) for i in range(9)]
    endpoint = Endpoint(records)
    ctx = WindowContext(fetch=endpoint, split_values=lambda param, page: {"r0", "r1", "r2"})
    cursors = [int(w.cursor) for w in WINDOWS.windows(ctx, None)]
    assert cursors[:-2] == [50, 50]
    assert cursors[-2:] == [51, 51]


def test_a_register_that_alone_fills_a_second_stops_with_a_clear_error() -> None:
    """When even one split value fills a page, the strategy refuses to skip data."""
    endpoint = Endpoint([rec(50, "r0", i) for i in range(6)])
    with pytest.raises(StuckWindowError, match="reg=r0"):
        collect(endpoint)


def test_overlap_rereads_before_the_cursor_but_never_moves_it_back() -> None:
    """The next tick starts overlap seconds early and finds a late arrival there."""
    endpoint = Endpoint([rec(1000, "a", 1), rec(995, "a", 2)])
    keys, cursor = collect(endpoint, cursor=1000, overlap=10)
    assert endpoint.calls == [{"from": 990}]
    assert keys == {("a", 1), ("a", 2)}
    assert cursor == 1000


def test_an_empty_endpoint_keeps_the_cursor() -> None:
    """No data: one request and the cursor where it was."""
    endpoint = Endpoint([])
    keys, cursor = collect(endpoint, cursor=500, overlap=60)
    assert keys == set()
    assert cursor == 500
    assert len(endpoint.calls) == 1


def test_random_worlds_are_read_completely() -> None:
    """Many random worlds with crowded seconds: every record is always found, in few calls."""
    rng = random.Random(11)
    for _ in range(200):
        records = [
            rec(rng.randint(0, 8), f"r{rng.randint(0, 5)}", i) for i in range(rng.randint(0, 40))
        ]
        # one register holding more than a page in one second cannot exist in this world
        per: dict[tuple[int, str], int] = {}
        for r in records:
            per[(r["dateadded"], r["reg"])] = per.get((r["dateadded"], r["reg"]), 0) + 1
        records = [r for r in records if per[(r["dateadded"], r["reg"])] < 5]
        endpoint = Endpoint(records)
        keys, _ = collect(endpoint)
        assert keys == {(r["reg"], r["id"]) for r in records}
        assert len(endpoint.calls) <= 10 + 6 * 9


def test_a_bare_array_listing_is_read_once() -> None:
    """A listing answered as a bare array by an endpoint that does not page (the same array
    whatever `start` says) is one window: the repeated page ends the walk instead of being
    read again and again."""
    from sitoo_sync.streams.cursors import OffsetPages

    asked: list[Mapping[str, str | int]] = []

    def fetch_raw(params: Mapping[str, str | int]) -> Any:
        asked.append(dict(params))
        return [{"id": 1}, {"id": 2}]

    windows = list(OffsetPages().windows(WindowContext(fetch_raw=fetch_raw), None))
    assert [len(w.records) for w in windows] == [2]
    assert [a["start"] for a in asked] == [0, 2]  # the second answer repeats the first


def test_a_time_in_milliseconds_does_not_move_the_cursor() -> None:
    """A record whose time is not Unix seconds (it is rejected) does not become the cursor:
    the stored cursor stays the newest second of the good records, on a full page too."""
    second = 1_700_000_000
    page = [rec(second + i, "a", i) for i in range(4)] + [rec(second * 1000, "a", 9)]
    calls: list[Mapping[str, str | int]] = []

    def fetch(params: Mapping[str, str | int]) -> list[Any]:
        calls.append(dict(params))
        lo = int(params["from"])
        return [r for r in page if r["dateadded"] >= lo] if len(calls) == 1 else []

    ctx = WindowContext(fetch=fetch, split_values=lambda param, page: {"a"})
    cursors = [int(w.cursor) for w in WINDOWS.windows(ctx, str(second - 10))]
    assert cursors[-1] == second + 3
    assert all(int(c["from"]) <= second + 3 for c in calls)


def test_a_journal_entry_in_milliseconds_does_not_move_the_journal_cursor() -> None:
    """The journal's cursor (typed entries or plain dicts alike) ignores a dateadded in
    milliseconds: the next tick asks from the newest second loaded, not the year 58000."""
    from sitoo_sync.normalize.journal_pages import decode_page
    from sitoo_sync.streams.journal_entries import JOURNAL_ENTRIES

    for extra in ({}, {"surprise": 1}):  # typed entries, then dicts (an unknown field)
        entries = [
            {"id": 1, "registerid": "{R}", "type": "login", "dateadded": 1_700_000_000, **extra},
            {"id": 2, "registerid": "{R}", "type": "login", "dateadded": 1_700_000_005_000},
        ]
        page = decode_page(json.dumps({"items": entries}).encode())

        def fetch_raw(_params: Mapping[str, str | int], page: Any = page) -> Any:
            return page

        ctx = WindowContext(fetch_raw=fetch_raw, partition="{R}")
        cursors = [w.cursor for w in JOURNAL_ENTRIES.cursor.windows(ctx, "1699999000")]
        assert cursors == ["1700000000"]


def test_an_item_stamped_years_ahead_loads_but_leaves_the_cursor_at_the_clock() -> None:
    """A z-report whose dateadded lies years ahead (a server clock gone wrong) is loaded,
    but the cursor stops at the clock plus the overlap: taken as the cursor, it would have
    every later tick ask from that year, and every report added meanwhile would be missed."""
    import time

    now = int(time.time())
    endpoint = Endpoint([rec(now - 100, "a", 1), rec(now - 90, "a", 2), rec(now + 10**8, "a", 3)])
    ctx = WindowContext(fetch=endpoint, overlap=600, split_values=lambda param, page: {"a"})
    first = list(WINDOWS.windows(ctx, None))
    assert {r["id"] for w in first for r in w.records} == {1, 2, 3}
    cursor = first[-1].cursor
    assert int(cursor) <= int(time.time()) + 600
    endpoint.records.append(rec(int(time.time()) + 1, "a", 4))  # added after the first tick
    endpoint.records.sort(key=lambda r: r["dateadded"])
    later = list(WINDOWS.windows(ctx, cursor))
    assert 4 in {r["id"] for w in later for r in w.records}
