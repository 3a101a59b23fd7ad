"""Orders end to end: the vendor-shaped fixture and the hostile REST v2 simulator → warehouse."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import time
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from sitoo_sync.errors import FatalApiError, RetryBudgetExhausted
from sitoo_sync.log import configure_logging
from sitoo_sync.normalize.orders import TABLES, normalize_window
from sitoo_sync.normalize.personal import PersonalData
from sitoo_sync.settings import Settings
from sitoo_sync.simulator import RestConfig, SimConfig, Simulator
from sitoo_sync.simulator.money import money as money_text
from sitoo_sync.simulator.rest_v2 import totals
from tests.conftest import SyncFn
from tests.support import (
    FIXTURES,
    PipeLines,
    query,
    run_once_process,
    settings_for,
    target_settings,
)
from tests.targets import SERVERS, Target, target_for

NOW = 1_790_000_000  # a fixed clock: every run builds the same world
STREAMS = ["orders"]


def make_sim(**rest: Any) -> Simulator:
    """A serving simulator at the fixed clock with REST v2 knobs `rest`."""
    return Simulator.create(SimConfig(seed=3, days=10, now=NOW, rest=RestConfig(**rest))).start()


@pytest.fixture
def rsim() -> Iterator[Simulator]:
    simulator = make_sim()
    yield simulator
    simulator.stop()


def clock(sim: Simulator) -> Any:
    return lambda: datetime.fromtimestamp(sim.world.config.now, UTC)


def orders_settings(sim: Simulator, tmp_path: Path, **overrides: Any) -> Settings:
    """Settings for the orders stream alone, with its options in `orders`."""
    options = overrides.pop("orders", {})
    return settings_for(
        sim,
        tmp_path / "warehouse.duckdb",
        streams=STREAMS,
        stream_options={"orders": options},
        **overrides,
    )


def tick(sync: SyncFn, settings: Settings, sim: Simulator) -> None:
    report = sync(settings, clock=clock(sim))
    assert report.ok, report.results


def loaded_orders(settings: Settings) -> dict[int, tuple[Any, ...]]:
    rows = query(
        settings,
        "SELECT orderid, orderstateid, paymentstateid, ordertypeid, moneytotal_gross_all, "
        "creditorderid FROM orders",
    )
    return {r[0]: r for r in rows}


def served(sim: Simulator) -> dict[int, dict[str, Any]]:
    """Every order the simulator serves for the configured sites."""
    return {i: o for i, o in sim.rest.orders.items() if o["eshopid"] in sim.world.site_ids()}


def fixture_orders() -> list[dict[str, Any]]:
    data = json.loads((FIXTURES / "rest_v2_orders.json").read_text(), parse_float=Decimal)
    items: list[dict[str, Any]] = data["response"]["items"]
    return items


def test_fixture_normalizes_into_typed_rows_with_keyed_children() -> None:
    """The orders fixture becomes Decimal money, UTC times, enum names, the store and
    currency, and item and payment rows keyed by (orderid, position)."""
    window = normalize_window(fixture_orders(), {"partition": "1"})
    assert window.rejects == []
    order = window.tables["orders"].to_pylist()[0]
    assert (order["orderid"], order["site_id"]) == (100004, 1)
    assert order["moneytotal_gross_all"] == Decimal("3528.04")
    assert order["orderdate"] == datetime.fromtimestamp(1789118219, UTC)
    assert order["orderdate"].utcoffset().total_seconds() == 0
    assert (
        order["business_date"]
        == datetime.fromtimestamp(1789118219, ZoneInfo("Europe/Stockholm")).date()
    )
    assert (order["orderstateid_name"], order["paymentstateid_name"]) == ("Closed", "Successful")
    assert order["ordertypeid_name"] == "Order"
    assert order["store_externalid"] == "230"
    assert order["pos_receiptid"] == "SII000000010000000014"
    assert order["additionaldata"] is None  # personal by default: dropped
    items = window.tables["order_items"].to_pylist()
    assert [(i["orderid"], i["position"], i["currencycode"]) for i in items] == [
        (100004, 0, "SEK"),
        (100004, 1, "SEK"),
        (100004, 2, "SEK"),
    ]
    assert sum(i["moneyitemtotal_net"] for i in items) == Decimal("3190.29")
    assert items[0]["vatvalue"] == Decimal(6)
    assert items[0]["product_group_name"] == "Books"
    assert items[0]["moneyrowdiscount_total"] == Decimal("469.96")
    payments = window.tables["order_payments"].to_pylist()
    assert [(p["position"], p["name"], p["moneyamount"]) for p in payments] == [
        (0, "Gift Card", Decimal("1058.41")),
        (1, "Card", Decimal("2469.63")),
    ]
    # the same window again gives the same keys: positions are deterministic
    again = normalize_window(fixture_orders(), {"partition": "1"})
    assert again.tables["order_items"].equals(window.tables["order_items"])


def test_sales_taxes_nest_under_their_line_with_the_currency() -> None:
    """A line's salestaxes become rows keyed by (orderid, item_position, position) that
    carry the order's currency and Decimal amounts."""
    order = fixture_orders()[0]
    tax = {"name": "State", "code": "ST", "externalid": None, "groupregion": "CA",
           "moneytotal": "100.00", "moneytax": "7.25", "decimaltaxvalue": "7.250"}  # fmt: skip
    order["orderitems"][1]["salestaxes"] = [tax, {**tax, "name": "City", "moneytax": "1.00"}]
    window = normalize_window([order], {"partition": "1"})
    assert window.rejects == []
    rows = window.tables["order_item_sales_taxes"].to_pylist()
    assert [(r["orderid"], r["item_position"], r["position"], r["currencycode"]) for r in rows] == [
        (100004, 1, 0, "SEK"),
        (100004, 1, 1, "SEK"),
    ]
    assert [r["moneytax"] for r in rows] == [Decimal("7.25"), Decimal("1.00")]
    assert rows[0]["decimaltaxvalue"] == Decimal("7.250")


