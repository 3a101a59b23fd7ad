"""The keyset strategy's rules, against an in-memory endpoint: no HTTP, no warehouse."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from typing import Any

import pytest

from sitoo_sync.errors import StuckWindowError
from sitoo_sync.streams.cursors import Window, WindowContext
from sitoo_sync.streams.cursors_keyset import Keyset


class Endpoint:
    """Records by id with `state`, answering orderidfrom/sort/num/start and orderid=;
    `bare`: as a bare array (no totalcount), `cap` caps `num`."""

    def __init__(
        self,
        ids: list[int],
        *,
        cap: int = 1000,
        ascending: bool = True,
        bounded: bool = True,
        bare: bool = False,
    ) -> None:
        self.records: dict[int, dict[str, Any]] = {
            i: {"orderid": i, "orderdate": 1000 + i, "state": "done"} for i in ids
        }
        self.cap = cap
        self.ascending = ascending
        self.bounded = bounded
        self.bare = bare
        self.asked: list[Mapping[str, Any]] = []

    def __call__(self, params: Mapping[str, str | int]) -> Any:
        self.asked.append(dict(params))
        rows = sorted(self.records.values(), key=lambda r: r["orderid"])
        if "orderid" in params:
            wanted = {int(i) for i in str(params["orderid"]).split(",")}
            rows = [r for r in rows if r["orderid"] in wanted]
        if "orderidfrom" in params and self.bounded:
            rows = [r for r in rows if r["orderid"] >= int(params["orderidfrom"])]
        if not self.ascending:
            rows.reverse()
        start = int(params.get("start", 0))
        num = min(int(params.get("num", 10)), self.cap)
        page = [dict(r) for r in rows[start : start + num]]
        return page if self.bare else {"totalcount": len(rows), "items": page}


def strategy(**changes: Any) -> Keyset:
    values: dict[str, Any] = {
        "id_field": "orderid",
        "from_param": "orderidfrom",
        "sort": "orderid",
        "time_field": "orderdate",
        "time_from_param": "orderdatefrom",
        "ids_param": "orderid",
        "changeable": lambda r: r.get("state") == "open",
        "page_size": 3,
    }
    values.update(changes)
    return Keyset(**values)


def run(
    keyset: Keyset, endpoint: Callable[[Mapping[str, Any]], Any], stored: str | None
) -> list[tuple[list[int], str]]:
    """(ids, cursor) of each window of one tick against `endpoint`."""
    ctx = WindowContext(fetch_raw=endpoint)
    return [([r["orderid"] for r in w.records], w.cursor) for w in keyset.windows(ctx, stored)]


def test_pages_walk_by_id_and_each_cursor_covers_only_what_was_loaded() -> None:
    """Pages ask from the last id + 1 at start 0, and each window's cursor names its own
    highest id, so a crash after any window resumes exactly there."""
    endpoint = Endpoint(list(range(1, 8)))
    windows = run(strategy(), endpoint, None)
    assert [ids for ids, _ in windows] == [[1, 2, 3], [4, 5, 6], [7]]
    assert [json.loads(c)["after"] for _, c in windows] == [3, 6, 7]
    assert [p["orderidfrom"] for p in endpoint.asked] == [0, 4, 7]
    assert {p["start"] for p in endpoint.asked} == {0}


def test_open_records_are_read_again_until_final_and_the_set_is_bounded() -> None:
    """Open records are remembered, read again by id next tick and forgotten once final;
    past `max_changeable` only the newest ids are kept."""
    endpoint = Endpoint(list(range(1, 11)))
    for i in (2, 4, 6, 8):
        endpoint.records[i]["state"] = "open"
    windows = run(strategy(max_changeable=3), endpoint, None)
    cursor = windows[-1][1]
    assert json.loads(cursor)["open"] == [4, 6, 8]  # 2 was dropped: the oldest
    endpoint.records[4]["state"] = "done"
    endpoint.asked.clear()
    again = run(strategy(max_changeable=3), endpoint, cursor)
    assert again[0][0] == [4, 6, 8]  # re-read by id first
    assert endpoint.asked[0]["orderid"] == "4,6,8"
    assert json.loads(again[-1][1])["open"] == [6, 8]


def test_more_open_records_than_a_tick_reads_are_read_in_turns() -> None:
    """Past `reread_per_tick` each tick reads the next open ids after where the last one
    stopped, wrapping around: every open record is read again within a round of ticks and
    none is forgotten, and one that closes is forgotten when its turn comes."""
    endpoint = Endpoint(list(range(1, 21)))
    opened = [2, 4, 6, 8, 10]
    for i in opened:
        endpoint.records[i]["state"] = "open"
    keyset = strategy(reread_per_tick=2, reread_chunk=1)
    cursor = run(keyset, endpoint, None)[-1][1]
    assert json.loads(cursor)["open"] == opened
    reread: list[list[int]] = []
    for _tick in range(3):
        endpoint.asked.clear()
        windows = run(keyset, endpoint, cursor)
        reread.append([int(p["orderid"]) for p in endpoint.asked if "orderid" in p])
        cursor = windows[-1][1]
    assert reread == [[2, 4], [6, 8], [10, 2]]
    endpoint.records[4]["state"] = "done"
    endpoint.asked.clear()
    cursor = run(keyset, endpoint, cursor)[-1][1]
    assert [int(p["orderid"]) for p in endpoint.asked if "orderid" in p] == [4, 6]
    assert json.loads(cursor)["open"] == [2, 6, 8, 10]


def test_a_crash_amid_a_turn_resumes_after_the_last_chunk_committed() -> None:
    """Each re-read window's cursor says where the turn got to, so a tick stopped after any
    of them goes on from the next open id rather than from the lowest again."""
    endpoint = Endpoint(list(range(1, 21)))
    for i in (2, 4, 6, 8, 10):
        endpoint.records[i]["state"] = "open"
    keyset = strategy(reread_per_tick=4, reread_chunk=2)
    stored = run(keyset, endpoint, None)[-1][1]
    first = run(keyset, endpoint, stored)[0]  # the first re-read window (2, 4), then a crash
    assert first[0] == [2, 4]
    endpoint.asked.clear()
    run(keyset, endpoint, first[1])
    assert [p["orderid"] for p in endpoint.asked if "orderid" in p] == ["6,8", "10,2"]


def test_open_records_that_fit_in_a_tick_are_all_read_and_no_turn_is_kept() -> None:
    """When every open id fits in `reread_per_tick`, each tick reads them all from the
    lowest and the cursor holds no place to go on from."""
    endpoint = Endpoint(list(range(1, 11)))
    for i in (3, 5):
        endpoint.records[i]["state"] = "open"
    stored = json.dumps({"after": 10, "newest": 1010, "open": [3, 5], "next": 3})
    windows = run(strategy(reread_per_tick=2), endpoint, stored)
    assert windows[0][0] == [3, 5]
    assert "next" not in json.loads(windows[-1][1])


def test_a_reread_pages_when_the_server_caps_num() -> None:
    """A server that serves fewer records than asked for an id list is paged to the end."""
    endpoint = Endpoint(list(range(1, 11)), cap=2)
    for i in (1, 2, 3, 5, 7):
        endpoint.records[i]["state"] = "open"
    stored = json.dumps({"after": 10, "newest": 1010, "open": [1, 2, 3, 5, 7]})
    windows = run(strategy(), endpoint, stored)
    assert windows[0][0] == [1, 2, 3, 5, 7]


def test_the_trailing_window_reads_ids_below_the_cursor_again() -> None:
    """`trailing_ids` moves every tick's first page that many ids below the cursor."""
    endpoint = Endpoint(list(range(1, 11)))
    stored = json.dumps({"after": 10, "newest": 1010, "open": []})
    windows = run(strategy(trailing_ids=4), endpoint, stored)
    assert [ids for ids, _ in windows] == [[7, 8, 9], [10]]


