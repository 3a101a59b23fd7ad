"""`verify` at its boundaries: discrepancies it must find, and normal data it must not flag,
planted in a simulated world synced into every target."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from sitoo_sync.simulator import SimConfig
from sitoo_sync.verify import Scope, VerifyRun, run_verify
from sitoo_sync.verify.findings import Finding
from sitoo_sync.verify.source import Source, local_day, to_day, to_decimal, to_utc
from sitoo_sync.warehouse import open_warehouse
from sitoo_sync.warehouse.duckdb import DuckDBWarehouse
from sitoo_sync.warehouse.sql_types import UtcDateTime
from sitoo_sync.warehouse.sqla import SqlWarehouse
from tests.clones import copy_of
from tests.support import sync_simulated_world
from tests.targets import Target, grouped_targets, target_for

NOW = datetime(2026, 11, 20, 23, 30, tzinfo=UTC)
CLEAN: dict[str, Any] = {"seed": 12, "days": 20, "cash_differences": False}


@dataclass
class World:
    """A clean simulated world synced into a target of its own, and its registers."""

    target: Target
    registers: list[str]

    def verify(self, scope: Scope | None = None) -> VerifyRun:
        warehouse = open_warehouse(self.target.url, schema=self.target.schema)
        try:
            return run_verify(warehouse, scope or Scope(), write=False)
        finally:
            warehouse.close()

    def rows(self, sql: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        """The rows of a `{table}` query with `:name` parameters."""
        warehouse = open_warehouse(self.target.url, schema=self.target.schema)
        try:
            with warehouse.transaction():
                return list(Source(warehouse).rows(sql, params or {}))
        finally:
            warehouse.close()

    def run(self, sql: str, params: dict[str, Any] | None = None) -> None:
        """One `{table}` statement with `:name` parameters, in a transaction of its own."""
        warehouse = open_warehouse(self.target.url, schema=self.target.schema)
        try:
            text = Source(warehouse).sql(sql)
            named = set(re.findall(r":([a-z_]+)", text))
            values = {k: v for k, v in (params or {}).items() if k in named}
            with warehouse.transaction():
                if isinstance(warehouse, DuckDBWarehouse):
                    warehouse.con.execute(text.replace(":", "$"), values)
                    return
                assert isinstance(warehouse, SqlWarehouse)
                if warehouse.dialect == "sqlite":  # money and days are text there
                    values = {k: str(v) if isinstance(v, Decimal) else v for k, v in values.items()}
                binds = [
                    sa.bindparam(k, v, type_=UtcDateTime() if isinstance(v, datetime) else None)
                    for k, v in values.items()
                ]
                warehouse.conn.execute(sa.text(text).bindparams(*binds))
        finally:
            warehouse.close()


@pytest.fixture(scope="module", params=grouped_targets("verify_review"))
def synced(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    """The clean world synced once into a target of each kind; no test changes it (each
    changes a copy, `world`): the sync is the same for every test, seeded at a fixed time."""
    name = str(request.param)
    with target_for(name, tmp_path_factory.mktemp(name)) as fresh:
        config = SimConfig(now=int(NOW.timestamp()), **CLEAN)
        sim = sync_simulated_world(config, fresh, tmp_path_factory.mktemp("sim"), store_days=20)
        yield World(fresh, [r.registerid for r in sim.world.registers])


@pytest.fixture
def world(synced: World, tmp_path: Path) -> Iterator[World]:
    """A copy of the clean world's target of each kind, for one test to change."""
    with copy_of(synced.target, tmp_path) as fresh:
        yield World(fresh, synced.registers)


def found(run: VerifyRun, *checks: str, registerid: str | None = None) -> list[Finding]:
    return [
        f
        for f in run.findings
        if f.check in checks and (registerid is None or f.registerid == registerid)
    ]


ORDERS_START = datetime(2026, 11, 5, tzinfo=UTC)


def _orders_from(world: World, start: datetime, backlog_of: str | None = None) -> None:
    """Keep only the orders from `start` on, as `SITOO_ORDERS_START` loads them; with
    `backlog_of`, also that register's orders of the two days before, as an offline
    register's late upload is loaded with the newer orders (a higher orderid)."""
    world.run(
        "DELETE FROM {orders} WHERE orderdate < :start AND (registerid IS NULL "
        "OR registerid <> :offline OR orderdate < :backlog)",
        {"start": start, "offline": backlog_of or "", "backlog": start - timedelta(days=2)},
    )


