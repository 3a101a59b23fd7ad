"""A finance user's questions, answered by the views after two syncs of a hostile simulated
world, against answers computed in Python from the simulator's own world objects (its
closings, journal receipts, order specs and stock rows), never from the warehouse.

The world: SEK stores in Stockholm and a NOK store whose site is in Tokyo (so local days
differ from UTC days and from the store z-reports' Stockholm days), a register without a
store, practice receipts, refunds, card sub-payments, cash round-off and differences, some
POS z-report uploads malformed (rejected; the store z-reports still count them); the synced
days hold the night the clocks go back (2026-10-25 in Europe). Between the two syncs: the
clock moves past local midnight, every register but a dark one closes again, an offline
register's receipts of yesterday reach the journal, a closing arrives late for an earlier
day, a store day is re-aggregated under a new id, bookings are paid, new carts are parked,
cancelled and abandoned (never sales), an offline register's sale arrives late, a sale is
refunded, a product is deleted, a stock row removed, units reserved; then a day passes (so
the sku sweep and the full stock read are due) before the second sync.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from sitoo_sync.simulator import SimConfig, Simulator
from sitoo_sync.simulator.chain import SITE_TIME_ZONE, ZReport, time_zone_of
from sitoo_sync.simulator.rest_v2.orders import STATES, line_gross, line_net
from sitoo_sync.streams.site_zones import clear_site_zones
from sitoo_sync.views import VIEWS
from tests.support import sync_world_once
from tests.targets import Target, grouped_targets, target_for, view_rows

#: 22:50 UTC on Tuesday 27 October 2026 (23:50 local): the day's aggregation has run; the
#: clocks went back in Stockholm and Oslo early on Sunday the 25th.
NOW = datetime(2026, 10, 27, 22, 50, tzinfo=UTC)
START = date(2026, 10, 22)
DARK = 2  # the register that sends nothing for the world's last two days
NO_STORE = "NO_STORE"
Key = tuple[Any, ...]


@dataclass
class Synced:
    """A target after the two syncs, and the simulator whose world is the truth."""

    target: Target
    sim: Simulator


def _sync(sim: Simulator, target: Target, tmp: Any) -> None:
    sync_world_once(sim, target, tmp, START)


def _change_the_world(sim: Simulator) -> None:
    """What happens between the syncs (the module doc's list)."""
    world, rest = sim.world, sim.rest
    rest.advance(3600)  # 23:50 UTC: 00:50 local on the 28th; due parked carts settle
    now = world.config.now
    # every register closes 20 minutes ago: the 28th locally, the 27th in UTC (their days are
    # not aggregated yet, so the store reports leave them out, as the vendor does)
    for reg in world.registers:
        if reg is not world.registers[DARK]:  # the dark register stays dark
            world.add_report(world.make_report(reg, now - 1200, now))
    # an offline register's receipts of yesterday reach the journal only now
    world.journal.offline_burst(world.registers[0].registerid, 3, now, hours_old=30)
    # a closing of the 26th that reaches the backend only now (an offline register)
    late_closed = int(datetime(2026, 10, 26, 19, 30, tzinfo=UTC).timestamp())
    world.add_report(world.make_report(world.registers[3], late_closed, now - 120))
    world.reaggregate("200", "2026-10-26")  # the day comes back under a new id
    rest.catch_up()  # the new closings' receipts become orders
    rest.add_orders(2, "parked")  # open carts: no sale yet
    rest.add_orders(1, "cancelled")
    rest.add_orders(1, "abandoned")
    sale = next(
        i
        for i, s in sorted(rest.specs.items())
        if s.kind == "sale" and s.credit is None and s.registerid and s.orderdate < now - 86400
    )
    rest.add_refund(sale)
    rest.add_late_order(int(datetime(2026, 10, 24, 23, 30, tzinfo=UTC).timestamp()))
    stocked = sorted({sku for (_w, sku) in rest.stock.items})
    live = {p["sku"]: pid for pid, p in rest.catalog.products.items()}
    rest.delete_product(live[next(s for s in stocked if s in live)])
    wid, sku = sorted(rest.stock.items)[-1]
    rest.remove_item(wid, sku)
    wid, sku = sorted(rest.stock.items)[0]
    rest.reserve(wid, sku, 2)
    # a day on: the deletions' sweep and the reservations' full read are due, the 28th is
    # aggregated
    rest.advance(25 * 3600)


@pytest.fixture(scope="module", params=grouped_targets("bi-truth"))
def synced(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Synced]:
    """Each target synced, the world changed, synced again."""
    tmp = tmp_path_factory.mktemp(request.param)
    with pytest.MonkeyPatch.context() as patch:
        # the NOK site sells in Tokyo: its receipts cross local midnight, its closings fall
        # on the next local day, and its zone is not the store z-report aggregation's
        patch.setitem(SITE_TIME_ZONE, 2, "Asia/Tokyo")
        clear_site_zones()  # a zone another test's simulator gave site 2 is not this one's
        sim = Simulator.create(
            SimConfig(
                seed=3, days=5, dark_register_days=2, malformed_every=9, now=int(NOW.timestamp())
            )
        ).start()
        try:
            with target_for(request.param, tmp) as target:
                _sync(sim, target, tmp)
                _change_the_world(sim)
                _sync(sim, target, tmp)
                yield Synced(target, sim)
        finally:
            sim.stop()
            clear_site_zones()


# ---- reading the warehouse ------------------------------------------------------------


def table_rows(target: Target, sql: str) -> list[tuple[Any, ...]]:
    """What `sql` reads on `target`, its `{s}table` names in the target's schema."""
    return view_rows(target, sql.format(s=f"{target.schema}." if target.schema else ""))


def dec(value: Any) -> Decimal:
    """A figure as Decimal (SQLite returns money as exact text)."""
    return Decimal(str(value))


def day(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def utc(value: Any) -> datetime:
    """A timestamp as aware UTC (MySQL and SQLite return naive UTC or text)."""
    at: datetime = datetime.fromisoformat(value) if isinstance(value, str) else value
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def money(cents: int) -> Decimal:
    return Decimal(cents) / 100


def cents(value: str | None) -> int:
    return int(Decimal(value or "0") * 100)


# ---- the truth, from the world ----------------------------------------------------------


def _closings(sim: Simulator) -> list[ZReport]:
    """Every closing the store aggregation has taken in, from START on."""
    world = sim.world
    return [
        r
        for r in world.all_reports()
        if world.day_aggregated(world.store_day(r))
        and date.fromisoformat(world.store_day(r)) >= START
    ]


def _store_day(sim: Simulator, closing: dict[str, Any]) -> Key:
    day_text = datetime.fromtimestamp(closing["datecreated"], ZoneInfo("Europe/Stockholm"))
    return (closing["store_id"] or NO_STORE, day_text.date(), closing["currencycode"])


def _receipts_by_closing(sim: Simulator) -> dict[tuple[str, int], list[dict[str, Any]]]:
    """The journal's receipts (practice ones included) by the closing whose day they are:
    a receipt's number is its z-report's times 100 plus its place in the day."""
    out: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
    for entry in sim.world.journal.all_entries():
        if entry["type"] == "receipt":
            number = int(entry["data"]["additionaldata"]["pos-receiptid"][-6:])
            out[(entry["registerid"], number // 100)].append(entry)
    return out


def truth_takings(sim: Simulator) -> dict[Key, tuple[Decimal, ...]]:
    """Per store, aggregation day and currency, from the journal receipts of the closings
    of that day (practice ones left out): gross sales, gross refunds, gross takings,
    round-off (the closings'), receipts, sales receipts, refund receipts."""
    receipts = _receipts_by_closing(sim)
    totals: dict[Key, list[int]] = defaultdict(lambda: [0] * 6)
    for report in _closings(sim):
        z = report.closing
        row = totals[_store_day(sim, z)]
        row[2] += cents(z["moneyroundoff"])
        for entry in receipts[(z["registerid"], z["zreportid"])]:
            if entry["ispractice"]:
                continue
            refund = entry["data"]["isrefund"]
            row[1 if refund else 0] += cents(entry["data"]["moneytotal"])
            row[3] += 1
            row[5 if refund else 4] += 1
    return {
        k: (money(s), money(r), money(s - r), money(ro), *(Decimal(n) for n in (n0, n1, n2)))
        for k, (s, r, ro, n0, n1, n2) in totals.items()
    }


def truth_vat(sim: Simulator) -> dict[Key, tuple[Decimal, Decimal]]:
    """Per store, day, currency and VAT rate: gross and VAT of the takings (sales less
    refunds), gross from the journal items' rates and prices, VAT from the closings."""
    receipts = _receipts_by_closing(sim)
    totals: dict[Key, list[int]] = defaultdict(lambda: [0, 0])
    for report in _closings(sim):
        z = report.closing
        key = _store_day(sim, z)
        for section, sign in (("vatgroupssales", 1), ("vatgroupsrefund", -1)):
            for group in z[section]:
                totals[(*key, Decimal(group["vatvalue"]))][1] += sign * cents(
                    group["moneytotalvat"]
                )
        for entry in receipts[(z["registerid"], z["zreportid"])]:
            if entry["ispractice"]:
                continue
            sign = -1 if entry["data"]["isrefund"] else 1
            for item in entry["data"]["items"]:
                rate = Decimal(item["vatvalue"])
                totals[(*key, rate)][0] += sign * cents(item["moneyrowprice"])
    return {k: (money(g), money(v)) for k, (g, v) in totals.items()}


def truth_payments(sim: Simulator) -> dict[Key, tuple[Decimal, Decimal, Decimal]]:
    """Per store, day, currency and payment: paid on sales, paid back, net, from the
    journal receipts' payments, the closings' cash round-off on the cash payment."""
    receipts = _receipts_by_closing(sim)
    totals: dict[Key, list[int]] = defaultdict(lambda: [0, 0])
    for report in _closings(sim):
        z = report.closing
        key = _store_day(sim, z)
        if cents(z["moneyroundoff"]):
            totals[(*key, "Cash")][0] += cents(z["moneyroundoff"])
        for entry in receipts[(z["registerid"], z["zreportid"])]:
            if entry["ispractice"]:
                continue
            refund = entry["data"]["isrefund"]
            for payment in entry["data"]["payments"]:
                totals[(*key, payment["name"])][refund] += cents(payment["moneyamount"])
    return {k: (money(s), money(r), money(s - r)) for k, (s, r) in totals.items()}


def truth_card_brands(sim: Simulator) -> dict[Key, Decimal]:
    """Per store, day, currency and card brand: paid on sales (the closings' sub-payments)."""
    totals: dict[Key, int] = defaultdict(int)
    for report in _closings(sim):
        z = report.closing
        for payment in z["paymentssales"]:
            for sub in payment.get("subpayments") or []:
                key = (*_store_day(sim, z), sub["name"])
                totals[key] += cents(sub["moneysubtotal"])
    return {k: money(v) for k, v in totals.items()}


def truth_product_amounts(sim: Simulator) -> dict[Key, Decimal]:
    """Per product, store, receipt's local day and currency: row prices, refunds subtracted,
    practice receipts left out (every receipt the journal holds)."""
    totals: dict[Key, int] = defaultdict(int)
    for entry in sim.world.journal.all_entries():
        if entry["type"] != "receipt" or entry["ispractice"]:
            continue
        data = entry["data"]
        extra = data["additionaldata"]
        local = datetime.fromtimestamp(entry["datecreated"], ZoneInfo(extra["pos-timezone"]))
        sign = -1 if data["isrefund"] else 1
        for item in data["items"]:
            key = (
                int(item["additionaldata"]["item-productid"]),
                extra["store-externalid"] or NO_STORE,
                local.date(),
                data["currencycode"],
            )
            totals[key] += sign * cents(item["moneyrowprice"])
    return {k: money(v) for k, v in totals.items()}


def truth_orders(sim: Simulator) -> dict[Key, tuple[Decimal, ...]]:
    """Per store (the order's warehouse's), local day of the order and currency, over closed
    orders (refund orders included): gross, net, VAT, refunded net (positive), orders,
    refund orders (every refund, whether or not it names the sale it refunds)."""
    rest = sim.rest
    totals: dict[Key, list[int]] = defaultdict(lambda: [0] * 5)
    with rest.lock:
        for spec in rest.specs.values():
            if STATES[spec.kind][0] != 10:
                continue
            store = rest.catalog.store_by_id(spec.warehouse["storeid"])
            local = datetime.fromtimestamp(spec.orderdate, ZoneInfo(spec.timezone)).date()
            row = totals[((store or {}).get("externalid") or NO_STORE, local, spec.currency)]
            nets = [line_net(line) for line in spec.lines]
            row[0] += sum(line_gross(line) for line in spec.lines)
            row[1] += sum(nets)
            row[2] -= sum(n for n in nets if n < 0)
            row[3] += 1
            row[4] += spec.kind == "refund"
    return {
        k: (money(g), money(n), money(g - n), money(r), Decimal(o), Decimal(ro))
        for k, (g, n, r, o, ro) in totals.items()
    }


def truth_stock(sim: Simulator) -> dict[Key, tuple[Decimal, Decimal, Decimal, Decimal]]:
    """Per store and currency, over the stock rows Sitoo lists: on hand, reserved,
    available and value."""
    rest = sim.rest
    totals: dict[Key, list[int]] = defaultdict(lambda: [0, 0, 0])
    with rest.lock:
        for (warehouseid, _sku), item in rest.stock.items.items():
            warehouse = rest.catalog.warehouse(warehouseid)
            assert warehouse is not None
            store = rest.catalog.store_by_id(warehouse["storeid"])
            key = ((store or {}).get("externalid") or NO_STORE, warehouse["currencycode"])
            totals[key][0] += item.total
            totals[key][1] += item.reserved
            totals[key][2] += item.total * item.cost
    return {
        k: (Decimal(t), Decimal(r), Decimal(t - r), money(v)) for k, (t, r, v) in totals.items()
    }


# ---- the questions ------------------------------------------------------------------------


def test_takings_per_store_and_day_are_the_receipts_of_the_days_closings(
    synced: Synced,
) -> None:
    """v_daily_store_sales gives, per store, local day and currency, the gross sales,
    refunds and takings, round-off and receipt counts the journal's receipts of that day's
    closings add up to (practice receipts left out, a re-aggregated day once, a late closing
    counted, the DST night's day whole)."""
    found = {
        (r[0], day(r[1]), r[2]): tuple(dec(v) for v in r[3:])
        for r in view_rows(
            synced.target,
            "SELECT store_id, business_date, currencycode, gross_sales, gross_refunds, "
            "gross_takings, roundoff, receipts, sales_receipts, refund_receipts "
            "FROM v_daily_store_sales",
        )
    }
    truth = truth_takings(synced.sim)
    assert found == truth
    assert {k[2] for k in truth} == {"SEK", "NOK"}
    assert (("200", date(2026, 10, 26), "SEK")) in truth
    assert (NO_STORE, date(2026, 10, 25), "SEK") in truth


def test_vat_per_rate_from_the_raw_tables_is_the_days_vat(synced: Synced) -> None:
    """Summing store_z_report_vat_groups per rate as the README says (refund section
    subtracted, per currency) gives each store day's gross and VAT per rate."""
    rows = table_rows(
        synced.target,
        "SELECT s.store_id, s.day_created, s.currency_code, v.vatvalue, v.section, "
        "v.moneytotal, v.moneytotalvat FROM {s}store_z_report_vat_groups v "
        "JOIN {s}store_z_reports s ON s.store_zreport_id = v.store_zreport_id",
    )
    found: dict[Key, list[Decimal]] = defaultdict(lambda: [Decimal(0), Decimal(0)])
    for store, when, currency, rate, section, gross, vat in rows:
        sign = -1 if section == "refund" else 1
        row = found[(store, day(when), currency, dec(rate).normalize())]
        row[0] += sign * dec(gross)
        row[1] += sign * dec(vat)
    truth = {(*k[:3], k[3].normalize()): v for k, v in truth_vat(synced.sim).items()}
    assert {k: tuple(v) for k, v in found.items()} == truth
    assert {k[3] for k in truth} >= {Decimal(6), Decimal(12), Decimal(25), Decimal(15)}


def test_payment_mix_is_the_receipts_payments(synced: Synced) -> None:
    """v_payment_mix per store, day, currency and payment is what the day's receipts paid
    and paid back (cash with the day's round-off), and the card brands of
    store_z_report_subpayments add up to the day's card sales."""
    found = {
        (r[0], day(r[1]), r[2], r[3]): tuple(dec(v) for v in r[4:])
        for r in view_rows(
            synced.target,
            "SELECT store_id, business_date, currencycode, payment, sales_amount, "
            "refund_amount, net_amount FROM v_payment_mix",
        )
    }
    assert found == truth_payments(synced.sim)
    brands: dict[Key, Decimal] = defaultdict(Decimal)
    for store, when, currency, name, amount in table_rows(
        synced.target,
        "SELECT s.store_id, s.day_created, s.currency_code, b.name, b.moneysubtotal "
        "FROM {s}store_z_report_subpayments b "
        "JOIN {s}store_z_reports s ON s.store_zreport_id = b.store_zreport_id "
        "WHERE b.section = 'sales'",
    ):
        brands[(store, day(when), currency, name)] += dec(amount)
    assert dict(brands) == truth_card_brands(synced.sim)
    assert {k[3] for k in brands} == {"Visa", "Mastercard"}


def test_cash_differences_are_every_closing_that_counted_wrong(synced: Synced) -> None:
    """v_cash_differences lists each uploaded closing whose count differs, with its
    difference and its local day in its register's zone, the late closing included."""
    truth = {}
    for report in synced.sim.world.all_reports():
        z = report.body
        if report.valid and cents(z["moneycash_diff"]):
            zone = ZoneInfo(time_zone_of(int(z["eshopid"])))
            local = datetime.fromtimestamp(z["datecreated"], zone).date()
            truth[(z["registerid"], z["zreportid"])] = (
                z["store_id"] or NO_STORE,
                local,
                z["currencycode"],
                money(cents(z["moneycash_diff"])),
            )
    found = {
        (r[0], r[1]): (r[2], day(r[3]), r[4], dec(r[5]))
        for r in view_rows(
            synced.target,
            "SELECT registerid, zreportid, store_id, business_date, currencycode, "
            "cash_difference FROM v_cash_differences",
        )
    }
    assert found == truth
    assert {v[2] for v in truth.values()} == {"SEK", "NOK"}


def test_product_amounts_are_the_receipts_rows(synced: Synced) -> None:
    """v_product_sales' amounts per product, store, local day and currency are the
    journal's row prices, refunds subtracted, practice receipts left out."""
    found = {
        (int(r[0]), r[1], day(r[2]), r[3]): dec(r[4])
        for r in view_rows(
            synced.target,
            "SELECT productid, store_id, business_date, currencycode, amount_incl_vat "
            "FROM v_product_sales",
        )
    }
    assert found == truth_product_amounts(synced.sim)


def test_order_sales_are_the_closed_orders(synced: Synced) -> None:
    """v_daily_order_sales per store, local day and currency: gross, net and VAT of closed
    orders with refunds netted off, refunded net, orders and refund orders; parked,
    cancelled and abandoned carts never count, web orders do, late ones on their own day."""
    found = {
        (r[0], day(r[1]), r[2]): tuple(dec(v) for v in r[3:])
        for r in view_rows(
            synced.target,
            "SELECT store_id, business_date, currencycode, gross_sales, net_sales, vat_sales, "
            "net_refunds, orders, refund_orders FROM v_daily_order_sales",
        )
    }
    truth = truth_orders(synced.sim)
    assert found == truth
    assert any(k[0] == NO_STORE and k[2] == "SEK" for k in truth)  # web orders


def test_stock_per_store_is_the_listed_rows(synced: Synced) -> None:
    """v_stock_levels summed per store and currency: units on hand, reserved, available
    and value of the rows Sitoo lists (a deleted product's and a removed row's gone)."""
    found: dict[Key, list[Decimal]] = defaultdict(lambda: [Decimal(0)] * 4)
    for store, currency, *figures in view_rows(
        synced.target,
        "SELECT store_id, currencycode, on_hand, reserved, available, stock_value "
        "FROM v_stock_levels",
    ):
        for n, value in enumerate(figures):
            found[(store, currency)][n] += dec(value)
    assert {k: tuple(v) for k, v in found.items()} == truth_stock(synced.sim)


def test_register_activity_knows_each_registers_silence(synced: Synced) -> None:
    """v_register_activity gives each register its latest closing, its last sign of life
    (closing or journal entry, the late journal burst included) and the whole days from it
    to synced_until: the dark register two days more than the others."""
    world = synced.sim.world
    last: dict[str, tuple[int, int]] = {}
    for report in world.all_reports():
        if not report.valid:  # rejected, not in pos_z_reports (its journal day is)
            continue
        z = report.body
        old = last.get(z["registerid"], (0, 0))
        last[z["registerid"]] = (max(old[0], z["zreportid"]), max(old[1], z["datecreated"]))
    for entry in world.journal.all_entries():
        old = last[entry["registerid"]]
        last[entry["registerid"]] = (old[0], max(old[1], entry["datecreated"]))
    found = {
        r[0]: (int(r[1]), utc(r[2]), int(r[3]), utc(r[4]))
        for r in view_rows(
            synced.target,
            "SELECT registerid, last_zreportid, last_activity_at, days_silent, synced_until "
            "FROM v_register_activity",
        )
    }
    assert set(found) == set(last)
    for registerid, (zreportid, at, days, until) in found.items():
        truth = datetime.fromtimestamp(last[registerid][1], UTC)
        assert (zreportid, at, days) == (last[registerid][0], truth, (until - truth).days)
    dark, other = found[world.registers[DARK].registerid], found[world.registers[0].registerid]
    # The dark register fell silent two days and some hours before the others; synced_until
    # is the wall clock of the last tick, so whole days from each silence to it differ by 2
    # or 3 by the hour of the day the suite runs.
    assert (other[1] - dark[1]).days == 2
    assert dark[2] - other[2] in (2, 3)


def test_a_store_day_is_the_aggregation_zones_not_the_stores(synced: Synced) -> None:
    """For the Tokyo store a closing's v_daily_store_sales day is its Stockholm day (the
    aggregation's), a day before its v_cash_differences day (its register's zone), and the
    view's description says so, so a BI user does not join the two on the day."""
    tokyo = ZoneInfo("Asia/Tokyo")
    apart = [
        r.body
        for r in _closings(synced.sim)
        if r.valid
        and r.body["store_id"] == "300"
        and cents(r.body["moneycash_diff"])
        and datetime.fromtimestamp(r.body["datecreated"], tokyo).date()
        != _store_day(synced.sim, r.body)[1]
    ]
    assert apart
    for z in apart:
        [(store_day,)] = view_rows(
            synced.target,
            "SELECT business_date FROM v_daily_store_sales "
            f"WHERE store_id = '300' AND business_date = '{_store_day(synced.sim, z)[1]}'",
        )
        [(register_day,)] = view_rows(
            synced.target,
            "SELECT business_date FROM v_cash_differences "
            f"WHERE registerid = '{z['registerid']}' AND zreportid = {z['zreportid']}",
        )
        assert day(register_day) - day(store_day) == timedelta(days=1)
    view = next(v for v in VIEWS if v.name == "v_daily_store_sales")
    described = dict(view.columns)["business_date"]
    assert "one aggregation time zone" in described
    assert "v_cash_differences" in described


def test_every_refund_order_names_the_sale_it_refunds() -> None:
    """Each refund order of the simulated history points back to a sale of its register
    made before it (the contract: refunds point back via creditorderid), also a refund of a
    product group the register had not sold before."""
    rest = Simulator.create(SimConfig(seed=7, days=12)).rest
    refunds = [s for s in rest.specs.values() if s.kind == "refund"]
    assert len(refunds) > 20
    for refund in refunds:
        sale = refund.credit
        assert sale is not None, refund.receipt_id
        assert (sale.kind, sale.registerid) == ("sale", refund.registerid)
        assert sale.orderdate <= refund.orderdate
        assert rest.orders[refund.orderid]["creditorderid"] == sale.orderid