def test_an_endpoint_that_ignores_sort_stops_the_walk() -> None:
    """Descending ids would make the keyset skip records: the walk refuses them."""
    endpoint = Endpoint(list(range(1, 8)), ascending=False)
    with pytest.raises(StuckWindowError):
        run(strategy(), endpoint, None)


def test_an_endpoint_that_ignores_the_lower_bound_stops_the_walk() -> None:
    """A page that starts below `orderidfrom` would be asked for forever: the walk refuses."""
    endpoint = Endpoint(list(range(1, 8)), bounded=False)
    with pytest.raises(StuckWindowError):
        run(strategy(), endpoint, None)


def test_a_time_in_milliseconds_does_not_make_the_lag_look_nil() -> None:
    """A record whose time is not Unix seconds (it is rejected) leaves `newest`, and so the
    reported lag, to the records that have one."""
    endpoint = Endpoint([1, 2])
    endpoint.records[2]["orderdate"] = 1_700_000_000_000
    _ids, cursor = run(strategy(), endpoint, None)[-1]
    assert json.loads(cursor)["newest"] == endpoint.records[1]["orderdate"]


def test_ids_sent_as_digit_strings_walk_as_the_normalizer_reads_them() -> None:
    """An endpoint that sends its ids as digit strings (which the normalizer loads as
    integers) is walked page after page, its open records remembered, instead of the walk
    ending after the first page with the cursor unmoved."""
    endpoint = Endpoint(list(range(1, 8)))
    endpoint.records[5]["state"] = "open"

    def as_text(params: Mapping[str, str | int]) -> Any:
        page = endpoint(params)
        return {**page, "items": [{**r, "orderid": str(r["orderid"])} for r in page["items"]]}

    keyset = strategy()
    windows = [
        (list(w.records), w.cursor) for w in keyset.windows(WindowContext(fetch_raw=as_text), None)
    ]
    assert [len(records) for records, _ in windows] == [3, 3, 1]
    assert (json.loads(windows[-1][1])["after"], json.loads(windows[-1][1])["open"]) == (7, [5])


