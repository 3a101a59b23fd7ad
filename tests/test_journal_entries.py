"""Journal entries and cash registers: the vendor's examples, and end to end per register."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import sitoo_sync.sync
from sitoo_sync.api.client import make_client
from sitoo_sync.cli import main
from sitoo_sync.commit import load_group
from sitoo_sync.normalize.journal_entries import business_date, normalize_window
from sitoo_sync.settings import Settings
from sitoo_sync.simulator import SimConfig, Simulator
from sitoo_sync.streams.partitions import REGISTERS
from sitoo_sync.turns import Gathered, Joining, Turns, Worker
from sitoo_sync.warehouse.base import at_work
from tests.conftest import SyncFn
from tests.support import FIXTURES, query, settings_for, use_simulator

REGISTER = "{2AA484B4-2B5F-55AB-128A-7DB46E573357}"
# Simulated latency for the tests that count requests in flight at once: long enough that
# the client's threads have all sent theirs before the first is answered, even on a loaded
# machine where a thread can wait a while for its turn on the CPU.
SLOW_ENOUGH_TO_OVERLAP = 0.5


def vendor_entries() -> list[dict[str, Any]]:
    """FACTS sections 1.3 and 1.6: login, cash-start and the (cut-off) receipt."""
    text = (FIXTURES / "journal_entries_vendor_example.json").read_text()
    items: list[dict[str, Any]] = json.loads(text, parse_float=Decimal)["items"]
    return items


# ---- normalization of the vendor's examples ---------------------------------------------


def test_vendor_envelope_keeps_every_entry_and_its_data() -> None:
    """Each entry lands in journal_entries with its envelope typed and data kept as JSON."""
    window = normalize_window(vendor_entries())
    assert window.rejects == []
    rows = window.tables["journal_entries"].to_pylist()
    assert [(r["registerid"], r["id"], r["type"]) for r in rows] == [
        (REGISTER, 1, "login"),
        (REGISTER, 2, "cash-start"),
        (REGISTER, 3, "receipt"),
    ]
    assert rows[0]["datecreated"] == datetime.fromtimestamp(1672386296, UTC)
    assert rows[0]["dateadded"] == datetime.fromtimestamp(1672386301, UTC)
    assert rows[0]["ispractice"] is False
    assert json.loads(rows[1]["data"])["moneycash"] == "5000.00"


def test_vendor_cash_and_staff_events_are_typed() -> None:
    """cash-start becomes a cash event with Decimal money; login a staff event."""
    window = normalize_window(vendor_entries())
    [cash] = window.tables["journal_cash_events"].to_pylist()
    assert (cash["type"], cash["moneycash"], cash["currencycode"]) == (
        "cash-start",
        Decimal("5000.00"),
        "SEK",
    )
    assert type(cash["moneycash"]) is Decimal
    [staff] = window.tables["journal_staff_events"].to_pylist()
    assert (staff["type"], staff["staff"]) == ("login", "POS Staff")


def test_vendor_receipt_lifts_additionaldata_and_items() -> None:
    """The receipt's store, receipt id and time zone become columns, as do item keys."""
    window = normalize_window(vendor_entries())
    [receipt] = window.tables["journal_receipts"].to_pylist()
    assert receipt["receipt_id"] == "SIE000015010002310000"
    assert receipt["store_id"] == "200"
    assert receipt["store_name"] == "Sitoo Concept Store"
    assert receipt["store_group"] == "NORDIC"
    assert receipt["timezone"] == "Europe/Stockholm"
    assert receipt["isrefund"] is False
    assert receipt["moneytotal"] is None  # not in the vendor's (cut-off) example
    # 2022-12-30 07:45:01 UTC is 08:45 in Stockholm: the same business day
    assert receipt["business_date"] == date(2022, 12, 30)
    [item] = window.tables["journal_receipt_items"].to_pylist()
    assert (item["productid"], item["product_group"], item["delivered"]) == (
        "16",
        "Standard",
        "true",
    )
    assert item["decimalunitquantity"] == Decimal("0")
    [discount] = window.tables["journal_receipt_item_discounts"].to_pylist()
    assert (discount["item_position"], discount["discountname"]) == (0, "3 FOR 2")