def test_an_undocumented_state_keeps_its_number_and_no_name() -> None:
    """A code the docs do not name is stored as its number with a NULL companion name."""
    order = {**fixture_orders()[0], "orderstateid": 77}
    row = normalize_window([order], {"partition": "1"}).tables["orders"].to_pylist()[0]
    assert (row["orderstateid"], row["orderstateid_name"]) == (77, None)


def test_backfill_loads_every_order_once_with_its_lines(
    rsim: Simulator, sync: SyncFn, tmp_path: Path
) -> None:
    """A first tick loads every order of the configured sites once, lines and payments too."""
    settings = orders_settings(rsim, tmp_path, orders={"page_size": 17})
    tick(sync, settings, rsim)
    orders = served(rsim)
    assert set(loaded_orders(settings)) == set(orders)
    lines = sum(len(o["orderitems"]) for o in orders.values())
    payments = sum(len(o["payments"]) for o in orders.values())
    assert query(settings, "SELECT count(*) FROM order_items") == [(lines,)]
    assert query(settings, "SELECT count(*) FROM order_payments") == [(payments,)]
    mismatched = query(
        settings,
        "SELECT count(*) FROM orders o JOIN (SELECT orderid, sum(moneyitemtotal_net) n "
        "FROM order_items GROUP BY orderid) i USING (orderid) WHERE i.n <> o.moneytotal_net",
    )
    assert mismatched == [(0,)]


def test_a_late_offline_order_with_an_old_orderdate_lands(
    rsim: Simulator, sync: SyncFn, tmp_path: Path
) -> None:
    """An order made offline three days ago that reaches Sitoo now is loaded next tick."""
    settings = orders_settings(rsim, tmp_path, orders={"trailing_ids": 0})
    tick(sync, settings, rsim)
    late = rsim.rest.add_late_order(NOW - 3 * 86400)
    tick(sync, settings, rsim)
    (row,) = query(settings, f"SELECT orderdate FROM orders WHERE orderid = {late['orderid']}")
    assert row[0] == datetime.fromtimestamp(NOW - 3 * 86400, UTC)


