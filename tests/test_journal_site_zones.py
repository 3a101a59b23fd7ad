"""Journal receipts that name no zone of their own: dated in their register's site's zone."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from sitoo_sync.errors import ContextUnavailable
from sitoo_sync.normalize import journal_entries, journal_pages
from sitoo_sync.normalize.journal_entries import (
    LISTED_SITES,
    REGISTER_SITES,
    SITE_ZONES,
    ZONES_UNREAD,
    site_zone,
)
from sitoo_sync.normalize.journal_pages import as_dicts, decode_page
from sitoo_sync.normalize.records import NormalizedWindow
from sitoo_sync.simulator import SimConfig, Simulator, chain
from sitoo_sync.streams.journal_entries import JOURNAL_ENTRIES
from tests.conftest import SyncFn
from tests.support import query, settings_for
from tests.test_journal_pages import assert_same_window

NY = "{2AA484B4-2B5F-55AB-128A-7DB46E573357}"  # a register of site 2, in New York
STHLM = "{2AA484B4-2B5F-55AB-128A-7DB46E573358}"  # a register of site 1, in Stockholm
#: 02:00 UTC on 10 March 2026: 22:00 the evening before in New York, 03:00 in Stockholm.
AT = int(datetime(2026, 3, 10, 2, 0, tzinfo=UTC).timestamp())
UTC_DAY, NY_DAY = date(2026, 3, 10), date(2026, 3, 9)


def receipt(register: str, entry_id: int, zone: Any = None, *, zoned: bool = True) -> Any:
    """A sale of 10.00 SEK made at `AT`, naming `zone` as its pos-timezone (none at all
    when not `zoned`)."""
    extra: dict[str, Any] = {"pos-receiptid": f"R{entry_id}"}
    if zoned:
        extra["pos-timezone"] = zone
    return {
        "data": {
            "additionaldata": extra,
            "currencycode": "SEK",
            "isrefund": False,
            "items": [],
            "moneytotal": "10.00",
            "payments": [{"moneyamount": "10.00", "name": "Card"}],
        },
        "dateadded": AT + 60,
        "datecreated": AT,
        "id": entry_id,
        "ispractice": False,
        "registerid": register,
        "registerkey": "SIE0000150100023",
        "type": "receipt",
    }


def typed(entries: list[dict[str, Any]]) -> list[Any]:
    """The entries as a page decodes them (typed, for the columnar normalizer)."""
    return list(decode_page(json.dumps({"items": entries}).encode())["items"])


def zones(
    sites: dict[str, int],
    site_zones: dict[str, str],
    *,
    unread: tuple[str, ...] = (),
    listed: tuple[str, ...] | None = None,
) -> dict[str, Any]:
    """A normalizer context as the journal's tick gives it."""
    return {
        REGISTER_SITES: sites,
        SITE_ZONES: site_zones,
        ZONES_UNREAD: unread,
        LISTED_SITES: tuple(site_zones) if listed is None else listed,
    }


#: Site 1 in Stockholm, site 2 in New York; each register listed under its site.
TWO_SITES = zones({NY: 2, STHLM: 1}, {"1": "Europe/Stockholm", "2": "America/New_York"})


def days(window: NormalizedWindow) -> dict[tuple[str, int], date]:
    """Each receipt's business_date by its key."""
    rows = window.tables["journal_receipts"].select(["registerid", "id", "business_date"])
    return {(r["registerid"], r["id"]): r["business_date"] for r in rows.to_pylist()}


def both(entries: list[dict[str, Any]], context: dict[str, Any]) -> NormalizedWindow:
    """The window by the columnar normalizer, checked to take its fast path and to give
    what the reference normalizer gives."""
    records = typed(entries)
    assert journal_pages.normalize_entries(records, None, context) is not None  # fast path
    columnar = journal_pages.normalize_window(records, context)
    assert_same_window(columnar, journal_entries.normalize_window(as_dicts(records), context))
    return columnar