def test_an_endpoint_that_ignores_the_id_filter_stops_the_reread() -> None:
    """A re-read by id answered with other ids (the filter ignored) would forget the open
    records it asked for without having read them: the re-read refuses, and the open ids
    stay in the stored cursor."""
    endpoint = Endpoint(list(range(1, 30)))
    for i in (3, 5):
        endpoint.records[i]["state"] = "open"

    def unfiltered(params: Mapping[str, str | int]) -> Any:
        return endpoint({k: v for k, v in params.items() if k != "orderid"})

    stored = json.dumps({"after": 29, "newest": 1029, "open": [3, 5]})
    with pytest.raises(StuckWindowError, match="orderid"):
        run(strategy(), unfiltered, stored)


@pytest.mark.parametrize("stored", ["garbage", '{"open": 5}', "[1, 2]", "null"])
def test_an_unreadable_cursor_fails_clearly_and_a_reset_replaces_it(stored: str) -> None:
    """A stored cursor the keyset cannot read (not JSON, not an object, open ids not a list)
    fails the partition with StuckWindowError, a one-line error rather than a traceback, and
    `reset --since` (resume_from with it as the previous cursor) still writes a fresh one."""
    with pytest.raises(StuckWindowError, match="unreadable keyset cursor"):
        run(strategy(), Endpoint([1, 2]), stored)
    assert json.loads(strategy().resume_from(date(2026, 1, 2), stored)) == {"from": 1767312000}


def test_an_ignored_id_filter_still_lets_new_records_load_before_it_fails() -> None:
    """When the re-read by id is answered with other ids, the walk still loads the records
    that are new, with a cursor that keeps the open ids, before the partition fails: new
    orders do not stall behind open ones that cannot be read again."""
    endpoint = Endpoint(list(range(1, 12)))
    for i in (3, 5):
        endpoint.records[i]["state"] = "open"

    def unfiltered(params: Mapping[str, str | int]) -> Any:
        return endpoint({k: v for k, v in params.items() if k != "orderid"})

    ctx = WindowContext(fetch_raw=unfiltered)
    stored = json.dumps({"after": 8, "newest": 1008, "open": [3, 5]})
    windows: list[Window] = []
    with pytest.raises(StuckWindowError, match="orderid"):
        windows.extend(strategy().windows(ctx, stored))  # keeps those yielded before
    loaded = {r["orderid"] for w in windows for r in w.records}
    assert {9, 10, 11} <= loaded
    last = json.loads(windows[-1].cursor)
    assert (last["after"], last["open"]) == (11, [3, 5])