def test_an_order_that_changes_state_is_updated_next_tick(
    rsim: Simulator, sync: SyncFn, tmp_path: Path
) -> None:
    """Open orders (old and new) read once are read again by id and land in their new
    state, with no trailing window to help."""
    settings = orders_settings(rsim, tmp_path, orders={"trailing_ids": 0})
    (pending,) = rsim.rest.add_orders(1, kind="pending")
    old_open = rsim.rest.open_orders()[0]  # an open order from the history, far below
    tick(sync, settings, rsim)
    assert loaded_orders(settings)[pending["orderid"]][1:3] == (0, 10)
    rsim.rest.add_orders(5)  # the cursor moves on past both
    rsim.rest.settle(pending["orderid"], to="sale")
    rsim.rest.settle(old_open)
    tick(sync, settings, rsim)
    loaded = loaded_orders(settings)
    assert loaded[pending["orderid"]][1:3] == (10, 20)
    now_served = rsim.rest.order(old_open)
    assert loaded[old_open][1:3] == (now_served["orderstateid"], now_served["paymentstateid"])
    assert loaded[old_open][1] != 0
    payments = query(
        settings, f"SELECT count(*) FROM order_payments WHERE orderid = {pending['orderid']}"
    )
    assert payments == [(len(rsim.rest.order(pending["orderid"])["payments"]),)]
    assert payments[0][0] > 0
    cursor = json.loads(
        query(settings, "SELECT cursor FROM sync_state WHERE partition_key = '1'")[0][0]
    )
    assert pending["orderid"] not in cursor["open"]
    assert old_open not in cursor["open"]
    assert set(cursor["open"]) == {
        i for i in rsim.rest.open_orders() if served(rsim).get(i, {}).get("eshopid") == 1
    }


def test_a_refund_lands_as_its_own_negative_order(
    rsim: Simulator, sync: SyncFn, tmp_path: Path
) -> None:
    """A refund made after the sale was loaded is a new order with negative amounts and
    quantities that names the sale in creditorderid; the sale is unchanged."""
    settings = orders_settings(rsim, tmp_path)
    tick(sync, settings, rsim)
    sale = next(
        o for o in rsim.rest.orders.values()
        if o["orderstateid"] == 10 and o["creditorderid"] is None and o["registerid"]
        and o["ordertypeid"] == 10
    )  # fmt: skip
    before = loaded_orders(settings)[sale["orderid"]]
    refund = rsim.rest.add_refund(sale["orderid"])
    tick(sync, settings, rsim)
    loaded = loaded_orders(settings)
    assert loaded[sale["orderid"]] == before
    row = loaded[refund["orderid"]]
    assert row[5] == sale["orderid"]
    assert row[4] == Decimal(refund["moneytotal_gross_all"]) < 0
    quantities = query(
        settings,
        f"SELECT quantity, moneyitemtotal_net FROM order_items WHERE orderid = {refund['orderid']}",
    )
    assert quantities
    assert all(q < 0 and n < 0 for q, n in quantities)


def test_pages_shifting_under_new_orders_lose_and_duplicate_nothing(
    sync: SyncFn, tmp_path: Path
) -> None:
    """With three new orders arriving before every answer and small pages, two ticks hold
    every order exactly once, lines included."""
    sim = make_sim(orders_per_request=3)
    try:
        settings = orders_settings(sim, tmp_path, orders={"page_size": 7})
        tick(sync, settings, sim)
        sim.world.config.rest.orders_per_request = 0
        tick(sync, settings, sim)
        orders = served(sim)
        assert set(loaded_orders(settings)) == set(orders)
        lines = sum(len(o["orderitems"]) for o in orders.values())
        assert query(settings, "SELECT count(*), count(DISTINCT (orderid, position)) "
                     "FROM order_items") == [(lines, lines)]  # fmt: skip
    finally:
        sim.stop()