def test_business_date_follows_the_registers_zone() -> None:
    """Late evening in Stockholm is the next day in UTC+0's eyes, but not the business's."""
    created = int(datetime(2026, 6, 30, 22, 30, tzinfo=UTC).timestamp())  # 00:30 July 1 local
    assert business_date(created, "Europe/Stockholm") == date(2026, 7, 1)
    assert business_date(created, "America/New_York") == date(2026, 6, 30)
    assert business_date(created, "Not/AZone") == date(2026, 6, 30)  # UTC fallback


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda e: e.pop("id"), "id: missing or non-integer key field"),
        (lambda e: e.update(registerid=""), "registerid: missing or empty key field"),
        (lambda e: e["data"].update(items="x"), "data.items: expected a list"),
        (
            lambda e: e["data"].update(currencycode=5, moneytotal="1,00"),
            "moneytotal: not an amount of money",
        ),
    ],
)
def test_a_broken_entry_is_rejected_and_the_rest_loads(mutate: Any, reason: str) -> None:
    """A bad entry goes to rejects with its reason; its neighbours load."""
    entries = vendor_entries()
    mutate(entries[2])
    window = normalize_window(entries)
    assert window.tables["journal_entries"].num_rows == 2
    [reject] = window.rejects
    assert reason in reject.reason
    assert window.tables["journal_receipts"].num_rows == 0


def test_an_unknown_type_is_kept_and_counted() -> None:
    """An entry of a type the docs do not list lands in journal_entries and is noted."""
    entries = vendor_entries()
    entries.append({**entries[0], "id": 4, "type": "drawer-selfie", "data": {"x": 1}})
    window = normalize_window(entries)
    assert window.tables["journal_entries"].num_rows == 4
    assert window.notes == Counter({"unknown entry type drawer-selfie": 1})
    assert window.rejects == []


# ---- end to end ------------------------------------------------------------------------


def journal_settings(sim: Simulator, tmp_path: Path, **extra: Any) -> Settings:
    values: dict[str, Any] = {"streams": ["cash_registers", "journal_entries"]}
    values.update(extra)
    return settings_for(sim, tmp_path / "w.duckdb", **values)


def warehouse_truth(settings: Settings) -> tuple[Counter[str], dict[str, str], dict[str, str]]:
    per_type = Counter(
        dict(query(settings, "SELECT type, count(*) FROM journal_entries GROUP BY type"))
    )
    receipts = {
        store: f"{total:.2f}"
        for store, total in query(
            settings,
            "SELECT store_id, sum(moneytotal_signed) "
            "FROM journal_receipts WHERE NOT ispractice GROUP BY store_id",
        )
    }
    cash = {
        reg: f"{total:.2f}"
        for reg, total in query(
            settings, "SELECT registerid, sum(moneycash) FROM journal_cash_events GROUP BY 1"
        )
    }
    return per_type, receipts, cash


def simulator_truth(sim: Simulator) -> tuple[Counter[str], dict[str, str], dict[str, str]]:
    journal = sim.world.journal
    return (
        journal.entries_per_type(),
        # The vendor's receipts say "no store" as ''; the warehouse spells it NO_STORE.
        {k or "NO_STORE": v for k, v in journal.receipt_totals_per_store().items()},
        journal.cash_moved_per_register(),
    )