def _lose_a_sale(world: World, registerid: str) -> None:
    """Delete one closed POS sale of `registerid`, late in the world's days."""
    sales = [
        int(orderid)
        for orderid, net in world.rows(
            "SELECT orderid, moneytotal_net FROM {orders} WHERE registerid = :r "
            "AND orderstateid = 10 AND orderdate > :after ORDER BY orderid",
            {"r": registerid, "after": datetime(2026, 11, 12, tzinfo=UTC)},
        )
        if (to_decimal(net) or 0) > 0
    ]
    world.run("DELETE FROM {orders} WHERE orderid = :id", {"id": sales[0]})


def _only_the_lost_sale(world: World, lost: str) -> None:
    hits = found(world.verify(), "orders")
    assert [f.registerid for f in hits] == [lost, lost], hits
    assert {f.zreportid is None for f in hits} == {True, False}  # the receipt, the z-report


def test_journal_receipts_from_before_the_orders_start_are_no_finding(world: World) -> None:
    """Journals kept from before the day the orders begin (`SITOO_ORDERS_START`) have no
    orders to match, and that is no finding; an order lost after it still gives its
    register's two (its receipt, its z-report)."""
    _orders_from(world, ORDERS_START)
    _lose_a_sale(world, world.registers[1])
    _only_the_lost_sale(world, world.registers[1])


def test_an_offline_backlog_from_before_the_orders_start_is_no_finding(world: World) -> None:
    """One register's offline orders from before the orders' start, loaded late with the
    newer ones, do not make the other registers' z-reports of those days look covered by
    orders that were never loaded: no finding; a lost order still gives its two."""
    offline = world.registers[0]
    _orders_from(world, ORDERS_START, backlog_of=offline)
    backlog = world.rows(
        "SELECT COUNT(*) FROM {orders} WHERE registerid = :r AND orderdate < :start",
        {"r": offline, "start": ORDERS_START},
    )
    assert int(backlog[0][0]) > 0
    _lose_a_sale(world, world.registers[1])
    _only_the_lost_sale(world, world.registers[1])


_OPENING = (
    "moneysalestotal",
    "moneyrefundtotal",
    "numreceipts",
    "numpractice",
    "moneypractice",
    "moneycash_in",
    "moneycash_petty",
    "moneycash_bank",
    "moneycash_counted",
    "moneycash_bankfinal",
)


def _open_over_days(world: World, registerid: str, first: int, last: int) -> tuple[date, Any]:
    """Make register `registerid` close once, with z-report `last`, for the openings of
    `first`..`last`: the ones between are gone and `last` states their journal's figures from
    `first`'s opening on. Returns `last`'s business day and the opening's start."""
    key = {"r": registerid, "first": first, "last": last}
    rows = world.rows(
        f"SELECT zreportid, dateopened, business_date, {', '.join(_OPENING)} "
        "FROM {pos_z_reports} WHERE registerid = :r AND zreportid BETWEEN :first AND :last "
        "ORDER BY zreportid",
        key,
    )
    assert [int(r[0]) for r in rows] == list(range(first, last + 1))
    opened, day = to_utc(rows[0][1]), to_day(rows[-1][2])
    assert opened is not None
    assert day is not None
    sums = {
        name: sum((to_decimal(r[3 + i]) or Decimal(0) for r in rows), Decimal(0))
        for i, name in enumerate(_OPENING)
    }
    values = {k: int(v) if k.startswith("num") else v for k, v in sums.items()}
    world.run(
        f"UPDATE {{pos_z_reports}} SET dateopened = :opened, "
        f"{', '.join(f'{name} = :{name}' for name in _OPENING)} "
        "WHERE registerid = :r AND zreportid = :last",
        {**key, **values, "opened": opened},
    )
    world.run(
        "DELETE FROM {pos_z_reports} WHERE registerid = :r AND zreportid >= :first "
        "AND zreportid < :last",
        key,
    )
    return day, opened