def personal_values(sim: Simulator) -> set[str]:
    """Every personal value the simulator's orders carry (contact, address, CRM, payer)."""
    fields = ("email", "namefirst", "namelast", "personalid", "phone", "invoice_address",
              "delivery_address", "comment")  # fmt: skip
    found: set[str] = set()
    for order in sim.rest.orders.values():
        found |= {order[f] for f in fields if isinstance(order.get(f), str) and len(order[f]) > 3}
        extra = order.get("additionaldata", {})
        found |= {extra[k] for k in ("crm-customerid", "pos-staffsales-name") if k in extra}
        for payment in order["payments"]:
            if "mobile" in payment["additionaldata"]:
                found.add(payment["additionaldata"]["mobile"])
    return found


def customer_orders(sim: Simulator) -> tuple[int, int, str]:
    """Two orders of one customer and the customer's email."""
    by_email: dict[str, list[int]] = defaultdict(list)
    for order in served(sim).values():
        if order["email"]:
            by_email[order["email"]].append(order["orderid"])
    email, ids = next((e, i) for e, i in sorted(by_email.items()) if len(i) >= 2)
    return ids[0], ids[1], email


@pytest.mark.parametrize("mode", ["drop", "hash", "keep"])
def test_personal_data_modes_and_no_personal_value_in_the_log(
    mode: str,
    rsim: Simulator,
    sync: SyncFn,
    tmp_path: Path,
) -> None:
    """drop stores NULL, hash a keyed HMAC equal across one customer's orders, keep the
    value; no personal value reaches the log, not even a rejected order's."""
    first, second, email = customer_orders(rsim)
    bad = dict(rsim.rest.orders[first])
    bad_id = max(rsim.rest.orders) + 1
    # A personal field that cannot be read comes first in the columns (its reason is the one
    # kept in keep mode); a plain bad field after it rejects the order in the other modes.
    rsim.rest.orders[bad_id] = {**bad, "orderid": bad_id, "phone": {"personal": email},
                                "invoice_countryid": {"not": "text"}}  # fmt: skip
    extra: dict[str, Any] = {"personal_data": mode}
    if mode == "hash":
        extra["personal_data_key"] = "k3y-for-the-tests-only"
    settings = orders_settings(rsim, tmp_path, **extra)
    out = io.StringIO()  # the log as it leaves the process, whatever configured logging before
    configure_logging(fmt="json", level="DEBUG", stream=out)
    tick(sync, settings, rsim)
    rows = dict(
        query(settings, f"SELECT orderid, email FROM orders WHERE orderid IN ({first}, {second})")
    )
    if mode == "drop":
        assert rows == {first: None, second: None}
    elif mode == "hash":
        assert (
            rows[first]
            == rows[second]
            == PersonalData("hash", b"k3y-for-the-tests-only").digest(email)
        )
        assert rows[first] != email
        assert len(rows[first]) == 64
    else:
        assert rows == {first: email, second: email}
    assert query(settings, f"SELECT count(*) FROM rejects WHERE record_key = '{bad_id}'") == [(1,)]
    logged = out.getvalue()
    assert "record_rejected" in logged
    leaked = sorted(v for v in personal_values(rsim) if v in logged)
    assert leaked == []


def test_a_site_zone_that_fails_to_read_makes_its_web_orders_wait_not_load_undated(
    rsim: Simulator, sync: SyncFn, tmp_path: Path
) -> None:
    """When a site's settings.json fails past its retries, that site's orders partition fails
    the tick with a line that says why (a warning names the cost), loads no web order without
    its business_date, and the next tick, the zone read, loads every order dated; the other
    site loads meanwhile."""
    settings = orders_settings(rsim, tmp_path)
    rsim.faults.queue("500", times=100, path="/sites/1/settings.json")
    out = io.StringIO()
    configure_logging(fmt="json", level="INFO", stream=out)
    try:
        report = sync(settings, clock=clock(rsim))
    finally:
        configure_logging(fmt="console", level="INFO")
    status = {r.partition: (r.status, r.error) for r in report.results}
    assert status["2"] == ("ok", None)
    assert status["1"][0] == "failed"
    assert "time zone of site 1 could not be read" in str(status["1"][1])
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    [warning] = [e for e in events if e["event"] == "site_zone_unavailable"]
    assert (warning["level"], warning["site"]) == ("warning", 1)
    assert "next tick" in warning["effect"]
    undated = "SELECT count(*) FROM orders WHERE registerid IS NULL AND business_date IS NULL"
    assert query(settings, undated) == [(0,)]
    rsim.faults.clear()
    tick(sync, settings, rsim)
    assert query(settings, undated) == [(0,)]
    assert set(loaded_orders(settings)) == set(served(rsim))