def test_backfill_and_new_data_equal_the_simulator(
    sim: Simulator, tmp_path: Path, sync: SyncFn
) -> None:
    """Entries per type, receipt totals per store and cash per register match, to the cent."""
    settings = journal_settings(sim, tmp_path)
    report = sync(settings)
    assert report.ok, [r.error for r in report.results if r.error]
    assert warehouse_truth(settings) == simulator_truth(sim)
    keys = query(settings, "SELECT registerid, id FROM journal_entries")
    assert len(keys) == len(set(keys)) == len(sim.world.journal.all_entries())
    now = sim.world.advance_clock(600)
    sim.world.add_new_reports(len(sim.world.registers), dateadded=now)
    assert sync(settings).ok
    assert warehouse_truth(settings) == simulator_truth(sim)


def test_second_tick_makes_one_request_per_register_and_adds_nothing(
    sim: Simulator, tmp_path: Path, sync: SyncFn
) -> None:
    """With nothing new, each register is asked once (its overlap) and no row is added."""
    settings = journal_settings(sim, tmp_path, streams=["journal_entries"])
    sync(settings)
    before = query(settings, "SELECT count(*) FROM journal_entries")
    asked = sim.requests_to("/journal-entries")
    report = sync(settings)
    assert report.ok
    assert sim.requests_to("/journal-entries") - asked == len(sim.world.registers)
    assert query(settings, "SELECT count(*) FROM journal_entries") == before
    cursors = query(settings, "SELECT count(*) FROM sync_state WHERE stream = 'journal_entries'")
    assert cursors == [(len(sim.world.registers),)]


def test_a_new_register_is_backfilled_while_the_others_continue(
    sim: Simulator, tmp_path: Path, sync: SyncFn
) -> None:
    """A register that appears between ticks starts from the beginning; others from cursors."""
    settings = journal_settings(sim, tmp_path)
    sync(settings)
    register = sim.world.add_register("220")
    now = sim.world.advance_clock(600)
    for day in range(3):
        report = sim.world.make_report(register, now - (3 - day) * 86400, now - 10)
        sim.world.add_report(report)
    start = len(sim.log)
    assert sync(settings).ok
    listings = [path for path, _ in sim.log[start:] if path.endswith("/cashregisters.json")]
    assert len(listings) == len(sim.world.site_ids())  # listed once, not again for journals
    asks = [p for path, p in sim.log[start:] if path.endswith("/journal-entries")]
    new = [p for p in asks if p["register_id"] == register.registerid]
    assert new[0]["date_from"] == "0"
    others = [p for p in asks if p["register_id"] != register.registerid]
    assert all(int(p["date_from"]) > 0 for p in others)
    assert warehouse_truth(settings) == simulator_truth(sim)
    listed = query(
        settings,
        f"SELECT site_id, first_seen_at IS NOT NULL FROM cash_registers "
        f"WHERE registerid = '{register.registerid}'",
    )
    assert listed == [(1, True)]