def test_since_judges_an_opening_of_several_days_whole(world: World) -> None:
    """A register left open over four days is judged by `--since` its closing day on its
    whole journal from the opening on: clean, no journal finding; a receipt of the opening's
    first day missing, a finding of exactly that receipt, as without `--since`."""
    clean, short = world.registers[0], world.registers[1]
    day, _ = _open_over_days(world, clean, 11, 14)
    assert _open_over_days(world, short, 11, 14)[0] == day
    ((receipt, amount),) = world.rows(
        "SELECT id, moneytotal FROM {journal_receipts} WHERE registerid = :r AND id = "
        "(SELECT MIN(id) FROM {journal_receipts} WHERE registerid = :r AND isrefund = :no "
        "AND ispractice = :no AND business_date = :day)",
        {"r": short, "no": False, "day": day - timedelta(days=3)},
    )
    world.run(
        "DELETE FROM {journal_receipts} WHERE registerid = :r AND id = :id",
        {"r": short, "id": receipt},
    )
    for scope in (Scope(), Scope(since=day)):
        run = world.verify(scope)
        journal = ("journal_receipts", "journal_cash")
        assert found(run, *journal, registerid=clean) == [], scope
        hits = found(run, *journal, registerid=short)
        assert [(f.check, f.zreportid, f.difference) for f in hits] == [
            ("journal_receipts", 14, to_decimal(amount))
        ], scope


def test_a_register_that_moved_store_is_silent_in_its_new_store(world: World) -> None:
    """A register moved from store 210 to store 200 that then goes dark is silent in store 200,
    whose registers go on reporting (and `--store 200` finds it), not hidden in the store it
    left, whose other register was retired the day it moved."""
    retired, moved = world.registers[2], world.registers[3]
    assert [r[0] for r in world.rows("SELECT DISTINCT store_id FROM {pos_z_reports} "
                                     "WHERE registerid IN (:a, :b)",
                                     {"a": retired, "b": moved})] == ["210"]  # fmt: skip
    world.run(
        "UPDATE {pos_z_reports} SET store_id = '200' WHERE registerid = :r AND zreportid > 10",
        {"r": moved},
    )
    for registerid, last in ((retired, 10), (moved, 16)):
        ((closed,),) = world.rows(
            "SELECT datecreated FROM {pos_z_reports} WHERE registerid = :r AND zreportid = :n",
            {"r": registerid, "n": last},
        )
        after = {"r": registerid, "at": to_utc(closed)}
        for table in ("journal_entries", "journal_receipts", "journal_cash_events"):
            world.run(f"DELETE FROM {{{table}}} WHERE registerid = :r AND datecreated > :at", after)
        world.run(
            "DELETE FROM {pos_z_reports} WHERE registerid = :r AND zreportid > :n",
            {"r": registerid, "n": last},
        )
    hits = found(world.verify(), "silence", registerid=moved)
    assert [(f.store_id, f.day) for f in hits] == [("200", date(2026, 11, 20))], hits
    assert hits[0].actual is not None
    assert hits[0].actual >= 4
    scoped = world.verify(Scope(store="200"))
    assert [f.registerid for f in found(scoped, "silence")] == [moved]


def _go_dark_after(world: World, registerid: str, zreportid: int) -> datetime:
    """Take every trace of `registerid` after its z-report `zreportid` out; that report's time."""
    ((closed,),) = world.rows(
        "SELECT datecreated FROM {pos_z_reports} WHERE registerid = :r AND zreportid = :n",
        {"r": registerid, "n": zreportid},
    )
    at = to_utc(closed)
    assert at is not None
    for table in ("journal_entries", "journal_receipts", "journal_cash_events", "orders"):
        world.run(
            f"DELETE FROM {{{table}}} WHERE registerid = :r AND datecreated > :at"
            if table != "orders"
            else "DELETE FROM {orders} WHERE registerid = :r AND orderdate > :at",
            {"r": registerid, "at": at},
        )
    world.run(
        "DELETE FROM {pos_z_reports} WHERE registerid = :r AND zreportid > :n",
        {"r": registerid, "n": zreportid},
    )
    return at