@pytest.mark.parametrize(
    ("failure", "unread"),
    [
        (RetryBudgetExhausted("gave up after 6 attempts: Internal Server Error"), ("1",)),
        (FatalApiError("Not Found", status=404), ()),
    ],
)
def test_only_a_zone_that_failed_to_read_is_waited_for(
    failure: Exception, unread: tuple[str, ...]
) -> None:
    """A site zone the API failed to give (retries spent) is named as unread, so its web
    orders wait; one whose settings are not there (404) is not: no retry brings it, and its
    web orders load without a business_date rather than never."""
    from sitoo_sync.normalize import orders as normalize
    from sitoo_sync.streams.base import TickSources
    from sitoo_sync.streams.orders import site_zones

    def get(_api: Any, path: str) -> Any:
        if path == "/sites.json":
            return {"items": [{"eshopid": 1}, {"eshopid": 2}]}
        if path == "/sites/1/settings.json":
            raise failure
        return {"timezone": "Europe/Oslo"}

    context = site_zones(TickSources(latest=lambda *_a: {}, get=get, now=datetime.now(UTC)))
    assert context[normalize.SITE_ZONES] == {"2": "Europe/Oslo"}
    assert context[normalize.ZONES_UNREAD] == unread


def site_zone(api: httpx.Client, site: int) -> str:
    zone: str = api.get(f"/sites/{site}/settings.json").json()["timezone"]
    return zone


def store_of_warehouse(api: httpx.Client, sites: list[int]) -> dict[int, str | None]:
    """warehouseid → its store's externalid, as the BI join over the warehouses and stores
    listings (other streams) makes it."""
    out: dict[int, str | None] = {}
    for site in sites:
        stores = {
            s["storeid"]: s["externalid"]
            for s in api.get(f"/sites/{site}/stores.json", params={"num": 1000}).json()["items"]
        }
        for w in api.get(f"/sites/{site}/warehouses.json", params={"num": 1000}).json()["items"]:
            out[w["warehouseid"]] = stores.get(w["storeid"])
    return out


def test_net_sales_and_top_products_equal_the_simulators_truth(
    rsim: Simulator, sync: SyncFn, tmp_path: Path
) -> None:
    """Net sales per store, local day and currency, and the top products, computed from the
    loaded orders equal the simulator's own totals to the cent (refunds late and all)."""
    settings = orders_settings(rsim, tmp_path)
    tick(sync, settings, rsim)
    sale = next(o for o in served(rsim).values() if o["orderstateid"] == 10
                and o["creditorderid"] is None and o["registerid"])  # fmt: skip
    rsim.rest.add_refund(sale["orderid"])
    rsim.rest.add_late_order(NOW - 2 * 86400)
    rsim.rest.advance(rsim.world.config.rest.settle_after)
    tick(sync, settings, rsim)
    sites = rsim.world.site_ids()
    with httpx.Client(auth=(rsim.api_id, rsim.password), base_url=rsim.v2_url) as api:
        zones = {s: site_zone(api, s) for s in sites}
        stores = store_of_warehouse(api, sites)
    rows = query(
        settings,
        "SELECT o.store_externalid, o.warehouseid, o.pos_timezone, o.eshopid, "
        "epoch(o.orderdate)::BIGINT, o.currencycode, sum(i.moneyitemtotal_net) "
        "FROM orders o JOIN order_items i USING (orderid) WHERE o.orderstateid = 10 "
        "GROUP BY ALL",
    )
    sales: dict[tuple[str | None, str, str], Decimal] = defaultdict(Decimal)
    for store, warehouse, zone, site, at, currency, net in rows:
        local = datetime.fromtimestamp(at, ZoneInfo(zone or zones[site])).date()
        sales[(store or stores[warehouse], local.isoformat(), currency)] += net
    assert {k: money_text(int(v * 100)) for k, v in sales.items()} == totals.net_sales_by_store_day(
        rsim.rest
    )
    top = query(
        settings,
        "SELECT i.productid, i.sku, sum(i.moneyitemtotal_net) n FROM order_items i "
        "JOIN orders o USING (orderid) WHERE o.orderstateid = 10 GROUP BY ALL "
        "ORDER BY n DESC, i.productid LIMIT 5",
    )
    assert [(p, s, money_text(int(n * 100))) for p, s, n in top] == totals.top_products(
        rsim.rest, 5
    )


