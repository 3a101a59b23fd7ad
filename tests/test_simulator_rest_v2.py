"""The simulator's REST v2 endpoints keep the fact sheet (rest-v2-catalogue.md), hostile parts
included, and its world adds up: joins hold and the truth helpers match the served JSON."""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from sitoo_sync.simulator import RestConfig, SimConfig, Simulator
from sitoo_sync.simulator.rest_v2 import totals
from sitoo_sync.simulator.rest_v2.orders import DEFAULT_FIELDS as ORDER_FIELDS
from sitoo_sync.simulator.rest_v2.routes import PRODUCT_FIELDS, TRANSACTION_FIELDS
from sitoo_sync.simulator.rest_v2.users import DEFAULT_FIELDS as USER_FIELDS

NOW = 1_790_000_000  # a fixed clock: every run builds the same world
MONEY = re.compile(r"^-?[0-9]+\.[0-9]{2}$")
DECIMAL3 = re.compile(r"^-?[0-9]+\.[0-9]{3}$")
FIXTURES = Path(__file__).parent / "fixtures"
ALL = 1000


def make_sim(**rest: Any) -> Simulator:
    """A simulator (not yet serving) at the fixed clock, with REST v2 knobs `rest`."""
    return Simulator.create(SimConfig(seed=3, days=10, now=NOW, rest=RestConfig(**rest)))


@pytest.fixture(scope="module")
def sim_ro() -> Iterator[Simulator]:
    """One simulator for the tests that only read (stopping a server costs half a second)."""
    simulator = make_sim().start()
    yield simulator
    simulator.stop()


@pytest.fixture(scope="module")
def api(sim_ro: Simulator) -> Iterator[httpx.Client]:
    with httpx.Client(auth=(sim_ro.api_id, sim_ro.password), base_url=sim_ro.v2_url) as client:
        yield client


@pytest.fixture
def rsim() -> Iterator[Simulator]:
    """A fresh simulator for a test that changes the world."""
    simulator = make_sim().start()
    yield simulator
    simulator.stop()


@pytest.fixture
def rapi(rsim: Simulator) -> Iterator[httpx.Client]:
    with httpx.Client(auth=(rsim.api_id, rsim.password), base_url=rsim.v2_url) as client:
        yield client


def get(api: httpx.Client, path: str, **params: Any) -> Any:
    response = api.get(path, params=params)
    assert response.status_code == 200, response.text
    return response.json()


def every_page(api: httpx.Client, path: str, num: int = 7, **params: Any) -> list[dict[str, Any]]:
    """All items of `path` by start/num paging, checking totalcount on every page."""
    seen: list[dict[str, Any]] = []
    total = None
    while True:
        page = get(api, path, start=len(seen), num=num, **params)
        assert set(page) == {"totalcount", "items"}
        total = page["totalcount"] if total is None else total
        assert page["totalcount"] == total
        seen += page["items"]
        if not page["items"] or len(seen) >= total:
            return seen