def test_a_register_taken_out_of_the_listing_is_silent_only_until_then(world: World) -> None:
    """A register that stopped sending and was then taken out of the listing (missing_since
    set: decommissioned) is silent only for the days up to its removal, dated then, not
    for ever after while its store's other registers go on reporting."""
    retired, kept = world.registers[:2]  # store 200's registers
    last = _go_dark_after(world, retired, 8)
    world.run(
        "UPDATE {cash_registers} SET missing_since = :gone WHERE registerid = :r",
        {"r": retired, "gone": last + timedelta(hours=20)},
    )
    assert found(world.verify(), "silence", registerid=retired) == []
    gone = last + timedelta(days=6)  # silent for six days before it was taken out
    world.run(
        "UPDATE {cash_registers} SET missing_since = :gone WHERE registerid = :r",
        {"r": retired, "gone": gone},
    )
    hits = found(world.verify(), "silence", registerid=retired)
    assert [(f.day, f.actual) for f in hits] == [
        (local_day(gone, "Europe/Stockholm"), Decimal(6))
    ], hits
    assert found(world.verify(Scope(since=gone.date() + timedelta(days=2))), "silence") == []
    assert found(world.verify(), "silence", registerid=kept) == []


def _shut(world: World, registerids: list[str], shut: datetime, reopened: datetime) -> None:
    """Take every trace of `registerids` between `shut` and `reopened` out, as if their store
    was shut then, and after `reopened` + 12 hours, as if their day was still open."""
    window = {"shut": shut, "reopened": reopened, "open": reopened + timedelta(hours=12)}
    for registerid in registerids:
        for table, at in (
            ("journal_entries", "datecreated"),
            ("journal_receipts", "datecreated"),
            ("journal_cash_events", "datecreated"),
            ("orders", "orderdate"),
            ("pos_z_reports", "datecreated"),
        ):
            world.run(
                f"DELETE FROM {{{table}}} WHERE registerid = :r AND (({at} >= :shut "
                f"AND {at} < :reopened) OR {at} > :open)",
                {**window, "r": registerid},
            )


def test_a_store_reopening_after_a_week_shut_is_not_silent(world: World) -> None:
    """A store shut for five days and open again this morning, its day not closed yet, is
    no silence finding; a register that has traded for four days without closing still is,
    its days counted from its first takings after its last z-report."""
    reopened = datetime(2026, 11, 20, tzinfo=UTC)
    store_200 = world.registers[:2]
    _shut(world, store_200, reopened - timedelta(days=5, hours=2), reopened)
    world.run(
        "DELETE FROM {store_z_reports} WHERE store_id = '200' AND day_created >= :day",
        {"day": date(2026, 11, 15)},
    )
    unclosed = world.registers[4]
    world.run(
        "DELETE FROM {pos_z_reports} WHERE registerid = :r AND business_date >= :day",
        {"r": unclosed, "day": date(2026, 11, 17)},
    )
    run = world.verify()
    assert [f.registerid for f in found(run, "silence")] == [unclosed], found(run, "silence")
    ((first,),) = world.rows(
        "SELECT MIN(datecreated) FROM {journal_cash_events} WHERE registerid = :r "
        "AND datecreated > (SELECT MAX(datecreated) FROM {pos_z_reports} WHERE registerid = :r)",
        {"r": unclosed},
    )
    ((last,),) = world.rows(
        "SELECT MAX(datecreated) FROM {journal_entries} WHERE registerid = :r", {"r": unclosed}
    )
    start, end = to_utc(first), to_utc(last)
    assert start is not None
    assert end is not None
    assert found(run, "silence")[0].actual == (end - start) // timedelta(days=1)


def test_a_pos_z_report_listed_by_another_days_store_z_report_is_found(world: World) -> None:
    """A POS z-report listed by its store's z-report of five days later, not of its own day,
    is a store_membership finding naming that store z-report (its takings shifted days)."""
    register = world.registers[0]
    ((business_day,),) = world.rows(
        "SELECT business_date FROM {pos_z_reports} WHERE registerid = :r AND zreportid = 5",
        {"r": register},
    )
    day = to_day(business_day)
    assert day is not None
    ((shifted,),) = world.rows(
        "SELECT store_zreport_id FROM {store_z_reports} WHERE store_id = '200' "
        "AND day_created = :day",
        {"day": day + timedelta(days=5)},
    )
    world.run(
        "UPDATE {store_z_report_registers} SET store_zreport_id = :to, position = 999 "
        "WHERE registerid = :r AND zreportid = 5",
        {"r": register, "to": shifted},
    )
    hits = found(world.verify(), "store_membership", registerid=register)
    assert [(f.zreportid, f.store_zreport_id) for f in hits] == [(5, shifted)], hits
    assert f"store z-report of {day + timedelta(days=5)}, not of the day" in hits[0].details