def test_injected_faults_lose_and_duplicate_nothing(sync: SyncFn, tmp_path: Path) -> None:
    """Errors, rate limits and dropped connections on the orders path are retried: the
    warehouse ends equal to the simulator's orders."""
    sim = make_sim()
    try:
        sim.faults.queue("500", times=2, path="/orders")
        sim.faults.queue("429", times=1, path="/orders", retry_after=0, after=2)
        sim.faults.queue("drop", times=1, path="/orders", after=1)
        sim.faults.queue("503", times=1, path="/orders", after=3)
        settings = orders_settings(sim, tmp_path, orders={"page_size": 20})
        tick(sync, settings, sim)
        orders = served(sim)
        assert set(loaded_orders(settings)) == set(orders)
        lines = sum(len(o["orderitems"]) for o in orders.values())
        assert query(settings, "SELECT count(*) FROM order_items") == [(lines,)]
        assert not sim.faults._queue  # every fault was served
    finally:
        sim.stop()


@pytest.mark.slow
def test_every_target_holds_the_same_order_rows(sync: SyncFn, tmp_path: Path) -> None:
    """DuckDB, SQLite, PostgreSQL and MariaDB hold the same orders and children, money exact."""
    sim = make_sim()
    try:
        with target_for("duckdb", tmp_path) as reference:
            load_into(reference, sim, sync)
            compared = []
            for name in ("sqlite", "postgres", "mysql"):
                try:
                    context = target_for(name, tmp_path)
                    other = context.__enter__()
                except pytest.skip.Exception:
                    continue
                try:
                    load_into(other, sim, sync)
                    got, want = other.bags(TABLES), reference.bags(TABLES)
                    for table in TABLES:
                        assert got[table.name] == want[table.name], (name, table.name)
                    compared.append(name)
                finally:
                    context.__exit__(None, None, None)
            servers = {name for name, env in SERVERS.items() if os.environ.get(env)}
            assert set(compared) == {"sqlite", *servers}
            assert len(reference.rows(TABLES[0])) == len(served(sim))
    finally:
        sim.stop()


def load_into(target: Target, sim: Simulator, sync: SyncFn) -> None:
    settings = target_settings(sim, target, streams=STREAMS, personal_data="keep")
    tick(sync, settings, sim)


def test_a_reset_to_a_day_reads_again_from_that_days_first_order(
    rsim: Simulator, sync: SyncFn, tmp_path: Path
) -> None:
    """The cursor `resume_from(day)` makes walks from the first order dated that day on,
    so a late order dated before it that arrived after it is read too."""
    from sitoo_sync.streams.orders import ORDERS

    day = datetime.fromtimestamp(NOW - 2 * 86400, UTC).date()
    cursor = ORDERS.cursor.resume_from(day)
    lag = ORDERS.cursor.lag_seconds(cursor, datetime.fromtimestamp(NOW, UTC))
    assert lag is not None
    assert lag > 86400
    settings = orders_settings(rsim, tmp_path, orders={"start": day.isoformat()})
    tick(sync, settings, rsim)
    loaded = set(loaded_orders(settings))
    since = int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())
    expected: set[int] = set()
    for site in rsim.world.site_ids():
        mine = {i: o for i, o in served(rsim).items() if o["eshopid"] == site}
        first = min(i for i, o in mine.items() if o["orderdate"] >= since)
        expected |= {i for i in mine if i >= first}
    assert loaded == expected
    assert any(served(rsim)[i]["orderdate"] < since for i in loaded)  # late ones included


