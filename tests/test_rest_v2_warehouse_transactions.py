"""Warehouse transactions end to end: the fixture and the REST v2 simulator → warehouse."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from sitoo_sync.normalize.warehouse_transactions import normalize_window
from sitoo_sync.settings import Settings
from sitoo_sync.simulator import SimConfig, Simulator
from tests.conftest import SyncFn
from tests.support import FIXTURES, query, settings_for

NOW = 1_790_000_000
PATH = "/warehousetransactions"


@pytest.fixture
def rsim() -> Iterator[Simulator]:
    simulator = Simulator.create(SimConfig(seed=3, days=10, now=NOW)).start()
    yield simulator
    simulator.stop()


def tick(sync: SyncFn, settings: Settings, sim: Simulator) -> None:
    report = sync(settings, clock=lambda: datetime.fromtimestamp(sim.world.config.now, UTC))
    assert report.ok, report.results


def transaction_settings(sim: Simulator, tmp_path: Path, **options: Any) -> Settings:
    return settings_for(
        sim,
        tmp_path / "warehouse.duckdb",
        streams=["warehouse_transactions"],
        stream_options={"warehouse_transactions": options},
    )


def served(sim: Simulator) -> list[dict[str, Any]]:
    sites = set(sim.world.site_ids())
    stock = sim.rest.stock
    return [
        t
        for t in stock.transactions
        if stock.transaction_site[t["warehousetransactionid"]] in sites
    ]


def counts(settings: Settings) -> tuple[int, int]:
    parents = query(settings, "SELECT count(*) FROM warehouse_transactions")[0][0]
    items = query(settings, "SELECT count(*) FROM warehouse_transaction_items")[0][0]
    return int(parents), int(items)


def test_fixture_normalizes_into_typed_rows() -> None:
    """The fixture's transaction becomes typed columns, an inferred type name, and lines
    keyed by (transaction, position) without the repeated parent id."""
    data = json.loads(
        (FIXTURES / "rest_v2_warehousetransactions.json").read_text(), parse_float=Decimal
    )
    window = normalize_window(data["response"]["items"], {"partition": "1"})
    assert window.rejects == []
    (row,) = window.tables["warehouse_transactions"].to_pylist()
    assert row["warehousetransactionid"] == 5267
    assert row["site_id"] == 1
    assert row["datecreated"] == datetime.fromtimestamp(1789999940, UTC)
    assert (row["transactiontype"], row["transactiontype_name"]) == (30, "Sales")
    assert row["orderdeliveryid"] == 600269
    (item,) = window.tables["warehouse_transaction_items"].to_pylist()
    assert (item["warehousetransactionid"], item["position"]) == (5267, 0)
    assert item["decimalquantity"] == Decimal("-1.000")
    assert item["moneyvalue"] == Decimal("-251.49")
    assert item["extra"] is None


def test_backfill_then_a_quiet_tick_costs_one_request_per_site(
    rsim: Simulator, sync: SyncFn, tmp_path: Path
) -> None:
    """Every transaction of the configured sites loads once, over several pages; a tick with
    nothing new makes one request per site (its trailing span of ids fits one page) and
    changes nothing."""
    settings = transaction_settings(rsim, tmp_path, page_size=60)
    tick(sync, settings, rsim)
    expected = served(rsim)
    assert counts(settings) == (len(expected), sum(len(t["items"]) for t in expected))
    ids = {
        r[0] for r in query(settings, "SELECT warehousetransactionid FROM warehouse_transactions")
    }
    assert ids == {t["warehousetransactionid"] for t in expected}
    before = query(settings, "SELECT * FROM warehouse_transaction_items ORDER BY ALL")
    requests = rsim.requests_to(PATH)
    tick(sync, settings, rsim)
    assert rsim.requests_to(PATH) - requests == len(rsim.world.site_ids())
    assert query(settings, "SELECT * FROM warehouse_transaction_items ORDER BY ALL") == before


def test_new_transactions_land_next_tick(rsim: Simulator, sync: SyncFn, tmp_path: Path) -> None:
    """Sales and a refund made after a tick add their transactions, signed, next tick."""
    settings = transaction_settings(rsim, tmp_path)
    tick(sync, settings, rsim)
    (sale,) = rsim.rest.add_orders(1)
    refund = rsim.rest.add_refund(sale["orderid"])
    tick(sync, settings, rsim)
    expected = served(rsim)
    assert counts(settings) == (len(expected), sum(len(t["items"]) for t in expected))
    kinds = query(
        settings,
        "SELECT t.transactiontype_name, sign(i.decimalquantity) FROM warehouse_transactions t "
        "JOIN warehouse_transaction_items i USING (warehousetransactionid) "
        "WHERE t.orderdeliveryid - 500000 IN "  # the simulator's delivery id of an order
        f"({sale['orderid']}, {refund['orderid']}) GROUP BY ALL",
    )
    assert sorted(kinds) == [("Refund", 1), ("Sales", -1)]


def test_injected_faults_lose_and_duplicate_nothing(
    rsim: Simulator, sync: SyncFn, tmp_path: Path
) -> None:
    """Server errors, a rate limit and a dropped connection mid-walk are retried: every
    transaction and line is loaded exactly once."""
    rsim.faults.queue("500", times=2, path=PATH)
    rsim.faults.queue("429", path=PATH, retry_after=0, after=1)
    rsim.faults.queue("drop", path=PATH, after=2)
    settings = transaction_settings(rsim, tmp_path, page_size=30)
    tick(sync, settings, rsim)
    expected = served(rsim)
    assert counts(settings) == (len(expected), sum(len(t["items"]) for t in expected))
    distinct = query(
        settings,
        "SELECT count(DISTINCT (warehousetransactionid, position)) "
        "FROM warehouse_transaction_items",
    )
    assert distinct == [(sum(len(t["items"]) for t in expected),)]
    assert not rsim.faults._queue  # every fault was served
