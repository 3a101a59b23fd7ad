"""Journals at scale: entries made per page from (register, position), never held."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sitoo_sync.simulator import SimConfig, Simulator, World
from sitoo_sync.simulator.journal import journal_page
from sitoo_sync.simulator.lazy_journal import CACHED_DAYS, LazyJournal
from tests.conftest import SyncFn
from tests.support import query, settings_for

NOW = 1_750_000_000


def lazy_world(entries: int = 5_000, **config: Any) -> World:
    """A world of 11 registers whose journals hold `entries` entries between them."""
    return World(SimConfig(seed=5, days=1, now=NOW, lazy_journal_size=entries, **config))


def page(world: World, register: str, **params: Any) -> dict[str, Any]:
    """One decoded page of /journal-entries, as a client sends the query."""
    query = {"register_id": [register], **{k: [str(v)] for k, v in params.items()}}
    answer = journal_page(world.journal, query)
    assert isinstance(answer, bytes)
    decoded: dict[str, Any] = json.loads(answer)
    return decoded


def walk(world: World, register: str, **params: Any) -> list[dict[str, Any]]:
    """Every entry of the query, following `next` to the end."""
    items: list[dict[str, Any]] = []
    token = None
    while True:
        answer = page(world, register, **params, **({"next": token} if token else {}))
        items += answer["items"]
        token = answer.get("next")
        if not token:
            return items


def test_the_same_page_is_the_same_entries_every_time() -> None:
    """A page asked twice, of one world or of a second built from the same seed, is equal."""
    first, second = lazy_world(), lazy_world()
    register = first.registers[3].registerid
    one = page(first, register, date_type="added", num=250)
    token = one["next"]
    assert page(first, register, date_type="added", num=250) == one
    assert page(second, register, date_type="added", num=250) == one
    later = page(first, register, date_type="added", num=250, next=token)
    assert page(second, register, date_type="added", num=250, next=token) == later
    assert later["items"][0]["id"] == one["items"][-1]["id"] + 1


def test_serves_every_entry_once_across_pages() -> None:
    """N entries over the registers, ids 1..n per register, no duplicate, no gap."""
    world = lazy_world(entries=7_777)
    total = 0
    for reg in world.registers:
        items = walk(world, reg.registerid, date_type="added", num=300)
        ids = [e["id"] for e in items]
        assert ids == list(range(1, len(ids) + 1))
        assert {e["registerid"] for e in items} == {reg.registerid}
        added = [e["dateadded"] for e in items]
        assert added == sorted(added)
        total += len(items)
    assert total == 7_777


def test_pages_are_made_per_day_not_kept() -> None:
    """Walking a history much longer than the cache keeps only the cache's days."""
    world = lazy_world(entries=200_000, journal_day_entries=30)
    journal = world.journal
    assert isinstance(journal, LazyJournal)
    register = world.registers[0].registerid
    assert len(walk(world, register, date_type="added", num=1000)) == journal.size(register)
    assert journal.size(register) > 30 * CACHED_DAYS
    assert len(journal._cache) <= CACHED_DAYS  # the bound is the point
    assert journal._entries == {}  # nothing of the day journal is built


def test_date_filters_and_order_match_the_whole_history() -> None:
    """date_from/date_to on either date and desc order select what a full scan would."""
    world = lazy_world(entries=3_000, journal_day_entries=40)
    register = world.registers[1].registerid
    history = walk(world, register, date_type="added", num=1000)
    for field in ("added", "created"):
        times = sorted({e["date" + field] for e in history})
        lo, hi = times[len(times) // 4], times[len(times) // 2]
        expected = [e for e in history if lo <= e["date" + field] <= hi]
        got = walk(world, register, date_type=field, date_from=lo, date_to=hi, num=37)
        assert got == expected
        backwards = walk(
            world, register, date_type=field, date_from=lo, date_to=hi, num=37, sort_order="desc"
        )
        assert backwards == expected[::-1]
    receipts = walk(world, register, date_type="added", type="receipt", num=50)
    assert receipts == [e for e in history if e["type"] == "receipt"]


def test_late_uploads_and_bursts_keep_dateadded_in_order() -> None:
    """Some days reach the backup hours late, and a burst lands after the history."""
    world = lazy_world(entries=20_000, journal_day_entries=40)
    register = world.registers[0].registerid
    history = walk(world, register, date_type="added", num=1000)
    late = [e for e in history if e["dateadded"] - e["datecreated"] > 3 * 3600]
    assert late, "no day was uploaded late"
    world.journal.offline_burst(register, 120, history[-1]["dateadded"] + 60, hours_old=6)
    after = walk(world, register, date_type="added", num=1000)
    assert [e["id"] for e in after] == list(range(1, len(history) + 121))
    assert after[: len(history)] == history
    with pytest.raises(ValueError, match="after"):
        world.journal.offline_burst(register, 1, history[0]["dateadded"])


def test_malformed_entries_come_every_nth() -> None:
    """With journal_malformed_every=k, every k-th entry has a bad id or a bad datecreated."""
    world = lazy_world(entries=2_000, journal_malformed_every=50)
    items = walk(world, world.registers[2].registerid, date_type="added", num=1000)
    bad = [
        n + 1
        for n, e in enumerate(items)
        if type(e["id"]) is not int or type(e["datecreated"]) is not int
    ]
    assert bad == list(range(50, len(items) + 1, 50))


def test_backfill_of_a_lazy_journal_equals_the_simulator(tmp_path: Path, sync: SyncFn) -> None:
    """A sync loads every well-formed entry once and rejects the malformed; a tick after adds
    nothing."""
    config = SimConfig(seed=6, days=1, lazy_journal_size=6_000, journal_malformed_every=101)
    with Simulator.create(config) as sim:
        settings = settings_for(sim, tmp_path / "w.duckdb", streams=["journal_entries"])
        report = sync(settings)
        assert report.ok, [r.error for r in report.results if r.error]
        keys = query(settings, "SELECT registerid, id FROM journal_entries")
        rejects = query(settings, "SELECT count(*) FROM rejects")[0][0]
        truth = sim.world.journal.all_entries()
        good = {(e["registerid"], e["id"]) for e in truth if type(e["id"]) is int}
        assert len(keys) == len(set(keys))
        assert set(keys) <= good
        assert len(truth) - len(keys) == rejects > len(truth) - len(good) > 0
        per_type = dict(query(settings, "SELECT type, count(*) FROM journal_entries GROUP BY 1"))
        assert sum(per_type.values()) == len(keys)
        assert per_type["receipt"] > 0
        assert sync(settings).ok  # the next tick re-reads its overlap and adds nothing
        assert len(query(settings, "SELECT registerid, id FROM journal_entries")) == len(keys)