def test_a_receipt_without_a_usable_zone_takes_its_sites_in_both_normalizers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A receipt with no pos-timezone, an empty one or one zoneinfo does not know is dated
    in its register's site's zone (New York: the evening before), one that names its zone
    in that; both normalizers agree, and the site is looked up once for the register."""
    looked_up: list[str] = []

    def counted(register: str, context: Any) -> str:
        looked_up.append(register)
        return site_zone(register, context)

    monkeypatch.setattr(journal_entries, "site_zone", counted)
    entries = [
        receipt(NY, 1, "Europe/Stockholm"),
        receipt(NY, 2, zoned=False),
        receipt(NY, 3, ""),
        receipt(NY, 4, "Europe/Stokholm"),
        receipt(NY, 5, None),
    ]
    window = both(entries, TWO_SITES)
    assert days(window) == {
        (NY, 1): UTC_DAY,
        (NY, 2): NY_DAY,
        (NY, 3): NY_DAY,
        (NY, 4): NY_DAY,
        (NY, 5): NY_DAY,
    }
    assert window.tables["journal_receipts"].column("timezone").to_pylist() == [
        "Europe/Stockholm",
        None,
        "",
        "Europe/Stokholm",
        None,
    ]  # as the receipt sent it: the register's own zone, which z-reports read
    looked_up.clear()
    journal_pages.normalize_window(typed(entries), TWO_SITES)
    assert looked_up == [NY]  # once per register and window, not per receipt


def test_registers_of_different_sites_normalized_together_each_take_their_own_site() -> None:
    """Two registers' windows normalized in one call (the tick's joined path) each date
    their zone-less receipts in their own site's zone, as each does alone."""
    windows = [typed([receipt(NY, 1), receipt(NY, 2)]), typed([receipt(STHLM, 1)])]
    joined = journal_pages.normalize_windows([(w, TWO_SITES) for w in windows])
    alone = [journal_pages.normalize_window(w, TWO_SITES) for w in windows]
    for mine, theirs in zip(joined, alone, strict=True):
        assert_same_window(mine, theirs)
    assert days(joined[0]) == {(NY, 1): NY_DAY, (NY, 2): NY_DAY}
    assert days(joined[1]) == {(STHLM, 1): UTC_DAY}


def test_a_receipt_waits_when_its_sites_zone_could_not_be_read() -> None:
    """When its site's zone could not be read this tick, a zone-less receipt's window fails
    (both normalizers) rather than load dated in UTC for good; receipts that name their
    zone, and registers of other sites, load as ever."""
    unread = {**TWO_SITES, ZONES_UNREAD: ("2",)}
    records = typed([receipt(NY, 1, "Europe/Stockholm"), receipt(NY, 2, zoned=False)])
    with pytest.raises(ContextUnavailable, match=r"site 2 .* could not be read"):
        journal_pages.normalize_window(records, unread)
    with pytest.raises(ContextUnavailable, match=r"site 2 .* could not be read"):
        journal_entries.normalize_window(as_dicts(records), unread)
    assert days(both([receipt(NY, 1, "America/New_York")], unread)) == {(NY, 1): NY_DAY}
    assert days(both([receipt(STHLM, 1)], unread)) == {(STHLM, 1): UTC_DAY}
    with pytest.raises(ContextUnavailable, match="sites' time zones"):
        journal_pages.normalize_window(
            typed([receipt(STHLM, 1)]), {**TWO_SITES, ZONES_UNREAD: ("*",)}
        )


@pytest.mark.parametrize(
    ("context", "want"),
    [
        # site known, and it has a zone
        (TWO_SITES, "America/New_York"),
        # site known, it has no zone (settings 404, or none set): UTC, for good
        (zones({NY: 2}, {"1": "Europe/Stockholm"}, listed=("1", "2")), "UTC"),
        # not listed by cash_registers yet: every site's zone is New York's
        (zones({}, {"1": "America/New_York", "2": "America/New_York"}), "America/New_York"),
        # not listed by cash_registers yet, and the account lists no site: UTC
        (zones({}, {}), "UTC"),
        # normalized outside a tick (no zones in the context): UTC, as before
        ({}, "UTC"),
    ],
)
def test_the_zone_of_a_register_without_one_of_its_own(context: Any, want: str) -> None:
    """A register's site zone: its site's (UTC when the site has none); for a register whose
    site is not known yet, the one zone every listed site shares."""
    assert site_zone(NY, context) == want


def test_a_register_of_an_unknown_site_waits_when_the_sites_zones_differ() -> None:
    """A register cash_registers has not listed yet, in an account whose sites' zones
    differ, cannot be dated: its zone-less receipts wait, saying how to list it."""
    with pytest.raises(ContextUnavailable, match="until the cash_registers stream lists it"):
        site_zone(NY, {**TWO_SITES, REGISTER_SITES: {}})
    with pytest.raises(ContextUnavailable, match="until the cash_registers stream lists it"):
        journal_pages.normalize_window(
            typed([receipt(NY, 1, zoned=False)]), {**TWO_SITES, REGISTER_SITES: {STHLM: 1}}
        )


# ---- end to end, against the simulator ---------------------------------------------------