def all_orders(api: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    return every_page(
        api, "/orders.json", num=ALL, fields=",".join(ORDER_FULL), sort="orderid", **params
    )


ORDER_FULL = (*ORDER_FIELDS, "creditorderid", "moneytotal_net", "moneytotal_vat",
              "moneydelivery_net", "moneydelivery_vat", "userid_staff", "externalid",
              "personalid", "phone", "comment", "invoice_address")  # fmt: skip
PER_SITE = ("stores", "warehouses", "productgroups", "manufacturers", "categories", "products",
            "users", "warehousetransactions")  # fmt: skip


@pytest.mark.parametrize("resource", PER_SITE)
def test_site_lists_page_with_start_num_and_totalcount(api: httpx.Client, resource: str) -> None:
    """Every per-site list is an envelope whose start/num pages add up to the whole list."""
    path = f"/sites/1/{resource}.json"
    whole = get(api, path, num=ALL)
    assert whole["totalcount"] == len(whole["items"]) > 1
    paged = every_page(api, path, num=3)
    assert paged == whole["items"]
    assert len(get(api, path)["items"]) == min(10, whole["totalcount"])  # num defaults to 10


def test_orders_page_with_start_num_and_totalcount(api: httpx.Client) -> None:
    """Account-wide orders page with start/num to totalcount, newest id first by default."""
    whole = get(api, "/orders.json", num=ALL)
    ids = [o["orderid"] for o in whole["items"]]
    assert whole["totalcount"] == len(ids) > 100
    assert ids == sorted(ids, reverse=True)
    assert [o["orderid"] for o in every_page(api, "/orders.json", num=50)] == ids


def test_num_is_silently_capped() -> None:
    """A num above the cap answers fewer items but the full totalcount (no documented max)."""
    with (
        make_sim(max_num=5) as sim,
        httpx.Client(auth=(sim.api_id, sim.password), base_url=sim.v2_url) as client,
    ):
        page = get(client, "/orders.json", num=100)
        assert len(page["items"]) == 5
        assert page["totalcount"] > 5


def test_sites_and_site_scoping(api: httpx.Client) -> None:
    """/sites.json lists both sites; per-site lists and settings are the site's; bad ids 404."""
    sites = get(api, "/sites.json")
    assert [s["eshopid"] for s in sites["items"]] == [1, 2]
    assert {"siteid", "protocol", "server", "abspath", "siteurl"} <= set(sites["items"][0])
    assert [s["externalid"] for s in get(api, "/sites/2/stores.json")["items"]] == ["300"]
    assert get(api, "/sites/2/settings.json") == {"timezone": "Europe/Oslo"}
    assert api.get("/sites/9/stores.json").json() == {"statuscode": 404,
                                                        "errortext": "Site not found"}  # fmt: skip
    assert api.get("/sites/2/warehouses/1/warehouseitems.json").status_code == 404
    assert api.get("/orders.json", params={"sort": "orderdate"}).status_code == 400
    assert api.get("/orders.json", params={"num": -1}).status_code == 400


def test_pos_payment_types_are_a_bare_array_sorted(api: httpx.Client) -> None:
    """pospaymenttypes.json is a bare array by sortorder, unpaged, honouring fields."""
    types = get(api, "/sites/2/pospaymenttypes.json", num=1)
    assert isinstance(types, list)
    assert len(types) > 1
    assert [t["sortorder"] for t in types] == sorted(t["sortorder"] for t in types)
    assert {"paymenttypeid", "paymentmethodid", "name", "externalid"} <= set(types[0])
    narrow = get(api, "/sites/2/pospaymenttypes.json", fields="paymenttypeid,name")
    assert all(set(t) == {"paymenttypeid", "name"} for t in narrow)


def test_products_default_fields_lack_title_and_fields_select(api: httpx.Client) -> None:
    """Products answer the documented default set (no title); `fields` picks exactly those."""
    default = get(api, "/sites/1/products.json")["items"]
    assert all(set(p) == set(PRODUCT_FIELDS) for p in default)
    chosen = get(api, "/sites/1/products.json", fields="productid,title,moneypricein")["items"]
    assert all(set(p) == {"productid", "title", "moneypricein"} for p in chosen)
    assert all(MONEY.match(p["moneypricein"]) for p in chosen)


def test_inactive_products_only_with_includeinactive(api: httpx.Client) -> None:
    """Products inactive in POS are listed only with includeinactive=true."""
    active = get(api, "/sites/1/products.json", num=ALL, fields="productid,activepos")
    every = get(api, "/sites/1/products.json", num=ALL, fields="productid,activepos",
                includeinactive="true")  # fmt: skip
    assert all(p["activepos"] for p in active["items"])
    inactive = [p for p in every["items"] if not p["activepos"]]
    assert inactive
    assert every["totalcount"] == active["totalcount"] + len(inactive)


def test_products_datelastmodified_is_strictly_after(rsim: Simulator, rapi: httpx.Client) -> None:
    """datelastmodified returns products modified after the value only; an edit shows up."""
    rows = get(rapi, "/sites/1/products.json", num=ALL, includeinactive="true")["items"]
    newest = max(p["datemodified"] for p in rows)
    assert get(rapi, "/sites/1/products.json", datelastmodified=newest)["totalcount"] == 0
    assert get(rapi, "/sites/1/products.json", datelastmodified=newest - 1)["totalcount"] >= 1
    rsim.world.advance_clock(60)
    rsim.rest.touch_product(rows[0]["productid"], title="Renamed")
    changed = get(rapi, "/sites/1/products.json", datelastmodified=newest,
                  fields="productid,title,datemodified")["items"]  # fmt: skip
    assert changed == [{"productid": rows[0]["productid"], "title": "Renamed",
                        "datemodified": NOW + 60}]  # fmt: skip


def test_deleted_product_vanishes_but_orders_keep_it(rsim: Simulator, rapi: httpx.Client) -> None:
    """A deleted product leaves every listing while old orders still name it."""

    def listed() -> set[int]:
        rows = get(rapi, "/sites/1/products.json", num=ALL, includeinactive="true")["items"]
        return {p["productid"] for p in rows}

    sold = {i["productid"] for o in all_orders(rapi, eshopid=1) for i in o["orderitems"]}
    assert sold - listed(), "the history already holds sold products that were deleted"
    victim = min(sold & listed())
    rsim.rest.delete_product(victim)
    assert victim not in listed()
    assert get(rapi, "/sites/1/products.json", productid=victim)["totalcount"] == 0
    assert any(i["productid"] == victim for o in all_orders(rapi) for i in o["orderitems"])


def test_orders_keyset_on_orderid(api: httpx.Client) -> None:
    """sort=orderid ascends; orderidfrom is inclusive and orderidto exclusive."""
    ids = [o["orderid"] for o in get(api, "/orders.json", num=ALL, sort="orderid")["items"]]
    assert ids == sorted(ids)
    mid = ids[len(ids) // 2]
    upper = get(api, "/orders.json", num=ALL, sort="orderid", orderidfrom=mid)["items"]
    lower = get(api, "/orders.json", num=ALL, sort="orderid", orderidto=mid)["items"]
    assert upper[0]["orderid"] == mid
    assert [o["orderid"] for o in lower + upper] == ids


def test_order_filters(api: httpx.Client) -> None:
    """eshopid, states, type, warehouse, dates (both inclusive), email and receipt filter."""
    orders = all_orders(api)
    assert {o["eshopid"] for o in orders} == {1, 2}
    for param, name in (("eshopid", "eshopid"), ("orderstate", "orderstateid"),
                        ("paymentstate", "paymentstateid"), ("ordertype", "ordertypeid"),
                        ("warehouseid", "warehouseid")):  # fmt: skip
        value = orders[-1][name]
        got = all_orders(api, **{param: f"{value},99999"})
        assert got == [o for o in orders if o[name] == value]
    day = orders[len(orders) // 2]["orderdate"]
    got = all_orders(api, orderdatefrom=day, orderdateto=day)
    assert got == [o for o in orders if o["orderdate"] == day]
    with_mail = next(o for o in orders if o["email"])
    assert all(o["email"] == with_mail["email"] for o in all_orders(api, email=with_mail["email"]))
    pos = next(o for o in orders if o["registerid"])
    receipt = pos["additionaldata"]["pos-receiptid"]
    assert [o["orderid"] for o in all_orders(api, receiptid=receipt, orderid=1)] == [pos["orderid"]]


def test_history_has_offline_orders_out_of_date_order(api: httpx.Client) -> None:
    """Ids follow arrival, not sale time: some order has a higher id but an older date."""
    orders = all_orders(api)
    newest_date = 0
    late = []
    for o in orders:
        if o["orderdate"] < newest_date - 3600:
            late.append(o)
        newest_date = max(newest_date, o["orderdate"])
    assert late


def test_late_order_gets_a_new_id_and_keeps_its_old_date(
    rsim: Simulator, rapi: httpx.Client
) -> None:
    """A late offline order is found by an orderid cursor and missed by an orderdate one."""
    before = all_orders(rapi)
    max_id = max(o["orderid"] for o in before)
    max_date = max(o["orderdate"] for o in before)
    late = rsim.rest.add_late_order(NOW - 3 * 86400)
    assert late["orderid"] > max_id
    assert late["orderdate"] < max_date
    assert [o["orderid"] for o in all_orders(rapi, orderidfrom=max_id + 1)] == [late["orderid"]]
    assert late["orderid"] not in {o["orderid"] for o in all_orders(rapi, orderdatefrom=max_date)}


@pytest.mark.parametrize(
    ("kind", "before", "after"),
    [
        ("parked", (0, 0, 110), (10, 20, 10)),
        ("pending", (0, 10, 10), None),
        ("booking", (0, 15, 100), (10, 20, 100)),
    ],
)
def test_open_orders_change_state_under_the_same_id(
    rsim: Simulator,
    rapi: httpx.Client,
    kind: str,
    before: tuple[int, int, int],
    after: tuple[int, int, int] | None,
) -> None:
    """Parked, pending and booked orders settle later; a re-read by id shows the new state."""
    (order,) = rsim.rest.add_orders(1, kind=kind)
    states = ("orderstateid", "paymentstateid", "ordertypeid")
    first = all_orders(rapi, orderid=order["orderid"])[0]
    assert tuple(first[s] for s in states) == before
    assert first["payments"] == []
    assert order["orderid"] in rsim.rest.open_orders()
    settled = rsim.rest.advance(rsim.world.config.rest.settle_after)
    assert order["orderid"] in settled
    again = all_orders(rapi, orderid=order["orderid"])[0]
    now = tuple(again[s] for s in states)
    if after is not None:
        assert now == after
    assert now[0] in (10, 20)  # closed, or cancelled for a pending payment that failed
    if now[0] == 10:
        paid = sum(Decimal(p["moneyamount"]) for p in again["payments"])
        assert paid == Decimal(again["moneytotal_gross_all"])
    assert all_orders(rapi, orderidfrom=order["orderid"] + 1) == []  # no new id


def test_refunds_are_separate_negative_orders(rsim: Simulator, rapi: httpx.Client) -> None:
    """A refund is a new order with negative quantities and amounts pointing back by id."""
    history = [o for o in all_orders(rapi) if o["creditorderid"]]
    assert history
    sale = next(o for o in all_orders(rapi, orderstate=10) if o["registerid"]
                and not o["creditorderid"])  # fmt: skip
    refund = rsim.rest.add_refund(sale["orderid"])
    assert refund["orderid"] > sale["orderid"]
    (served,) = all_orders(rapi, creditorderid=sale["orderid"])
    assert served["orderid"] == refund["orderid"]
    assert Decimal(served["moneytotal_gross_all"]) < 0
    assert all(i["quantity"] < 0 and Decimal(i["moneyitemtotal_net"]) <= 0
               for i in served["orderitems"])  # fmt: skip
    assert sum(Decimal(p["moneyamount"]) for p in served["payments"]) == Decimal(
        served["moneytotal_gross_all"]
    )


def test_every_refund_in_the_history_names_an_earlier_stored_sale() -> None:
    """A refund of the history names, in creditorderid and pos-originalsales-orderid, a sale
    the backend stored before it (a lower id), also when that sale came from an offline
    register whose upload reached the backend after the day the refund was made."""
    sim = make_sim(offline_every=1)
    orders = sim.rest.orders
    refunds = [o for o in orders.values() if o["creditorderid"] is not None]
    assert refunds
    for refund in refunds:
        sale = orders.get(refund["creditorderid"])
        assert sale is not None, refund["orderid"]
        assert sale["orderid"] < refund["orderid"]
        assert sale["creditorderid"] is None
        original = refund["additionaldata"]["pos-originalsales-orderid"]
        assert original == str(sale["orderid"])


def test_order_money_adds_up(api: httpx.Client) -> None:
    """Lines sum to the totals, delivery and roundoff to the grand total, payments to it."""
    orders = all_orders(api)
    assert any(len(o["orderitems"]) > 1 for o in orders)
    assert any(Decimal(i["moneydiscount"]) > 0 for o in orders for i in o["orderitems"])
    for o in orders:
        for name, value in o.items():
            if name.startswith("money"):
                assert MONEY.match(value), (name, value)
        items = o["orderitems"]
        assert Decimal(o["moneytotal_net"]) == sum(Decimal(i["moneyitemtotal_net"]) for i in items)
        assert Decimal(o["moneyfinal_net"]) == Decimal(o["moneytotal_net"]) + Decimal(
            o["moneydelivery_net"]
        )
        gross = Decimal(o["moneyfinal_net"]) + Decimal(o["moneyfinal_vat"])
        assert Decimal(o["moneytotal_gross_all"]) == gross + Decimal(o["moneytotal_gross_roundoff"])
        for i in items:
            assert Decimal(i["moneydiscountedprice"]) == Decimal(i["moneyoriginalprice"]) - Decimal(
                i["moneydiscount"]
            )
            # a receipt row's unit price is its price over the quantity, to the cent
            line = Decimal(i["moneyitemtotal_net"]) + Decimal(i["moneyitemtotal_vat"])
            unit_times = Decimal(i["moneydiscountedprice"]) * i["quantity"]
            assert abs(line - unit_times) <= Decimal("0.005") * abs(i["quantity"])
        if o["orderstateid"] == 10:
            assert sum(Decimal(p["moneyamount"]) for p in o["payments"]) == Decimal(
                o["moneytotal_gross_all"]
            )


def test_orders_join_to_catalogue_stores_users_and_registers(
    sim_ro: Simulator, api: httpx.Client
) -> None:
    """Items join products by id and sku, orders stores via warehouse, keys and register."""
    orders = all_orders(api)
    registers = {r["registerid"]: r for s in (1, 2)
                 for r in get(api, f"/sites/{s}/cashregisters.json", num=100,
                              includenotregistered="true")["items"]}  # fmt: skip
    catalogue = {**sim_ro.rest.catalog.products, **sim_ro.rest.catalog.deleted}
    users = {u["userid"] for u in get(api, "/sites/1/users.json", num=ALL)["items"]}
    without_keys = 0
    for s in (1, 2):
        stores = {st["storeid"]: st for st in get(api, f"/sites/{s}/stores.json")["items"]}
        warehouses = {w["warehouseid"]: w for w in get(api, f"/sites/{s}/warehouses.json")["items"]}
        payment_names = {t["name"] for t in get(api, f"/sites/{s}/pospaymenttypes.json")}
        for o in (o for o in orders if o["eshopid"] == s):
            store = stores.get(warehouses[o["warehouseid"]]["storeid"])
            extid = store["externalid"] if store else None
            if o["registerid"]:
                assert registers[o["registerid"]]["currencycode"] == o["currencycode"]
                register = next(r for r in sim_ro.world.registers
                                if r.registerid == o["registerid"])  # fmt: skip
                assert register.store_id == extid
                assert o["userid_staff"] in users
            if "store-externalid" in o["additionaldata"]:
                assert o["additionaldata"]["store-externalid"] == extid
            elif store is not None:
                without_keys += 1
            assert {p["name"] for p in o["payments"]} <= payment_names
            for i in o["orderitems"]:
                assert catalogue[i["productid"]]["sku"] == i["sku"]
    assert without_keys, "some store orders lack store-externalid: the warehouse must decide"


def test_offset_pages_shift_while_orders_arrive(rsim: Simulator, rapi: httpx.Client) -> None:
    """New orders between two offset pages duplicate rows; an orderid keyset does not."""
    first = get(rapi, "/orders.json", start=0, num=5)["items"]
    rsim.rest.add_orders(2)
    second = get(rapi, "/orders.json", start=5, num=5)["items"]
    assert [o["orderid"] for o in second[:2]] == [o["orderid"] for o in first[3:]]
    keyset = get(rapi, "/orders.json", sort="orderid", orderidfrom=first[0]["orderid"] + 1)
    assert [o["orderid"] for o in keyset["items"]] == [first[0]["orderid"] + 1,
                                                       first[0]["orderid"] + 2]  # fmt: skip


def test_orders_can_arrive_before_every_request() -> None:
    """With orders_per_request, every /orders.json answer sees more orders than the last."""
    with (
        make_sim(orders_per_request=1) as sim,
        httpx.Client(auth=(sim.api_id, sim.password), base_url=sim.v2_url) as client,
    ):
        counts = [get(client, "/orders.json", num=1)["totalcount"] for _ in range(3)]
        assert counts[1] == counts[0] + 1
        assert counts[2] == counts[1] + 1


def test_warehouse_items_filters_and_shapes(sim_ro: Simulator, api: httpx.Client) -> None:
    """Stock rows carry decimal strings; datelastmodifiedfrom/to are inclusive; sku filters."""
    path = "/sites/1/warehouses/1/warehouseitems.json"
    items = every_page(api, path, num=10)
    assert all(DECIMAL3.match(i["decimaltotal"]) and MONEY.match(i["moneytotal"]) for i in items)
    stamp = sorted(i["datelastmodified"] for i in items)[len(items) // 2]
    got = get(api, path, num=ALL, datelastmodifiedfrom=stamp, datelastmodifiedto=stamp)["items"]
    assert got == [i for i in items if i["datelastmodified"] == stamp]
    assert get(api, path, sku=f"{items[0]['sku']},nope")["items"] == [items[0]]
    web = sim_ro.rest.catalog.sales_warehouse(1, None)["warehouseid"]
    assert get(api, f"/sites/1/warehouses/{web}/warehouseitems.json")["totalcount"] > 0


def test_reservation_moves_without_datelastmodified(rsim: Simulator, rapi: httpx.Client) -> None:
    """A reservation changes reserved/available but not datelastmodified: a modified feed
    misses it, only a full snapshot sees it."""
    path = "/sites/1/warehouses/1/warehouseitems.json"
    items = get(rapi, path, num=ALL)["items"]
    newest = max(i["datelastmodified"] for i in items)
    target = items[0]
    rsim.world.advance_clock(600)
    rsim.rest.reserve(1, target["sku"], 2)
    after = get(rapi, path, sku=target["sku"])["items"][0]
    assert Decimal(after["decimalreserved"]) == Decimal(target["decimalreserved"]) + 2
    assert Decimal(after["decimalavailable"]) == Decimal(target["decimalavailable"]) - 2
    assert after["datelastmodified"] == target["datelastmodified"]
    assert after["decimaltotal"] == target["decimaltotal"]
    assert get(rapi, path, datelastmodifiedfrom=newest + 1)["totalcount"] == 0


def test_open_web_order_reserves_and_its_sale_transacts(
    rsim: Simulator, rapi: httpx.Client
) -> None:
    """A pending web order reserves stock silently; paid, it becomes a sales transaction."""
    rsim.world.advance_clock(60)
    (order,) = rsim.rest.add_orders(1, kind="pending")
    line = order["orderitems"][0]
    path = f"/sites/1/warehouses/{order['warehouseid']}/warehouseitems.json"
    held = get(rapi, path, sku=line["sku"])["items"][0]
    assert Decimal(held["decimalreserved"]) >= line["quantity"]
    assert held["datelastmodified"] < NOW + 60
    rsim.world.advance_clock(60)
    rsim.rest.settle(order["orderid"], to="sale")
    sold = get(rapi, path, sku=line["sku"])["items"][0]
    assert sold["datelastmodified"] == NOW + 120
    assert Decimal(sold["decimaltotal"]) == Decimal(held["decimaltotal"]) - line["quantity"]
    assert Decimal(sold["decimalreserved"]) == Decimal(held["decimalreserved"]) - line["quantity"]


def test_stock_levels_are_the_sum_of_their_transactions(api: httpx.Client) -> None:
    """Every stock row's total equals the sum of its logged quantities; value = total x cost."""
    moved: dict[tuple[int, str], Decimal] = defaultdict(Decimal)
    for t in every_page(api, "/sites/1/warehousetransactions.json", num=ALL):
        for line in t["items"]:
            moved[(t["warehouseid"], line["sku"])] += Decimal(line["decimalquantity"])
            assert DECIMAL3.match(line["decimalquantity"])
    for w in get(api, "/sites/1/warehouses.json")["items"]:
        path = f"/sites/1/warehouses/{w['warehouseid']}/warehouseitems.json"
        for item in get(api, path, num=ALL)["items"]:
            assert Decimal(item["decimaltotal"]) == moved[(w["warehouseid"], item["sku"])]


def test_warehouse_transactions_keyset_and_filters(api: httpx.Client) -> None:
    """Default newest first; sort asc with idfrom inclusive, idto exclusive; type, warehouse
    and datecreated filters; the documented default fields."""
    path = "/sites/1/warehousetransactions.json"
    desc = get(api, path, num=ALL)["items"]
    ids = [t["warehousetransactionid"] for t in desc]
    assert ids == sorted(ids, reverse=True)
    assert all(set(t) == set(TRANSACTION_FIELDS) for t in desc)
    asc = get(api, path, num=ALL, sort="warehousetransactionid")["items"]
    mid = asc[len(asc) // 2]["warehousetransactionid"]
    upper = get(api, path, num=ALL, sort="warehousetransactionid",
                warehousetransactionidfrom=mid)["items"]  # fmt: skip
    lower = get(api, path, num=ALL, sort="warehousetransactionid",
                warehousetransactionidto=mid)["items"]  # fmt: skip
    assert lower + upper == asc
    assert {t["transactiontype"] for t in asc} >= {10, 30, 40, 50}
    sales = get(api, path, num=ALL, transactiontype=30)["items"]
    assert sales
    assert all(t["transactiontype"] == 30 and t["orderdeliveryid"] for t in sales)
    per_wh = get(api, "/sites/1/warehouses/2/warehousetransactions.json", num=ALL)["items"]
    assert per_wh == [t for t in desc if t["warehouseid"] == 2]
    assert get(api, path, num=ALL, warehouseid=2)["items"] == per_wh
    day = asc[-1]["datecreated"]
    assert all(t["datecreated"] < day for t in get(api, path, num=ALL, datecreatedto=day)["items"])


def test_users_are_staff_and_customers_with_personal_fields(api: httpx.Client) -> None:
    """Users: default fields, staff with a role and customers without, the same on every site,
    personal fields present when asked, exact filters."""
    default = get(api, "/sites/1/users.json", num=ALL)["items"]
    assert all(set(u) == set(USER_FIELDS) for u in default)
    full = get(api, "/sites/1/users.json", num=ALL,
               fields="userid,email,role,personalid,mobile,notes")["items"]  # fmt: skip
    assert full == get(api, "/sites/2/users.json", num=ALL,
                       fields="userid,email,role,personalid,mobile,notes")["items"]  # fmt: skip
    assert any(u["role"] is not None for u in full)
    assert any(u["role"] is None for u in full)
    assert all(u["personalid"] and u["mobile"] for u in full)
    customer = next(u for u in full if u["role"] is None)
    for name in ("email", "personalid", "mobile"):
        assert get(api, "/sites/1/users.json", **{name: customer[name]})["items"] == [
            next(u for u in default if u["userid"] == customer["userid"])
        ]
    emails = {u["email"] for u in full}
    assert {o["email"] for o in all_orders(api) if o["email"]} <= emails


def test_truth_helpers_agree_with_the_served_json(sim_ro: Simulator, api: httpx.Client) -> None:
    """Net sales per store/day/currency, top products and stock value per store, summed from
    the served JSON, equal the world's own helpers."""
    stores: dict[int, str] = {}
    store_of_wh: dict[int, str | None] = {}
    currency_of_wh: dict[int, str] = {}
    site_of_wh: dict[int, int] = {}
    for s in (1, 2):
        for st in get(api, f"/sites/{s}/stores.json")["items"]:
            stores[st["storeid"]] = st["externalid"]
        for w in get(api, f"/sites/{s}/warehouses.json")["items"]:
            store_of_wh[w["warehouseid"]] = stores.get(w["storeid"]) if w["storeid"] else None
            currency_of_wh[w["warehouseid"]] = w["currencycode"]
            site_of_wh[w["warehouseid"]] = s
    sales: dict[tuple[str | None, str, str], Decimal] = defaultdict(Decimal)
    products: dict[tuple[int, str], Decimal] = defaultdict(Decimal)
    for o in all_orders(api, orderstate=10):
        zone = ZoneInfo(o["additionaldata"].get("pos-timezone", "Europe/Stockholm"))
        day = datetime.fromtimestamp(o["orderdate"], zone).date().isoformat()
        net = sum(Decimal(i["moneyitemtotal_net"]) for i in o["orderitems"])
        sales[(store_of_wh[o["warehouseid"]], day, o["currencycode"])] += net
        for i in o["orderitems"]:
            products[(i["productid"], i["sku"])] += Decimal(i["moneyitemtotal_net"])
    assert {k: str(v) for k, v in sales.items()} == totals.net_sales_by_store_day(sim_ro.rest)
    top = sorted(products.items(), key=lambda kv: (-kv[1], kv[0][0]))[:5]
    assert [(p, s, str(v)) for (p, s), v in top] == totals.top_products(sim_ro.rest, 5)
    value: dict[tuple[str | None, str], Decimal] = defaultdict(Decimal)
    for wid, site in site_of_wh.items():
        path = f"/sites/{site}/warehouses/{wid}/warehouseitems.json"
        for item in get(api, path, num=ALL)["items"]:
            value[(store_of_wh[wid], currency_of_wh[wid])] += Decimal(item["moneytotal"])
    assert {k: str(v) for k, v in value.items()} == totals.stock_value_by_store(sim_ro.rest)


def test_orders_carry_the_personal_fields_to_minimize(api: httpx.Client) -> None:
    """Orders hold every kind of personal value issue 12 wants minimized: contact, national
    id, addresses, comments, CRM ids, the staff member's name and a payer's phone."""
    orders = all_orders(api)
    web = [o for o in orders if o["registerid"] is None and o["email"]]
    assert web
    assert all(o["personalid"] and o["phone"] and o["invoice_address"] for o in web)
    assert any(o["comment"] for o in web)
    pos = [o for o in orders if o["registerid"]]
    assert all(o["additionaldata"]["pos-staffsales-name"] for o in pos)
    assert any("crm-customerid" in o["additionaldata"] for o in pos)
    # a payer's phone: POS sales are paid as their receipts (no Swish there), web orders too
    assert any("mobile" in p["additionaldata"] for o in orders for p in o["payments"])


def test_building_the_rest_world_leaves_the_z_report_world_alone() -> None:
    """The REST v2 world draws from its own generator: z-reports made after it are unchanged."""
    plain, built = make_sim(), make_sim()
    assert built.rest.orders
    for a, b in zip(plain.world.add_new_reports(3), built.world.add_new_reports(3), strict=True):
        assert a.body == b.body


def test_rest_world_is_lazy_and_deterministic() -> None:
    """The REST v2 world is built on first use only, and the same seed serves the same data."""
    with make_sim() as one, make_sim() as two:
        assert one._rest is None
        with httpx.Client(auth=(one.api_id, one.password)) as client:
            a = client.get(f"{one.v2_url}/orders.json", params={"num": ALL}).json()
            b = client.get(f"{two.v2_url}/orders.json", params={"num": ALL}).json()
        assert a == b
        assert one._rest is not None


FIXTURE_ENDPOINTS = {
    "sites": ("/sites.json", {}),
    "stores": ("/sites/1/stores.json", {}),
    "warehouses": ("/sites/1/warehouses.json", {}),
    "pospaymenttypes": ("/sites/1/pospaymenttypes.json", {}),
    "productgroups": ("/sites/1/productgroups.json", {}),
    "manufacturers": ("/sites/1/manufacturers.json", {}),
    "categories": ("/sites/1/categories.json", {}),
    "products": ("/sites/1/products.json", {"fields": "*"}),
    "orders": ("/orders.json", {"fields": "*"}),
    "warehouseitems": ("/sites/1/warehouses/1/warehouseitems.json", {}),
    "warehousetransactions": ("/sites/1/warehousetransactions.json", {}),
    "users": ("/sites/1/users.json", {"fields": "*"}),
}


@pytest.mark.parametrize("family", sorted(FIXTURE_ENDPOINTS))
def test_served_shapes_match_the_fixtures(api: httpx.Client, family: str) -> None:
    """Each endpoint serves the field set (and envelope or bare array) of its fixture."""
    fixture = json.loads((FIXTURES / f"rest_v2_{family}.json").read_text())
    response = fixture["response"]
    path, params = FIXTURE_ENDPOINTS[family]
    sample = response if isinstance(response, list) else response["items"]
    if params.get("fields") == "*":
        params = {"fields": ",".join(sample[0])}
    served = get(api, path, **params)
    assert isinstance(served, list) == isinstance(response, list)
    rows = served if isinstance(served, list) else served["items"]
    assert set(rows[0]) == set(sample[0])
    if family == "orders":
        assert set(rows[0]["orderitems"][0]) == set(sample[0]["orderitems"][0])
        paid = next(o for o in rows if o["payments"])
        assert set(paid["payments"][0]) == set(sample[0]["payments"][0])
    if family == "warehousetransactions":
        assert set(rows[0]["items"][0]) == set(sample[0]["items"][0])


def test_every_receipt_is_one_order_and_orders_add_up_to_the_z_reports() -> None:
    """Each non-practice journal receipt (one lost before the journal included) is exactly one
    POS order: same register, time, rows, amounts, payments and pos-receiptid, a refund with
    negative amounts; closed POS orders per register and local day sum to its z-reports'
    sales and refunds to the cent, as the truth helper (totals.py) says too."""
    sim = Simulator.create(
        SimConfig(seed=3, days=10, now=NOW, inject_missing_receipt=True, inject_missing_report=True)
    )
    by_receipt = {
        (o["registerid"], o["additionaldata"]["pos-receiptid"]): o
        for o in sim.rest.orders.values()
        if o["registerid"] and o["orderstateid"] == 10
    }
    receipts = [
        (reg.registerid, e)
        for reg in sim.world.registers
        for e in sim.world.journal.receipts(reg.registerid)
    ]
    journaled = {
        e["data"]["additionaldata"]["pos-receiptid"]
        for e in sim.world.journal.all_entries()
        if e["type"] == "receipt"
    }
    assert any(e["data"]["additionaldata"]["pos-receiptid"] not in journaled for _, e in receipts)
    assert len(receipts) == len(by_receipt)
    for registerid, entry in receipts:
        data = entry["data"]
        order = by_receipt[(registerid, data["additionaldata"]["pos-receiptid"])]
        sign = -1 if data["isrefund"] else 1
        assert order["orderdate"] == entry["datecreated"]
        assert order["currencycode"] == data["currencycode"]
        assert [(i["sku"], i["quantity"], Decimal(i["moneyitemtotal_net"])
                 + Decimal(i["moneyitemtotal_vat"])) for i in order["orderitems"]] == [
            (i["sku"], sign * i["quantity"],
             sign * Decimal(i["moneyrowprice"])) for i in data["items"]
        ]  # fmt: skip
        assert [(p["name"], Decimal(p["moneyamount"])) for p in order["payments"]] == [
            (p["name"], sign * Decimal(p["moneyamount"])) for p in data["payments"]
        ]
    zero = Decimal("0.00")
    days: dict[tuple[str, str], list[Decimal]] = defaultdict(lambda: [zero, zero])
    for o in by_receipt.values():
        gross = Decimal(o["moneytotal_net"]) + Decimal(o["moneytotal_vat"])
        zone = ZoneInfo(o["additionaldata"]["pos-timezone"])
        key = (o["registerid"], datetime.fromtimestamp(o["orderdate"], zone).date().isoformat())
        days[key][gross < 0] += abs(gross)
    truth = totals.pos_gross_by_register_day(sim.rest)
    assert {k: (str(s), str(r)) for k, (s, r) in days.items()} == truth
    closings: dict[tuple[str, str], list[Decimal]] = defaultdict(lambda: [Decimal(0), Decimal(0)])
    for report in (*sim.world.all_reports(), *sim.world.withheld_reports()):
        z = report.body
        zone = ZoneInfo("Europe/Oslo" if z["eshopid"] == 2 else "Europe/Stockholm")
        key = (z["registerid"], datetime.fromtimestamp(z["datecreated"], zone).date().isoformat())
        closings[key][0] += Decimal(z["moneysalestotal"])
        closings[key][1] += Decimal(z["moneyrefundtotal"])
    assert days == closings


def test_receipts_of_a_new_closing_become_orders_with_new_ids() -> None:
    """A z-report added later brings its day's receipts; the next orders request serves an
    order for each, with ids above every earlier one."""
    with make_sim() as sim, httpx.Client(auth=(sim.api_id, sim.password)) as client:
        first = client.get(f"{sim.v2_url}/orders.json", params={"num": 1}).json()
        top = max(sim.rest.orders)

        def receipts(registerid: str) -> set[str]:
            return {e["data"]["additionaldata"]["pos-receiptid"]
                    for e in sim.world.journal.receipts(registerid)}  # fmt: skip

        registerid = sim.world.registers[0].registerid
        before = receipts(registerid)
        (report,) = sim.world.add_new_reports(1)
        assert report.body["registerid"] == registerid
        made = receipts(registerid) - before
        assert made
        second = client.get(f"{sim.v2_url}/orders.json", params={"num": 1}).json()
        new = [o for i, o in sim.rest.orders.items() if i > top]
        assert second["totalcount"] == first["totalcount"] + len(new)
        assert made <= {o["additionaldata"]["pos-receiptid"] for o in new}
        assert all(o["registerid"] == registerid for o in new)


def test_journal_and_order_requests_side_by_side_never_deadlock(rsim: Simulator) -> None:
    """Journal pages (which read the world's closings) and order listings (which make orders
    of the journals' receipts) served at the same time all answer: the journal shares the
    world's one lock, so no two requests take two locks in opposite orders."""
    import sys
    import threading
    import time

    assert rsim.world.journal.lock is rsim.world.lock
    registers = [r.registerid for r in rsim.world.registers]
    auth = (rsim.api_id, rsim.password)
    failures: list[str] = []

    def ask(kind: str, url: str, params: dict[str, Any]) -> None:
        try:
            with httpx.Client(auth=auth, timeout=10) as client:
                if client.get(url, params=params).status_code != 200:
                    failures.append(f"{kind}: not 200")
        except httpx.HTTPError as exc:  # a timeout: the server holds a lock it never frees
            failures.append(f"{kind}: {type(exc).__name__}")

    def journals() -> None:
        for n in range(40):
            params = {"register_id": registers[n % len(registers)], "date_type": "added"}
            ask("journal", f"{rsim.journals_url}/journal-entries", params)

    def orders() -> None:
        for _ in range(40):
            ask("orders", f"{rsim.v2_url}/orders.json", {"num": 5})

    threads = [threading.Thread(target=f, daemon=True) for f in (journals, orders) * 2]
    switching = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # the server's threads take turns as often as they can
    try:
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 60
        for thread in threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
    finally:
        sys.setswitchinterval(switching)
    assert not any(t.is_alive() for t in threads), "a request never answered: deadlocked"
    assert failures == []