def test_registers_that_appear_together_are_counted_and_a_few_named(
    sim: Simulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Many registers appearing between ticks make one `partitions_appeared` event that
    counts them all and names at most PARTITIONS_NAMED, so the line stays readable."""
    use_simulator(monkeypatch, sim, tmp_path / "w.duckdb")
    monkeypatch.setenv("SITOO_STREAMS", "journal_entries")
    monkeypatch.setenv("SITOO_LOG_FORMAT", "json")
    monkeypatch.setattr(sitoo_sync.sync, "PARTITIONS_NAMED", 3)
    assert main(["run", "--once"]) == 0
    added = [sim.world.add_register("220").registerid for _ in range(5)]
    capsys.readouterr()
    assert main(["run", "--once"]) == 0
    events = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    [appeared] = [e for e in events if e["event"] == "partitions_appeared"]
    assert appeared["count"] == 5
    assert appeared["partitions"] == sorted(added)[:3]


def test_an_offline_burst_over_a_page_in_one_second_loads_completely(
    sim: Simulator, tmp_path: Path, sync: SyncFn
) -> None:
    """2,500 entries uploaded in one second, hours after they were made: all of them load."""
    settings = journal_settings(sim, tmp_path, streams=["journal_entries"])
    sync(settings)
    register = sim.world.registers[2].registerid
    at = sim.world.advance_clock(60)
    sim.world.journal.offline_burst(register, 2500, at, hours_old=6)
    assert sync(settings).ok
    loaded = query(
        settings,
        f"SELECT count(*), min(datecreated) FROM journal_entries "
        f"WHERE registerid = '{register}' AND dateadded = to_timestamp({at})",
    )
    assert loaded[0][0] == 2500
    pages = [p for path, p in sim.log if p.get("register_id") == register and "next" in p]
    assert len(pages) >= 2  # the second crossed a page boundary inside the second
    assert warehouse_truth(settings) == simulator_truth(sim)


def test_one_failing_register_does_not_stop_the_others(
    sim: Simulator, tmp_path: Path, sync: SyncFn
) -> None:
    """A register whose requests keep failing fails alone; the run reports it."""
    # Faults go to requests in the order they arrive: one register at a time makes all six
    # land on the same register (concurrent ones would share them and each succeed).
    settings = journal_settings(sim, tmp_path, streams=["journal_entries"], concurrency=1)
    sim.faults.queue("500", times=6, path="/journal-entries", after=3)
    report = sync(settings)
    assert not report.ok
    failed = [r for r in report.results if r.status == "failed"]
    assert len(failed) == 1
    ok = [r for r in report.results if r.status == "ok"]
    assert len(ok) == len(sim.world.registers) - 1
    assert sync(settings).ok
    assert warehouse_truth(settings) == simulator_truth(sim)


def test_a_register_that_disappears_is_kept_and_marked(
    sim: Simulator, tmp_path: Path, sync: SyncFn
) -> None:
    """The listing stops showing a register: its row stays, with missing_since set."""
    settings = journal_settings(sim, tmp_path, streams=["cash_registers"])
    sync(settings)
    first = dict(query(settings, "SELECT registerid, first_seen_at FROM cash_registers"))
    gone = sim.world.registers.pop(0)
    sim.world.advance_clock(3600)
    sync(settings, clock=lambda: datetime.now(UTC))
    rows = dict(query(settings, "SELECT registerid, missing_since FROM cash_registers"))
    assert rows[gone.registerid] is not None
    assert sum(v is not None for v in rows.values()) == 1
    again = dict(query(settings, "SELECT registerid, first_seen_at FROM cash_registers"))
    assert again == first  # first_seen_at survives every refresh
    sim.world.registers.insert(0, gone)
    sync(settings)
    back = query(
        settings, f"SELECT missing_since FROM cash_registers WHERE registerid = '{gone.registerid}'"
    )
    assert back == [(None,)]


@pytest.mark.parametrize(("concurrency", "expected"), [(1, 1), (4, 4)])
def test_registers_are_fetched_concurrently_up_to_the_bound(
    tmp_path: Path, sync: SyncFn, concurrency: int, expected: int
) -> None:
    """At most SITOO_CONCURRENCY registers are in flight at once, and that many are used."""
    with Simulator.create(SimConfig(seed=30, days=2, registers_per_store=3)) as sim:
        sim.faults.latency = SLOW_ENOUGH_TO_OVERLAP if concurrency > 1 else 0.05
        settings = settings_for(
            sim, tmp_path / "w.duckdb", streams=["journal_entries"], concurrency=concurrency
        )
        sim.max_in_flight = 0
        assert sync(settings).ok
        assert sim.max_in_flight == expected
        assert warehouse_truth(settings) == simulator_truth(sim)


def test_concurrent_registers_take_turns_to_load_while_their_requests_overlap(
    tmp_path: Path, sync: SyncFn, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On DuckDB, four registers are fetched at once but only one loads at a time."""
    inside = 0
    most = 0
    guard = threading.Lock()
    real_load = load_group

    def counted(*args: Any, **kwargs: Any) -> bool:
        nonlocal inside, most
        with guard:
            inside += 1
            most = max(most, inside)
        try:
            time.sleep(0.005)  # long enough for an unguarded second load to walk in
            return real_load(*args, **kwargs)
        finally:
            with guard:
                inside -= 1

    monkeypatch.setattr("sitoo_sync.commit.load_group", counted)
    with Simulator.create(SimConfig(seed=31, days=2, registers_per_store=3)) as sim:
        sim.faults.latency = SLOW_ENOUGH_TO_OVERLAP
        settings = settings_for(sim, tmp_path / "w.duckdb", streams=["journal_entries"])
        sim.max_in_flight = 0
        assert sync(settings).ok
        assert sim.max_in_flight == 4
        assert most == 1
        assert warehouse_truth(settings) == simulator_truth(sim)


def test_at_concurrency_one_the_next_request_goes_while_a_register_loads(
    tmp_path: Path, sync: SyncFn, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SITOO_CONCURRENCY=1 keeps one request in flight, and a load does not hold it back:
    the next register's page is requested while the last one's commit runs."""
    during: list[int] = []
    real_load = load_group
    sim = Simulator.create(SimConfig(seed=34, days=2, registers_per_store=2))

    def slow(*args: Any, **kwargs: Any) -> bool:
        before = sim.requests_to("/v3/journal-entries")
        time.sleep(0.3)  # a slow commit: a request now and then would be sent meanwhile
        new = real_load(*args, **kwargs)
        during.append(sim.requests_to("/v3/journal-entries") - before)
        return new

    monkeypatch.setattr("sitoo_sync.commit.load_group", slow)
    with sim:
        settings = settings_for(
            sim, tmp_path / "w.duckdb", streams=["journal_entries"], concurrency=1
        )
        sim.max_in_flight = 0
        assert sync(settings).ok
        assert sim.max_in_flight == 1
        assert sum(during) > 0
        assert warehouse_truth(settings) == simulator_truth(sim)


def test_partitions_waiting_for_their_last_commit_do_not_hold_back_requests(
    tmp_path: Path, sync: SyncFn, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On DuckDB, registers whose only page is in and waiting for a slow group commit leave
    their threads' work to others: more registers are fetched during that commit than the
    tick has partitions at work (those threads would all wait), and every register is
    still loaded once."""
    during: list[int] = []
    real_load = load_group
    sim = Simulator.create(SimConfig(seed=35, days=2, registers_per_store=6))

    def slow(*args: Any, **kwargs: Any) -> bool:
        before = sim.requests_to("/v3/journal-entries")
        time.sleep(0.6)  # twelve requests' latency
        new = real_load(*args, **kwargs)
        during.append(sim.requests_to("/v3/journal-entries") - before)
        return new

    monkeypatch.setattr("sitoo_sync.commit.load_group", slow)
    with sim:
        sim.faults.latency = 0.05
        settings = settings_for(
            sim, tmp_path / "w.duckdb", streams=["journal_entries"], concurrency=2
        )
        assert sync(settings).ok
        assert sim.max_in_flight <= 2
        assert max(during) >= at_work(2), during
        assert warehouse_truth(settings) == simulator_truth(sim)


def test_a_server_that_loads_concurrently_takes_turns_only_to_write() -> None:
    """PostgreSQL's partitions normalize on their own threads (gathering the windows that
    arrive together) and write on the tick's writing thread; in-process and single-writer
    targets take turns for both."""

    def turn(concurrent_loads: bool, in_process: bool) -> Turns:
        target = SimpleNamespace(concurrent_loads=concurrent_loads, in_process=in_process)
        return sitoo_sync.sync._load_turn(target)

    postgres = turn(True, False)
    assert isinstance(postgres.normalize, Gathered)
    assert isinstance(postgres.write, Worker)
    postgres.close()
    for shape in ((True, True), (False, True), (False, False)):  # DuckDB, SQLite, MySQL
        turns = turn(*shape)
        assert isinstance(turns.normalize, Joining)
        assert isinstance(turns.write, Worker)
        turns.close()


class _TimedLog(list[Any]):
    """The simulator's request log, with when each request arrived (`times`)."""

    def __init__(self) -> None:
        super().__init__()
        self.times: list[float] = []

    def append(self, request: Any) -> None:
        self.times.append(time.monotonic())
        super().append(request)


def test_a_listed_page_of_registers_starts_before_the_listing_ends(
    tmp_path: Path, sync: SyncFn
) -> None:
    """A first tick starts the registers of the listing's first page while its second page
    is still on its way, and still loads every register once."""
    stall = 3.0
    with Simulator.create(SimConfig(seed=33, days=1, registers_per_store=30)) as sim:
        settings = settings_for(sim, tmp_path / "w.duckdb", streams=["journal_entries"])
        site = settings.site_ids[0]
        listing = f"/sites/{site}/cashregisters.json"
        assert sum(1 for r in sim.world.registers if r.eshopid == site) > 100  # two pages
        sim.faults.queue("slow", path=listing, after=1, seconds=stall)
        sim.log = log = _TimedLog()
        assert sync(settings).ok
        second_page = next(
            at
            for at, (path, q) in zip(log.times, log, strict=True)
            if path.endswith(listing) and q.get("start") == "100"
        )
        first_entries = next(
            at
            for at, (path, _q) in zip(log.times, log, strict=True)
            if path == "/v3/journal-entries"
        )
        assert first_entries < second_page + stall / 2
        loaded = query(settings, "SELECT count(DISTINCT registerid) FROM journal_entries")
        assert loaded == [(len(sim.world.registers),)]
        doubled = query(
            settings, "SELECT count(*) - count(DISTINCT (registerid, id)) FROM journal_entries"
        )
        assert doubled == [(0,)]


def test_sites_are_listed_concurrently_in_their_configured_order(tmp_path: Path) -> None:
    """The register listing asks every site at once and returns what one-by-one listing
    returns."""
    with Simulator.create(SimConfig(seed=32, days=1, registers_per_store=2)) as sim:
        sim.faults.latency = SLOW_ENOUGH_TO_OVERLAP
        settings = settings_for(sim, tmp_path / "w.duckdb")
        assert len(settings.site_ids) > 1
        with make_client(settings) as client:
            one_by_one = REGISTERS.list_all(client, settings.site_ids, stream="t", concurrency=1)
            sim.max_in_flight = 0
            together = REGISTERS.list_all(client, settings.site_ids, stream="t", concurrency=4)
        assert sim.max_in_flight == len(settings.site_ids)
        assert together == one_by_one
        assert set(together) == {r.registerid for r in sim.world.registers}


def test_a_note_of_the_tick_is_one_warning_with_its_entries_and_registers(
    sim: Simulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Entries of an undocumented type in many registers make one `entries_noted` warning
    for the stream, counting them all and the registers they came from (the summary line says
    the note, then the count); each register's count is an info event."""
    use_simulator(monkeypatch, sim, tmp_path / "w.duckdb")
    monkeypatch.setenv("SITOO_STREAMS", "journal_entries")
    monkeypatch.setenv("SITOO_LOG_FORMAT", "json")
    assert main(["run", "--once"]) == 0
    events = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    noted = [e for e in events if e["event"] == "entries_noted"]
    per_register = [e for e in noted if e["level"] == "info"]
    [warning] = [e for e in noted if e["level"] == "warning"]
    assert len(per_register) > 1
    assert warning["note"] == "unknown entry type loyalty-stamp"
    assert warning["partitions"] == len(per_register)
    assert warning["count"] == sum(e["count"] for e in per_register)
    assert warning["count"] == sim.world.journal.entries_per_type()["loyalty-stamp"]
    [summary] = [e["message"] for e in events if e["event"] == "stream_summary"]
    assert summary.endswith(f"; unknown entry type loyalty-stamp: {warning['count']}")