@pytest.fixture
def new_york_site(monkeypatch: pytest.MonkeyPatch) -> Iterator[Simulator]:
    """A simulated chain whose site 2 is in New York (its settings and its registers' own
    receipts say so) while site 1 stays in Stockholm."""
    monkeypatch.setitem(chain.SITE_TIME_ZONE, 2, "America/New_York")
    with Simulator.create(SimConfig(seed=5, days=2, malformed_every=0)) as sim:
        yield sim


def zone_less_receipt_at_2am(sim: Simulator) -> tuple[str, int, date]:
    """One receipt of a site-2 register changed to name no pos-timezone and to be made at
    02:00 UTC: (its register, its id, that day in UTC)."""
    sim.rest  # noqa: B018  # its orders are made of the receipts as sent, before the change
    register = next(r.registerid for r in sim.world.registers if r.eshopid == 2)
    entry = next(e for e in sim.world.journal.entries(register) if e["type"] == "receipt")
    entry["data"]["additionaldata"].pop("pos-timezone")
    entry["datecreated"] = entry["datecreated"] // 86_400 * 86_400 + 2 * 3600
    return register, entry["id"], datetime.fromtimestamp(entry["datecreated"], UTC).date()


def stored_day(settings: Any, register: str, entry_id: int) -> list[tuple[Any, ...]]:
    return query(
        settings,
        "SELECT business_date, timezone FROM journal_receipts "
        f"WHERE registerid = '{register}' AND id = {entry_id}",
    )


def test_a_zone_less_receipt_at_a_new_york_site_counts_on_the_previous_local_day(
    new_york_site: Simulator, tmp_path: Path, sync: SyncFn
) -> None:
    """End to end: a receipt without pos-timezone made at 02:00 UTC by a register of a site
    in America/New_York is the evening before there, and loads with that business_date."""
    sim = new_york_site
    register, entry_id, utc_day = zone_less_receipt_at_2am(sim)
    settings = settings_for(
        sim, tmp_path / "w.duckdb", streams=["cash_registers", JOURNAL_ENTRIES.name]
    )
    report = sync(settings)
    assert report.ok, [r.error for r in report.results if r.error]
    assert stored_day(settings, register, entry_id) == [
        (date.fromordinal(utc_day.toordinal() - 1), None)
    ]


def test_a_zone_less_receipt_waits_a_tick_when_its_sites_zone_fails_then_loads_dated_right(
    new_york_site: Simulator, tmp_path: Path, sync: SyncFn
) -> None:
    """End to end: when the New York site's settings fail through every retry, its
    register's journal fails this tick (the others load) instead of dating the zone-less
    receipt in UTC for good; the next tick loads it on the local day."""
    sim = new_york_site
    register, entry_id, utc_day = zone_less_receipt_at_2am(sim)
    settings = settings_for(
        sim,
        tmp_path / "w.duckdb",
        streams=["cash_registers", JOURNAL_ENTRIES.name],
        http_max_attempts=2,
    )
    sim.faults.queue("500", times=2, path="/sites/2/settings.json")
    report = sync(settings)
    failed = [r for r in report.results if r.status == "failed"]
    assert [(r.stream, r.partition) for r in failed] == [(JOURNAL_ENTRIES.name, register)]
    assert "time zone of site 2" in (failed[0].error or "")
    assert stored_day(settings, register, entry_id) == []
    loaded = query(settings, "SELECT count(DISTINCT registerid) FROM journal_entries")
    assert loaded == [(len(sim.world.registers) - 1,)]
    assert sync(settings).ok
    assert stored_day(settings, register, entry_id) == [
        (date.fromordinal(utc_day.toordinal() - 1), None)
    ]


def test_a_tick_whose_receipts_all_name_their_zone_asks_for_no_site_zone(
    tmp_path: Path, sync: SyncFn
) -> None:
    """The sites' zones are read only when a receipt needs one: a journal tick whose receipts
    all name their pos-timezone sends no request for the site listing or a site's settings,
    so no round trip stands before its registers start."""
    with Simulator.create(SimConfig(seed=5, days=2, malformed_every=0)) as sim:
        assert all(
            e["data"]["additionaldata"].get("pos-timezone")
            for r in sim.world.registers
            for e in sim.world.journal.entries(r.registerid)
            if e["type"] == "receipt"
        )
        settings = settings_for(sim, tmp_path / "w.duckdb", streams=[JOURNAL_ENTRIES.name])
        report = sync(settings)
        assert report.ok, [r.error for r in report.results if r.error]
        assert query(settings, "SELECT count(*) FROM journal_receipts")[0][0] > 0
        assert sim.requests_to("/sites.json") == 0
        assert sim.requests_to("/settings.json") == 0
