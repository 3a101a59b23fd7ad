"""`verify`'s orders check: closed POS orders per register and day against the z-reports, and
journal receipts against orders, on a simulated world synced into every target."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from sitoo_sync.simulator import SimConfig
from sitoo_sync.verify import Scope, VerifyRun, run_verify
from sitoo_sync.verify.checks import CHECKS
from sitoo_sync.verify.findings import Finding
from sitoo_sync.verify.source import Source, to_day, to_decimal
from sitoo_sync.warehouse import open_warehouse
from sitoo_sync.warehouse.base import Warehouse
from tests.support import sync_simulated_world
from tests.targets import Target, grouped_targets, target_for

NOW = datetime(2026, 11, 20, 23, 30, tzinfo=UTC)
CLEAN: dict[str, Any] = {"seed": 12, "days": 12, "cash_differences": False}


@dataclass
class Synced:
    """A simulated world synced into a target: where, and its registers."""

    target: Target
    registers: list[str]
    first_run: VerifyRun | None = None  # verify's run before any test changed the world

    def open(self) -> Warehouse:
        return open_warehouse(self.target.url, schema=self.target.schema)

    def verify(self, scope: Scope | None = None) -> VerifyRun:
        warehouse = self.open()
        try:
            return run_verify(warehouse, scope or Scope(), write=False)
        finally:
            warehouse.close()

    def rows(self, sql: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        warehouse = self.open()
        try:
            with warehouse.transaction():
                return list(Source(warehouse).rows(sql, params or {}))
        finally:
            warehouse.close()

    def change(self, sql: str) -> None:
        """One `{table}` statement, literals inline (a GUID's braces doubled)."""
        warehouse = self.open()
        try:
            with warehouse.transaction():
                warehouse.execute(Source(warehouse).sql(sql))
        finally:
            warehouse.close()


def _sync(target: Target, tmp: Path) -> Synced:
    config = SimConfig(now=int(NOW.timestamp()), **CLEAN)
    sim = sync_simulated_world(config, target, tmp, store_days=12)
    synced = Synced(target, [r.registerid for r in sim.world.registers])
    synced.first_run = synced.verify()
    return synced


@pytest.fixture(scope="module", params=grouped_targets("verify_orders"))
def target(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def world(target: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synced]:
    """A clean world synced into a fresh target: each test changes its own register."""
    with target_for(target, tmp_path_factory.mktemp(target)) as fresh:
        yield _sync(fresh, tmp_path_factory.mktemp("sim"))


def orders_found(run: VerifyRun, registerid: str | None = None) -> list[Finding]:
    return [
        f
        for f in run.findings
        if f.check == "orders" and (registerid is None or f.registerid == registerid)
    ]


def _literal(registerid: str) -> str:
    return "'" + registerid.replace("{", "{{").replace("}", "}}") + "'"


def _orders_of(world: Synced, registerid: str) -> list[tuple[int, date, Decimal, str, Decimal]]:
    """(orderid, business day, items gross, receipt id, moneytotal_vat) of the register's
    closed POS sales, by orderid."""
    rows = world.rows(
        "SELECT orderid, business_date, {cents(moneytotal_net)} + {cents(moneytotal_vat)}, "
        "pos_receiptid, moneytotal_vat FROM {orders} WHERE registerid = :r "
        "AND orderstateid = 10 ORDER BY orderid",
        {"r": registerid},
    )
    out = []
    for orderid, day, gross, receipt, vat in rows:
        on, vat_ = to_day(day), to_decimal(vat)
        assert on is not None
        assert vat_ is not None
        if int(gross) > 0:
            out.append((int(orderid), on, Decimal(int(gross)).scaleb(-2), str(receipt), vat_))
    return out


def _middle_day(orders: list[tuple[int, date, Decimal, str, Decimal]]) -> date:
    days = sorted({o[1] for o in orders})
    return days[len(days) // 2]


def test_the_clean_world_gives_no_order_finding(world: Synced) -> None:
    """Synced as the simulator serves it, every register's day of orders equals its
    z-reports and every receipt has its order: the check runs (tables present) and passes."""
    counts = world.rows(
        "SELECT (SELECT COUNT(*) FROM {orders} WHERE registerid IS NOT NULL), "
        "(SELECT COUNT(*) FROM {journal_receipts})"
    )
    assert all(int(n) > 100 for n in counts[0])
    run = world.first_run
    assert run is not None
    result = next(r for r in run.results if r.check.name == "orders")
    assert (result.status, orders_found(run)) == ("passed", [])


def test_a_missing_order_is_found_against_its_z_report_and_its_receipt(world: Synced) -> None:
    """An order lost from the warehouse shows twice at its register and day: the z-report
    states more sales than the orders come to (by that order, to the cent), and its
    journal receipt has no order."""
    register = world.registers[3]
    orders = _orders_of(world, register)
    day = _middle_day(orders)
    orderid, _, gross, receipt, _ = next(o for o in orders if o[1] == day)
    world.change(f"DELETE FROM {{orders}} WHERE orderid = {orderid}")
    hits = orders_found(world.verify(), register)
    assert [(f.day, f.difference) for f in hits] == [(day, gross), (day, Decimal(-1))], hits
    by_report, by_receipt = hits
    assert by_report.zreportid is not None
    assert by_report.store_id
    assert f"moneysalestotal {by_report.actual}" in by_report.details
    assert receipt in by_receipt.details
    assert (by_receipt.expected, by_receipt.actual) == (Decimal(1), Decimal(0))
    assert f"together {gross}" in by_receipt.details


def test_a_changed_order_amount_is_found_to_the_cent(world: Synced) -> None:
    """An order whose VAT reads 1.00 more makes its day's orders exceed the z-report's
    moneysalestotal by exactly 1.00, and nothing else."""
    register = world.registers[4]
    orders = _orders_of(world, register)
    day = _middle_day(orders)
    orderid, _, _, _, vat = next(o for o in orders if o[1] == day)
    world.change(f"UPDATE {{orders}} SET moneytotal_vat = '{vat + 1}' WHERE orderid = {orderid}")
    hits = orders_found(world.verify(), register)
    assert [(f.day, f.difference) for f in hits] == [(day, Decimal("-1.00"))], hits
    assert hits[0].expected is not None
    assert hits[0].actual == hits[0].expected - 1


def _drop_z_report(world: Synced, register: str, day: date) -> int:
    """Delete the register's z-report of `day` from the warehouse; its zreportid."""
    (zreportid,) = [
        int(r[0])
        for r in world.rows(
            "SELECT zreportid FROM {pos_z_reports} WHERE registerid = :r AND business_date = :d",
            {"r": register, "d": day},
        )
    ]
    world.change(
        f"DELETE FROM {{pos_z_reports}} WHERE registerid = {_literal(register)} "
        f"AND zreportid = {zreportid}"
    )
    return zreportid


def _closing_after(world: Synced, register: str, zreportid: int) -> tuple[int, Decimal]:
    """The register's next z-report in the warehouse after `zreportid`: its id and sales."""
    rows = world.rows(
        "SELECT zreportid, moneysalestotal FROM {pos_z_reports} WHERE registerid = :r "
        "AND zreportid > :z ORDER BY zreportid",
        {"r": register, "z": zreportid},
    )
    return int(rows[0][0]), Decimal(str(rows[0][1]))


def test_a_missing_z_report_leaves_its_orders_to_the_next(world: Synced) -> None:
    """A z-report not in the warehouse leaves its period's orders to the next z-report, whose
    finding sums both periods' orders against what it states and names the gap."""
    register = world.registers[5]
    orders = _orders_of(world, register)
    day = _middle_day(orders)
    zreportid = _drop_z_report(world, register, day)
    following, stated = _closing_after(world, register, zreportid)
    hits = orders_found(world.verify(), register)
    assert [(f.zreportid, f.actual) for f in hits] == [(following, stated)], hits
    assert hits[0].expected is not None
    assert hits[0].expected > stated
    assert f"since z-report {zreportid - 1} " in hits[0].details
    assert hits[0].details.endswith(f"z-report {zreportid} between them is missing")


def test_a_z_report_the_load_rejected_is_named_by_the_next(world: Synced) -> None:
    """A z-report the load rejected (kept in rejects, not in pos_z_reports) is named in the
    next z-report's finding, as numbering_gap names it: the cause is the reject, not a
    register whose sales went unrecorded."""
    register = world.registers[7]
    day = _middle_day(_orders_of(world, register))
    zreportid = _drop_z_report(world, register, day)
    world.change(
        "INSERT INTO {rejects} (reject_id, stream, record_key, reason) VALUES "
        f"('orders-test-reject', 'pos_z_reports', {_literal(f'{register}/{zreportid}')}, "
        "'bad money')"
    )
    following, _ = _closing_after(world, register, zreportid)
    (hit,) = orders_found(world.verify(), register)
    assert hit.zreportid == following
    assert hit.details.endswith(
        f"z-report {zreportid} between them was rejected at load (see rejects)"
    ), hit.details


def test_a_day_the_register_did_not_close_is_in_the_next_closings_period(world: Synced) -> None:
    """A register that closes two days in one z-report (a day without closing, or a closing
    after local midnight) is no finding when its z-report states both days' sales: the
    orders are matched by the period the z-report closes, not by calendar day."""
    register = world.registers[8]
    day = _middle_day(_orders_of(world, register))
    zreportid = _drop_z_report(world, register, day)
    following, stated = _closing_after(world, register, zreportid)
    (hit,) = orders_found(world.verify(), register)
    assert hit.expected is not None
    both = hit.expected  # what the two days' orders come to
    world.change(
        f"UPDATE {{pos_z_reports}} SET moneysalestotal = {both} "
        f"WHERE registerid = {_literal(register)} AND zreportid = {following}"
    )
    assert orders_found(world.verify(), register) == []
    assert both > stated


def test_since_and_store_scope_the_orders_findings(world: Synced) -> None:
    """--store keeps a register's day of orders to its store's run, --since drops days
    before it: the orders findings obey the scope as the z-report checks do."""
    register = world.registers[6]
    orders = _orders_of(world, register)
    day = _middle_day(orders)
    orderid = next(o for o in orders if o[1] == day)[0]
    world.change(f"DELETE FROM {{orders}} WHERE orderid = {orderid}")
    (hit, receipt_hit) = orders_found(world.verify(), register)
    assert hit.store_id is not None
    assert orders_found(world.verify(Scope(store=hit.store_id)), register) == [hit, receipt_hit]
    other = "300" if hit.store_id != "300" else "200"
    assert orders_found(world.verify(Scope(store=other)), register) == []
    assert orders_found(world.verify(Scope(since=day + timedelta(days=1))), register) == []
    assert orders_found(world.verify(Scope(since=day)), register) == [hit, receipt_hit]


def test_without_an_orders_table_the_check_is_skipped_with_its_reason(tmp_path: Path) -> None:
    """A warehouse holding z-reports but no orders skips the check and says why."""
    from sitoo_sync.normalize.pos_z_reports import TABLES as POS_TABLES

    warehouse = open_warehouse(f"duckdb:///{tmp_path / 'w.duckdb'}")
    try:
        warehouse.ensure_schema(list(POS_TABLES))
        run = run_verify(warehouse, Scope(), write=False)
    finally:
        warehouse.close()
    result = next(r for r in run.results if r.check.name == "orders")
    assert (result.status, result.reason) == ("skipped", "no table orders in the warehouse yet")


def test_the_rule_names_what_it_compares() -> None:
    """The declared rule names the columns and the judging conditions it applies."""
    (check,) = [c for c in CHECKS if c.name == "orders"]
    assert check.find is not None
    assert not check.unavailable
    for words in ("moneysalestotal", "moneyrefundtotal", "orderstateid", "pos-receiptid",
                  "previous z-report", "datecreated", "second z-report"):  # fmt: skip
        assert words in check.rule