def test_an_id_that_only_looks_like_digits_is_a_bad_record_not_a_crash() -> None:
    """An id such as "²" (str.isdigit() says yes, int() says no) is an unusable id: the
    normalizer rejects its record and the walk steps over it, instead of either raising
    ValueError (a traceback for the whole tick)."""
    from sitoo_sync.errors import RecordRejected
    from sitoo_sync.normalize.values import to_int

    with pytest.raises(RecordRejected):
        to_int("²")
    page = [{"orderid": 1}, {"orderid": "²"}, {"orderid": 3}]
    ctx = WindowContext(fetch_raw=lambda _params: {"totalcount": 3, "items": page})
    (window,) = strategy().windows(ctx, None)
    assert json.loads(window.cursor)["after"] == 3


def test_a_newest_time_an_older_version_stored_in_milliseconds_is_forgotten() -> None:
    """A cursor whose `newest` an older version took from a time in milliseconds (the lag
    then read nil for good, however far behind the walk was) is read without it: the
    next tick's cursor holds the newest real time, and the lag says how old it is."""
    endpoint = Endpoint([1, 2, 3])
    stored = json.dumps({"after": 2, "newest": 1_700_000_000_000, "open": []})
    _ids, cursor = run(strategy(), endpoint, stored)[-1]
    assert json.loads(cursor)["newest"] == endpoint.records[3]["orderdate"]


class _IgnoresStart(Endpoint):
    """An endpoint that caps `num` and ignores `start`: every request answers from the first
    matching record."""

    def __call__(self, params: Mapping[str, str | int]) -> Any:
        return super().__call__({**params, "start": 0})


def test_a_reread_loads_each_record_once_when_the_server_ignores_start() -> None:
    """A server that caps `num` below the chunk and ignores `start` still gives every open
    record exactly once: the ids not answered yet are asked for again, never by offset."""
    endpoint = _IgnoresStart(list(range(1, 11)), cap=2)
    opened = [1, 2, 3, 5, 7]
    for i in opened:
        endpoint.records[i]["state"] = "open"
    stored = json.dumps({"after": 10, "newest": 1010, "open": opened})
    windows = run(strategy(), endpoint, stored)
    assert windows[0][0] == opened
    assert json.loads(windows[0][1])["open"] == opened


def test_a_reread_stops_at_ids_the_server_no_longer_has() -> None:
    """Open ids the server no longer answers (deleted) leave the open set, and the re-read
    ends once the server's count for the ids asked is answered."""
    endpoint = _IgnoresStart(list(range(1, 11)), cap=2)
    for i in (1, 2, 3):
        endpoint.records[i]["state"] = "open"
    stored = json.dumps({"after": 10, "newest": 1010, "open": [1, 2, 3, 4]})
    del endpoint.records[4]
    windows = run(strategy(), endpoint, stored)
    assert windows[0][0] == [1, 2, 3]
    assert json.loads(windows[0][1])["open"] == [1, 2, 3]
    assert [a["orderid"] for a in endpoint.asked if "orderid" in a] == ["1,2,3,4", "3,4"]


def test_a_record_stamped_years_ahead_does_not_make_the_lag_look_nil() -> None:
    """A record whose time a wrong clock put years ahead loads, but does not become the
    newest time: the lag keeps measuring the records whose times are plausible."""
    endpoint = Endpoint([1, 2, 3])
    endpoint.records[3]["orderdate"] = 4_102_444_800  # 2100
    now = datetime.fromtimestamp(1100, UTC)
    ctx = WindowContext(fetch_raw=endpoint, now=now)
    windows = list(strategy().windows(ctx, None))
    assert [r["orderid"] for w in windows for r in w.records] == [1, 2, 3]
    assert json.loads(windows[-1].cursor)["newest"] == 1002
    assert strategy().lag_seconds(windows[-1].cursor, now) == 98.0