def test_a_reset_keeps_following_open_orders_dated_before_its_day(
    rsim: Simulator, sync: SyncFn, tmp_path: Path
) -> None:
    """`reset --since <day>` reads again from the day's first order and still re-reads the
    open orders it followed from before that day: one that settles after the reset lands
    in its new state instead of staying open in the warehouse for good."""
    from sitoo_sync.reset import reset_stream
    from sitoo_sync.streams.orders import ORDERS
    from sitoo_sync.warehouse import open_warehouse

    settings = orders_settings(rsim, tmp_path, orders={"trailing_ids": 0})
    rsim.rest.add_orders(1, kind="booking")
    tick(sync, settings, rsim)
    rsim.rest.advance(86400)  # a day on: no open order is due to settle yet
    rsim.rest.add_orders(3)
    tick(sync, settings, rsim)
    day = datetime.fromtimestamp(rsim.rest.now, UTC).date()
    since = int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())
    mine = {i: o for i, o in served(rsim).items() if o["eshopid"] == 1}
    older = [i for i in rsim.rest.open_orders() if i in mine and mine[i]["orderdate"] < since]
    assert len(older) >= 2  # the history's and the booking
    assert all(loaded_orders(settings)[i][1] == 0 for i in older)
    warehouse = open_warehouse(settings.target_url)
    try:
        reset_stream(settings, warehouse, ORDERS, partition="1", since=day)
    finally:
        warehouse.close()
    tick(sync, settings, rsim)
    for orderid in older:
        rsim.rest.settle(orderid)
    tick(sync, settings, rsim)
    loaded = loaded_orders(settings)
    assert {i: loaded[i][1:3] for i in older} == {
        i: (rsim.rest.order(i)["orderstateid"], rsim.rest.order(i)["paymentstateid"]) for i in older
    }


def run_cli(sim: Simulator, target: Target, batch_seconds: str = "0") -> subprocess.Popen[str]:
    """`sitoo-sync run --once` for the orders stream, small pages, one commit per window
    (or per `batch_seconds`)."""
    return run_once_process(
        sim,
        target.env(),
        SITOO_STREAMS="orders",
        SITOO_ORDERS_PAGE_SIZE="8",
        SITOO_LOAD_BATCH_SECONDS=batch_seconds,
    )


@pytest.mark.slow
def test_sigkill_mid_backfill_then_rerun_equals_a_clean_run(sync: SyncFn, tmp_path: Path) -> None:
    """Kill -9 while order pages are loading; the rerun's tables equal a clean run's."""
    sim = Simulator.create(SimConfig(seed=5, days=30, now=NOW)).start()
    try:
        with target_for("duckdb", tmp_path) as clean, target_for("duckdb", tmp_path) as crashed:
            clean_settings = settings_for(
                sim, tmp_path / "x.duckdb", streams=STREAMS, **clean.settings()
            )
            tick(sync, clean_settings, sim)
            sim.faults.latency = 0.2
            proc = run_cli(sim, crashed)
            log = PipeLines(proc.stderr)
            deadline = time.monotonic() + 180
            while len(log.events("batch_loaded")) < 2:
                assert proc.poll() is None, "the sync finished before it could be killed"
                assert time.monotonic() < deadline, "no window was committed"
                time.sleep(0.005)
            proc.send_signal(signal.SIGKILL)
            assert proc.wait(timeout=30) == -signal.SIGKILL
            log.finish()
            partial = len(crashed.rows(TABLES[0]))
            assert 0 < partial < len(served(sim)), "the kill was not mid-run"
            sim.faults.latency = 0.0
            # The rerun commits as a tick does by default (every 2 s): one commit per window
            # is what made the kill land between windows; here it only cost a commit per page.
            rerun = run_cli(sim, crashed, batch_seconds="2")
            PipeLines(rerun.stderr)
            assert rerun.wait(timeout=240) == 0
            got, want = crashed.bags(TABLES), clean.bags(TABLES)
            for table in TABLES:
                assert got[table.name] == want[table.name], table.name
    finally:
        sim.stop()
