"""Adversarial review of the orders stream: boundaries a finance user would hit."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from sitoo_sync.normalize.orders import changeable, normalize_window
from sitoo_sync.settings import Settings
from sitoo_sync.simulator import RestConfig, SimConfig, Simulator
from sitoo_sync.simulator.rest_v2.orders import render
from tests.conftest import SyncFn
from tests.support import query, settings_for
from tests.test_cursors_keyset import Endpoint, run, strategy

NOW = 1_790_000_000


@pytest.fixture
def rsim() -> Iterator[Simulator]:
    simulator = Simulator.create(SimConfig(seed=3, days=10, now=NOW, rest=RestConfig())).start()
    yield simulator
    simulator.stop()


def _settings(sim: Simulator, tmp_path: Path, **options: Any) -> Settings:
    return settings_for(
        sim, tmp_path / "w.duckdb", streams=["orders"], stream_options={"orders": options}
    )


def _tick(sync: SyncFn, settings: Settings, sim: Simulator) -> None:
    now = datetime.fromtimestamp(sim.world.config.now, UTC)
    report = sync(settings, clock=lambda: now)
    assert report.ok, report.results


# ---- child rows of an order that changes --------------------------------------------


def test_an_open_order_that_loses_lines_loses_their_rows(
    rsim: Simulator, sync: SyncFn, tmp_path: Path
) -> None:
    """An open order re-read with fewer lines (and no reserved payment any more) keeps
    only its new lines: the stale child rows go, none is appended."""
    settings = _settings(rsim, tmp_path, trailing_ids=0)
    rest = rsim.rest
    (booking,) = rest.add_orders(1, kind="booking")
    spec = rest.specs[booking["orderid"]]
    while len(spec.lines) < 3:
        spec.lines.append(spec.lines[0])
    rest.orders[spec.orderid] = render(spec)
    _tick(sync, settings, rsim)
    oid = spec.orderid
    assert query(settings, f"SELECT count(*) FROM order_items WHERE orderid = {oid}") == [(3,)]
    assert query(
        settings, f"SELECT count(*) FROM order_reserved_payments WHERE orderid = {oid}"
    ) == [(1,)]
    rest.add_orders(3)  # the cursor moves on past it
    spec.lines = spec.lines[:1]
    rest.settle(oid)
    _tick(sync, settings, rsim)
    assert query(settings, f"SELECT count(*) FROM order_items WHERE orderid = {oid}") == [(1,)]
    assert query(
        settings, f"SELECT count(*) FROM order_reserved_payments WHERE orderid = {oid}"
    ) == [(0,)]
    (row,) = query(
        settings, f"SELECT orderstateid, moneytotal_net FROM orders WHERE orderid = {oid}"
    )
    served = rest.order(oid)
    assert row == (served["orderstateid"], Decimal(served["moneytotal_net"]))


# ---- the keyset strategy against hostile but contract-allowed answers ---------------


def test_a_bare_array_answer_is_walked_to_its_end_in_one_tick() -> None:
    """An answer without totalcount (a bare array, which the contract accepts) is paged
    until a page comes back empty, not read one page per tick."""
    endpoint = Endpoint(list(range(1, 9)), bare=True)
    windows = run(strategy(changeable=changeable), endpoint, None)
    assert [i for ids, _ in windows for i in ids] == list(range(1, 9))
    assert json.loads(windows[-1][1])["after"] == 8


def test_a_reread_of_a_bare_array_capped_below_the_chunk_keeps_the_rest_followed() -> None:
    """Open orders re-read by id from a server that caps `num` and answers without a
    totalcount are asked again for the ids not yet answered, not forgotten as gone."""
    endpoint = Endpoint(list(range(1, 11)), cap=2, bare=True)
    for i in (1, 2, 3, 5):
        endpoint.records[i]["orderstateid"] = 0
    stored = json.dumps({"after": 10, "newest": 1010, "open": [1, 2, 3, 5]})
    windows = run(strategy(changeable=changeable), endpoint, stored)
    assert sorted(windows[0][0]) == [1, 2, 3, 5]
    assert json.loads(windows[-1][1])["open"] == [1, 2, 3, 5]


# ---- states and days ------------------------------------------------------------------


def test_an_open_state_sent_as_a_digit_string_is_still_followed() -> None:
    """A state the normalizer stores as 0 Open (sent as "0") is read again next tick, and
    its name is filled: the warehouse never shows an open order the sync stopped reading."""
    order = {"orderid": 7, "orderdate": NOW, "orderstateid": "0", "paymentstateid": "10",
             "ordertypeid": "10", "currencycode": "SEK"}  # fmt: skip
    assert changeable(order)
    assert changeable({**order, "orderstateid": "10", "paymentstateid": "15"})
    assert not changeable({**order, "orderstateid": "10", "paymentstateid": "20"})
    row = normalize_window([order], {"partition": "1"}).tables["orders"].to_pylist()[0]
    assert (row["orderstateid"], row["orderstateid_name"]) == (0, "Open")
    assert row["paymentstateid_name"] == "Pending"


def test_an_unknown_pos_timezone_falls_back_to_the_sites_zone_not_utc() -> None:
    """A POS order whose pos-timezone names no zone gets its site's local day (here the
    day after the UTC one), not the UTC day."""
    late_evening_utc = int(datetime(2026, 3, 2, 23, 30, tzinfo=UTC).timestamp())
    order = {
        "orderid": 7,
        "eshopid": 1,
        "orderdate": late_evening_utc,
        "orderstateid": 10,
        "currencycode": "SEK",
        "additionaldata": {"pos-timezone": "Europe/Stokholm"},
    }
    context = {"partition": "1", "site_zones": {"1": "Europe/Stockholm"}}
    row = normalize_window([order], context).tables["orders"].to_pylist()[0]
    assert row["business_date"] == date(2026, 3, 3)


# ---- states that change while the walk pages ------------------------------------------


def test_orders_that_settle_while_their_pages_are_read_land_in_their_final_state(
    sync: SyncFn, tmp_path: Path
) -> None:
    """Open orders that settle right after a page showed them (small pages, no trailing
    window) are loaded open, then read again by id: the next tick holds every order in the
    state and with the payments served."""
    sim = Simulator.create(
        SimConfig(seed=3, days=10, now=NOW, rest=RestConfig(settles_per_request=1))
    ).start()
    try:
        opened = set(sim.rest.open_orders())
        settings = _settings(sim, tmp_path, page_size=7, trailing_ids=0)
        _tick(sync, settings, sim)
        served = {i: o for i, o in sim.rest.orders.items() if o["eshopid"] in sim.world.site_ids()}
        settled = (opened - set(sim.rest.open_orders())) & set(served)
        assert settled
        loaded = dict(query(settings, "SELECT orderid, orderstateid FROM orders"))
        assert {loaded[i] for i in settled} == {0}  # loaded as the page showed them: open
        sim.world.config.rest.settles_per_request = 0
        _tick(sync, settings, sim)
        rows = query(settings, "SELECT orderid, orderstateid, paymentstateid FROM orders")
        assert {r[0]: r[1:] for r in rows} == {
            i: (o["orderstateid"], o["paymentstateid"]) for i, o in served.items()
        }
        payments = query(settings, "SELECT orderid, count(*) FROM order_payments GROUP BY 1")
        assert dict(payments) == {i: len(o["payments"]) for i, o in served.items() if o["payments"]}
    finally:
        sim.stop()


def test_an_orderid_sent_as_a_digit_string_loads_as_the_walk_reads_it() -> None:
    """The walk steps past an orderid sent as "105" (it reads it as 105), so the
    normalizer loads that order under 105 instead of rejecting it: nothing is stepped over
    that the orders table never holds."""
    order = {"orderid": "105", "orderdate": NOW, "orderstateid": 10, "currencycode": "SEK",
             "orderitems": [{"orderitemid": 0, "quantity": 1}]}  # fmt: skip
    window = normalize_window([order], {"partition": "1"})
    assert window.rejects == []
    assert window.tables["orders"].column("orderid").to_pylist() == [105]
    assert window.tables["order_items"].column("orderid").to_pylist() == [105]


def test_more_open_orders_than_a_tick_reads_all_settle_within_a_round_of_ticks(
    rsim: Simulator, sync: SyncFn, tmp_path: Path
) -> None:
    """With more open orders than `reread_per_tick`, the ticks read them again in turns:
    after enough ticks for one round every settled order is final in the warehouse, and no
    tick read more of them again than its share."""
    site = rsim.world.site_ids()[0]  # one partition: its share is the tick's
    settings = settings_for(
        rsim,
        tmp_path / "w.duckdb",
        streams=["orders"],
        site_ids=[site],
        stream_options={"orders": {"trailing_ids": 0, "reread_per_tick": 2}},
    )
    _tick(sync, settings, rsim)
    opened = [i for i in rsim.rest.open_orders() if rsim.rest.orders[i]["eshopid"] == site]
    assert len(opened) > 4, "the world needs more open orders than two ticks' share"
    for orderid in opened:
        rsim.rest.settle(orderid)
    ticks = -(-len(opened) // 2)
    for _ in range(ticks - 1):
        _tick(sync, settings, rsim)
    states = dict(query(settings, "SELECT orderid, orderstateid FROM orders"))
    still = [i for i in opened if states[i] != rsim.rest.orders[i]["orderstateid"]]
    assert 0 < len(still) <= 2  # one tick of the round left
    _tick(sync, settings, rsim)
    states = dict(query(settings, "SELECT orderid, orderstateid FROM orders"))
    assert {i: states[i] for i in opened} == {
        i: rsim.rest.orders[i]["orderstateid"] for i in opened
    }
