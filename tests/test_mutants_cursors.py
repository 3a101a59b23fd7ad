"""Cursor behaviour a hand-made mutation showed the suite did not pin down."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sitoo_sync.streams.cursors import OffsetPages, TimeWindows, WindowContext
from tests.test_journal_review import T0, entry, journal_failures, stored_ids, tick


def test_a_journal_entry_added_late_within_the_overlap_loads_on_the_next_tick(
    tmp_path: Path,
) -> None:
    """Every journal tick starts SITOO_OVERLAP_SECONDS before the stored cursor: an entry
    whose `dateadded` is older than the newest loaded (it became visible late) is found."""
    entries: list[dict[str, Any]] = [entry(i, T0 + i * 10) for i in range(1, 6)]
    asked: list[dict[str, str]] = []

    def journal(params: Mapping[str, str]) -> bytes:
        lo = int(params["date_from"])
        return json.dumps({"items": [e for e in entries if e["dateadded"] >= lo]}).encode()

    db = tmp_path / "w.duckdb"
    assert journal_failures(tick(db, journal)) == []
    assert stored_ids(db) == [1, 2, 3, 4, 5]
    entries.append(entry(6, T0 + 25))  # added before the cursor (T0 + 50), seen only now
    assert journal_failures(tick(db, journal, asked)) == []
    assert stored_ids(db) == [1, 2, 3, 4, 5, 6]
    assert int(asked[0]["date_from"]) == T0 + 50 - 600  # the default overlap


def test_a_listing_whose_count_moves_between_pages_is_listed_again() -> None:
    """A record deleted between two pages of an offset listing shifts a record still there
    back into the page read already: the listing runs again, so every record that exists
    is seen (and none is marked missing)."""
    records = [{"id": i} for i in range(1, 8)]
    served = 0

    def fetch_raw(params: Mapping[str, str | int]) -> Any:
        nonlocal served
        served += 1
        if served == 2:  # record 1 goes after the first page was read
            records.pop(0)
        start, num = int(params["start"]), int(params["num"])
        return {"totalcount": len(records), "items": records[start : start + num]}

    windows = OffsetPages(page_size=3).windows(WindowContext(fetch_raw=fetch_raw), None)
    seen = {r["id"] for w in windows for r in w.records}
    assert seen >= {r["id"] for r in records}


def test_an_item_of_the_newest_second_that_changed_on_the_reread_is_yielded_again() -> None:
    """A full page is read again from its newest second: an item of that second that comes
    back identical is skipped, but one that changed meanwhile is yielded (its new version
    loads instead of waiting for the next tick)."""
    windows = TimeWindows(field="dateadded", lo_param="from", hi_param="to", cap=5, split_param="r")
    first: list[dict[str, Any]] = [
        {"dateadded": 100 + min(i, 2), "r": "a", "id": i, "v": 0} for i in range(5)
    ]
    changed: dict[str, Any] = {**first[4], "v": 1}
    calls = 0

    def fetch(params: Mapping[str, str | int]) -> list[Any]:
        nonlocal calls
        calls += 1
        if calls == 1:
            return first
        return [r for r in [*first[2:4], changed] if r["dateadded"] >= int(params["from"])]

    ctx = WindowContext(fetch=fetch, key=("r", "id"))
    yielded = [r for w in windows.windows(ctx, None) for r in w.records]
    assert changed in yielded
    assert yielded.count(first[2]) == 1  # the identical re-read is not yielded twice
