"""`verify` at its boundaries: discrepancies it must find, and normal data it must not flag,
planted in a simulated world synced into every target."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from sitoo_sync.simulator import SimConfig
from sitoo_sync.verify import Scope, VerifyRun, run_verify
from sitoo_sync.verify.findings import Finding
from sitoo_sync.verify.source import Source, to_decimal
from sitoo_sync.warehouse import open_warehouse
from sitoo_sync.warehouse.duckdb import DuckDBWarehouse
from sitoo_sync.warehouse.sql_types import UtcDateTime
from sitoo_sync.warehouse.sqla import SqlWarehouse
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


@pytest.fixture(params=grouped_targets("verify_review"))
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    """A clean world synced into a fresh target of each kind, for one test to change."""
    (tmp_path / "target").mkdir()
    (tmp_path / "sim").mkdir()
    with target_for(str(request.param), tmp_path / "target") as fresh:
        config = SimConfig(now=int(NOW.timestamp()), **CLEAN)
        sim = sync_simulated_world(config, fresh, tmp_path / "sim", store_days=20)
        yield World(fresh, [r.registerid for r in sim.world.registers])


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
