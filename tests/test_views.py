"""The ready views (v_*) equal totals the simulator computes from its own data, on every target."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from sitoo_sync.api.client import make_client
from sitoo_sync.simulator import SimConfig, Simulator
from sitoo_sync.simulator.rest_v2 import totals
from sitoo_sync.streams import select_streams
from sitoo_sync.sync import run_once
from sitoo_sync.warehouse import open_warehouse
from tests.support import settings_for, sync_world_once
from tests.targets import Target, grouped_targets, target_for, view_rows

NOW = datetime(2026, 11, 20, 23, 30, tzinfo=UTC)
START = (NOW - timedelta(days=20)).date()
Loaded = tuple[Target, Simulator]


@pytest.fixture(scope="module", params=grouped_targets("views"))
def loaded(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Loaded]:
    """A simulator with two currencies, refunds and stores, synced once into each target."""
    sim = Simulator.create(
        SimConfig(seed=21, days=12, malformed_every=0, now=int(NOW.timestamp()))
    ).start()
    tmp = tmp_path_factory.mktemp(request.param)
    try:
        with target_for(request.param, tmp) as target:
            sync_world_once(sim, target, tmp, START)
            yield target, sim
    finally:
        sim.stop()


def dec(value: Any) -> Decimal:
    """A figure as Decimal (SQLite returns money as exact text, quantities as numbers)."""
    return Decimal(str(value))


def day(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def utc(value: Any) -> datetime:
    """A timestamp as aware UTC (MySQL and SQLite views return naive UTC or text)."""
    at: datetime = datetime.fromisoformat(value) if isinstance(value, str) else value
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def store(value: str | None) -> str:
    return value or "NO_STORE"


def cents(value: str | None) -> Decimal:
    return Decimal(value or "0.00")


def pos_bodies(sim: Simulator) -> list[dict[str, Any]]:
    return [r.body for r in sim.world.all_reports() if r.valid]


def test_daily_store_sales_equal_the_pos_reports_each_store_day_aggregates(
    loaded: Loaded,
) -> None:
    """Per store, local day and currency: gross, net and VAT of sales, refunds and takings,
    round-off and receipts are the sums of the POS z-reports the simulator aggregated into
    that store and day."""
    target, sim = loaded
    expected: dict[tuple[Any, ...], tuple[Decimal, ...]] = {}
    for report in sim.world.store_z_reports(None, None, limit=None):
        if date.fromisoformat(report["day_created"]) < START:
            continue
        bodies = [
            sim.world.pos_z_report(z["registerid"], z["zreportid"])
            for z in report["register_zreports"]
        ]
        total: defaultdict[str, Decimal] = defaultdict(Decimal)
        for b in (x.body for x in bodies if x is not None):
            for field in ("moneysalestotal", "moneysalestotalnet"):
                total[field] += cents(b[field])
            for field in ("moneyrefundtotal", "moneyrefundtotalnet", "moneyroundoff"):
                total[field] += cents(b[field])
            for field in ("numreceipts",):
                total[field] += Decimal(b[field])
        gross, net = total["moneysalestotal"], total["moneysalestotalnet"]
        refund, refund_net = total["moneyrefundtotal"], total["moneyrefundtotalnet"]
        key = (
            report["store_id"],
            date.fromisoformat(report["day_created"]),
            report["currency_code"],
        )
        expected[key] = (
            gross,
            net,
            gross - net,
            refund,
            refund_net,
            refund - refund_net,
            gross - refund,
            net - refund_net,
            (gross - net) - (refund - refund_net),
            total["moneyroundoff"],
            total["numreceipts"],
        )
    found = {
        (r[0], day(r[1]), r[2]): tuple(dec(v) for v in r[3:])
        for r in view_rows(
            target,
            "SELECT store_id, business_date, currencycode, gross_sales, net_sales, vat_sales, "
            "gross_refunds, net_refunds, vat_refunds, gross_takings, net_takings, "
            "vat_takings, roundoff, receipts "
            "FROM v_daily_store_sales",
        )
    }
    assert found == expected
    assert {c for _, _, c in found} == {"SEK", "NOK"}
    assert any(v[3] for v in found.values())  # refunds were subtracted somewhere
    assert any(v[9] for v in found.values())  # and cash was rounded


def test_daily_store_sales_explain_the_payments_by_the_roundoff(loaded: Loaded) -> None:
    """Per store, day and currency the payments of v_payment_mix add up to gross_takings +
    roundoff of v_daily_store_sales, and the round-off is not zero on some days."""
    target, _ = loaded
    paid: dict[tuple[Any, ...], Decimal] = defaultdict(Decimal)
    for store_id, when, currency, amount in view_rows(
        target, "SELECT store_id, business_date, currencycode, net_amount FROM v_payment_mix"
    ):
        paid[(store_id, day(when), currency)] += dec(amount)
    takings = {
        (r[0], day(r[1]), r[2]): (dec(r[3]), dec(r[4]))
        for r in view_rows(
            target,
            "SELECT store_id, business_date, currencycode, gross_takings, roundoff "
            "FROM v_daily_store_sales",
        )
    }
    assert {k: gross + roundoff for k, (gross, roundoff) in takings.items()} == dict(paid)
    assert any(gross != paid[k] for k, (gross, _) in takings.items())


def test_payment_mix_equals_the_aggregated_payments(loaded: Loaded) -> None:
    """Per store, day, currency and payment type: sales and refund payments, and their net."""
    target, sim = loaded
    expected: dict[tuple[Any, ...], list[Decimal]] = defaultdict(lambda: [Decimal(0)] * 3)
    for report in sim.world.store_z_reports(None, None, limit=None):
        if date.fromisoformat(report["day_created"]) < START:
            continue
        for z in report["register_zreports"]:
            found_report = sim.world.pos_z_report(z["registerid"], z["zreportid"])
            assert found_report is not None
            body = found_report.body
            for section, sign in (("paymentssales", 1), ("paymentsrefund", -1)):
                for p in body[section]:
                    key = (
                        report["store_id"],
                        date.fromisoformat(report["day_created"]),
                        report["currency_code"],
                        p["name"],
                    )
                    expected[key][0 if sign > 0 else 1] += cents(p["moneytotal"])
                    expected[key][2] += sign * cents(p["moneytotal"])
    found = {
        (r[0], day(r[1]), r[2], r[3]): [dec(v) for v in r[4:]]
        for r in view_rows(
            target,
            "SELECT store_id, business_date, currencycode, payment, sales_amount, "
            "refund_amount, net_amount FROM v_payment_mix",
        )
    }
    assert found == dict(expected)


def test_cash_differences_list_every_closing_with_a_difference(loaded: Loaded) -> None:
    """Exactly the closings whose moneycash_diff is not zero, with their difference."""
    target, sim = loaded
    expected = {
        (b["registerid"], b["zreportid"]): (
            store(b["store_id"]),
            b["currencycode"],
            cents(b["moneycash_diff"]),
        )
        for b in pos_bodies(sim)
        if cents(b["moneycash_diff"]) != 0
    }
    found = {
        (r[0], r[1]): (r[2], r[3], dec(r[4]))
        for r in view_rows(
            target,
            "SELECT registerid, zreportid, store_id, currencycode, cash_difference "
            "FROM v_cash_differences",
        )
    }
    assert expected
    assert found == expected


def test_register_activity_shows_each_registers_last_signs_of_life(loaded: Loaded) -> None:
    """Per register: last z-report number and time, last journal entry, and whole days
    silent up to the moment its silence is known (synced_until, the tick's)."""
    target, sim = loaded
    last_z: dict[str, tuple[int, datetime]] = {}
    for b in pos_bodies(sim):
        at = datetime.fromtimestamp(b["datecreated"], UTC)
        old = last_z.get(b["registerid"])
        last_z[b["registerid"]] = (
            max(b["zreportid"], old[0]) if old else b["zreportid"],
            max(at, old[1]) if old else at,
        )
    last_j: dict[str, datetime] = {}
    for e in sim.world.journal.all_entries():
        at = datetime.fromtimestamp(e["datecreated"], UTC)
        last_j[e["registerid"]] = max(at, last_j.get(e["registerid"], at))
    found = {
        r[0]: r[1:]
        for r in view_rows(
            target,
            "SELECT registerid, last_zreportid, last_z_report_at, last_journal_at, days_silent, "
            "synced_until FROM v_register_activity",
        )
    }
    assert set(last_z) <= set(found)
    for registerid, (zreportid, z_at) in last_z.items():
        got = found[registerid]
        assert (got[0], utc(got[1]), utc(got[2])) == (zreportid, z_at, last_j[registerid])
        latest = max(z_at, last_j[registerid])
        assert int(got[3]) == (utc(got[4]) - latest).days > 0


def test_product_sales_net_refunds_per_product_store_day_and_currency(loaded: Loaded) -> None:
    """Units and amounts per product, store, local day and currency equal the simulator's
    receipts: refunds subtracted, practice receipts left out."""
    target, sim = loaded
    expected: dict[tuple[Any, ...], list[Decimal]] = defaultdict(lambda: [Decimal(0)] * 2)
    refunds = 0
    for e in sim.world.journal.all_entries():
        if e["type"] != "receipt" or e["ispractice"]:
            continue
        data = e["data"]
        refunds += data["isrefund"]
        extra = data["additionaldata"]
        local = datetime.fromtimestamp(e["datecreated"], ZoneInfo(extra["pos-timezone"])).date()
        sign = -1 if data["isrefund"] else 1
        for item in data["items"]:
            key = (
                int(item["additionaldata"]["item-productid"]),
                store(extra["store-externalid"]),
                local,
                data["currencycode"],
            )
            expected[key][0] += sign * item["quantity"]
            expected[key][1] += sign * cents(item["moneyrowprice"])
    found = {
        (r[0], r[1], day(r[2]), r[3]): [dec(r[4]), dec(r[5])]
        for r in view_rows(
            target,
            "SELECT productid, store_id, business_date, currencycode, quantity, "
            "amount_incl_vat FROM v_product_sales",
        )
    }
    assert found == dict(expected)
    assert refunds  # the data had refunds to subtract


def test_daily_order_sales_equal_the_simulators_net_sales(loaded: Loaded) -> None:
    """Net sales per store, local day and currency from the orders view equal the
    simulator's own totals of its closed orders, refunds netted off, on every target."""
    target, sim = loaded
    got: dict[tuple[str, str, str], Decimal] = defaultdict(Decimal)
    for store, when, currency, net in view_rows(
        target, "SELECT store_id, business_date, currencycode, net_sales FROM v_daily_order_sales"
    ):
        got[(store, day(when).isoformat(), currency)] += dec(net)
    truth = {
        (store or "NO_STORE", when, currency): Decimal(net)
        for (store, when, currency), net in totals.net_sales_by_store_day(sim.rest).items()
    }
    assert dict(got) == truth


def test_stock_levels_value_each_store_as_the_simulator_does(loaded: Loaded) -> None:
    """The stock value per store and currency summed from v_stock_levels equals the
    simulator's, and every row of a listed product names it."""
    target, sim = loaded
    got: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    listed = 0
    for store, currency, value, productid in view_rows(
        target, "SELECT store_id, currencycode, stock_value, productid FROM v_stock_levels"
    ):
        got[(store, currency)] += dec(value)
        listed += productid is not None
    truth = {
        (store or "NO_STORE", currency): Decimal(value)
        for (store, currency), value in totals.stock_value_by_store(sim.rest).items()
    }
    assert dict(got) == truth
    live = {p["sku"] for p in sim.rest.catalog.products.values()}
    assert listed == sum(1 for (_w, sku) in sim.rest.stock.items if sku in live)


def test_registers_view_gives_each_register_its_store(loaded: Loaded) -> None:
    """v_registers names, for every register with a store, the store the simulator gave it
    (its external ID, as z-reports' store_id), on every target."""
    target, sim = loaded
    got = dict(view_rows(target, "SELECT registerid, store_id FROM v_registers"))
    registers = {r.registerid: r.store_id for r in sim.world.registers}
    assert set(got) == set(registers)
    with_store = {k: v for k, v in registers.items() if v is not None}
    assert {k: got[k] for k in with_store} == with_store


def test_the_readme_queries_read_the_views_and_run(loaded: Loaded) -> None:
    """Every query of the README's Querying section reads a view, and runs on DuckDB."""
    target, _ = loaded
    if target.name != "duckdb":
        pytest.skip("the README's examples are written for the default target, DuckDB")
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    section = readme[readme.index("### Querying") : readme.index("## Verify")]
    block = section.split("```sql\n", 1)[1].split("```", 1)[0]
    queries = [q for q in block.split(";") if q.strip()]
    assert len(queries) == 5
    for sql in queries:
        assert " FROM v_" in sql.replace("\n", " ")
        assert view_rows(target, sql) is not None


def test_views_and_their_columns_carry_their_descriptions(loaded: Loaded) -> None:
    """On DuckDB and PostgreSQL each view and view column has its description as comment."""
    target, _ = loaded
    if target.name not in ("duckdb", "postgres"):
        pytest.skip(f"{target.name} keeps no comments on views")
    from sitoo_sync.views import VIEWS

    for view in VIEWS:
        if target.name == "duckdb":
            [(comment,)] = view_rows(
                target, f"SELECT comment FROM duckdb_views() WHERE view_name = '{view.name}'"
            )
            found = dict(
                view_rows(
                    target,
                    "SELECT column_name, comment FROM duckdb_columns() "
                    f"WHERE table_name = '{view.name}'",
                )
            )
        else:
            oid = f"'{target.schema}.{view.name}'::regclass"
            [(comment,)] = view_rows(target, f"SELECT obj_description({oid}, 'pg_class')")
            found = dict(
                view_rows(
                    target,
                    f"SELECT attname, col_description({oid}, attnum) FROM pg_attribute "
                    f"WHERE attrelid = {oid} AND attnum > 0",
                )
            )
        assert comment == view.description
        assert found == dict(view.columns)


def test_views_are_described_in_the_dictionary() -> None:
    """Every view the tool creates is documented in docs/tables.md with its columns."""
    from sitoo_sync.dictionary import all_tables, markdown
    from sitoo_sync.views import VIEWS

    text = markdown(all_tables())
    for view in VIEWS:
        assert f"## {view.name}" in text
        for name, _ in view.columns:
            assert f"| `{name}` |" in text


# ---- views over rows made by hand: the cases the simulator does not make ---------------------

NOW_REAL = datetime.now(UTC)  # days_silent is measured to the database's clock, not NOW
DELETED_AT = NOW_REAL - timedelta(days=30)
LISTED_AT = NOW_REAL - timedelta(days=5, hours=1)
MADE: dict[str, list[dict[str, Any]]] = {
    "stores": [{"site_id": 1, "storeid": 1, "externalid": "S1", "name": "Store One"}],
    "warehouses": [
        {"site_id": 1, "warehouseid": 1, "name": "WH1", "storeid": 1, "currencycode": "SEK"}
    ],
    "products": [
        # SKU A: deleted, then created again under a new productid (the old row is kept)
        {"site_id": 1, "productid": 10, "sku": "A", "title": "Old A", "missing_since": DELETED_AT},
        {"site_id": 1, "productid": 11, "sku": "A", "title": "New A"},
        # SKU B: deleted, nothing in its place
        {"site_id": 1, "productid": 20, "sku": "B", "title": "Gone B", "missing_since": DELETED_AT},
        # SKU C: two live products (the catalogue does not say a SKU is unique)
        {"site_id": 1, "productid": 31, "sku": "C", "title": "C too"},
        {"site_id": 1, "productid": 30, "sku": "C", "title": "C first"},
    ],
    "warehouse_items": [
        {
            "site_id": 1,
            "warehouseid": 1,
            "sku": sku,
            "decimaltotal": Decimal(n),
            "moneytotal": Decimal(value),
        }
        for sku, n, value in (
            ("A", 5, "50.00"),
            ("B", 2, "20.00"),
            ("C", 1, "10.00"),
            ("D", 1, "1.00"),
        )
    ],
    "journal_receipts": [
        {
            "registerid": "{R1}",
            "id": 1,
            "store_id": "S1",
            "business_date": date(2026, 1, 2),
            "currencycode": "SEK",
            "isrefund": False,
            "ispractice": False,
        }
    ],
    "journal_receipt_items": [
        {
            "registerid": "{R1}",
            "id": 1,
            "position": p,
            "productid": productid,
            "sku": sku,
            "decimalunitquantity": Decimal(1),
            "moneyrowprice": Decimal("10.00"),
        }
        for p, productid, sku in (
            (0, "11", "A"),
            (1, "X-7", "X"),
            (2, "99999999999999999999", "Y"),
            (3, "11\n", "Z"),  # MySQL's `$` matches before a last newline
            (4, None, "GIFT"),  # no item-productid (a gift card, an open-price item)
            (5, None, "SERVICE"),
        )
    ],
    "cash_registers": [
        # listed five days ago, in store S1's warehouse, and never heard from since
        {
            "registerid": "{QUIET}",
            "site_id": 1,
            "warehouseid": 1,
            "first_seen_at": LISTED_AT,
            "last_seen_at": NOW_REAL,
        }
    ],
    # its journal and the account's z-reports synced now: its silence is known until now
    "sync_state": [
        {"stream": s, "partition_key": p, "last_success_at": NOW_REAL, "last_status": "ok"}
        for s, p in (("journal_entries", "{QUIET}"), ("pos_z_reports", "1500"))
    ],
}


def load_made(target: Target, streams: list[str], fill: list[str] | None = None) -> None:
    """The tables of `streams` and the views made on `target`; the tables of `fill` (all
    of them, and the system tables, when None) given their rows of MADE."""
    from sitoo_sync.normalize.columns import rows_to_arrow
    from sitoo_sync.streams import STREAMS
    from sitoo_sync.views import VIEWS
    from sitoo_sync.warehouse.base import SYSTEM_TABLES

    tables = {t.name: t for s in streams for t in STREAMS[s].tables}
    warehouse = open_warehouse(target.url, schema=target.schema)
    try:
        warehouse.ensure_schema([*SYSTEM_TABLES, *tables.values()], VIEWS)
        filled = [t for s in fill or streams for t in STREAMS[s].tables]
        with warehouse.transaction():
            for table in filled if fill else [*SYSTEM_TABLES, *filled]:
                data = [
                    tuple(d.get(c) for c in table.column_names) for d in MADE.get(table.name, [])
                ]
                if data:
                    warehouse.insert(table, rows_to_arrow(table, data))
    finally:
        warehouse.close()


@pytest.fixture(scope="module", params=grouped_targets("views-made"))
def made(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Target]:
    """Every stream's tables and the views on each target, holding the rows of MADE."""
    from sitoo_sync.streams import STREAMS

    with target_for(request.param, tmp_path_factory.mktemp(request.param)) as target:
        load_made(target, list(STREAMS))
        yield target


def test_stock_levels_show_each_stock_row_once_with_its_live_product(made: Target) -> None:
    """A deleted product's row (kept, missing_since set) never names or doubles a stock row:
    each stock row appears once, with the live product of its SKU, the lowest productid of
    several, or NULL."""
    found = view_rows(
        made,
        "SELECT sku, productid, title, stock_value FROM v_stock_levels ORDER BY sku",
    )
    assert [(r[0], r[1], r[2], dec(r[3])) for r in found] == [
        ("A", 11, "New A", Decimal("50.00")),
        ("B", None, None, Decimal("20.00")),
        ("C", 30, "C first", Decimal("10.00")),
        ("D", None, None, Decimal("1.00")),
    ]


def test_product_sales_productid_joins_the_catalogue(made: Target) -> None:
    """v_product_sales.productid has the catalogue's integer type, so it joins products on
    every target; a productid that is no integer (a trailing newline too) is NULL, never an
    error, nor the number of another text."""
    products = f"{made.schema}.products" if made.schema else "products"
    joined = view_rows(
        made,
        "SELECT s.productid, p.title FROM v_product_sales s "
        f"JOIN {products} p ON p.productid = s.productid",
    )
    assert joined == [(11, "New A")]
    found = dict(view_rows(made, "SELECT sku, productid FROM v_product_sales"))
    assert found == {"A": 11, "X": None, "Y": None, "Z": None, "GIFT": None, "SERVICE": None}


def test_product_sales_keep_items_without_a_productid_apart_by_sku(made: Target) -> None:
    """Receipt items that name no product are one row per SKU, each with its own units and
    amount, not one row under whichever SKU sorts last."""
    found = view_rows(
        made,
        "SELECT sku, quantity, amount_incl_vat FROM v_product_sales WHERE sku IN "
        "('GIFT', 'SERVICE') ORDER BY sku",
    )
    assert [(r[0], dec(r[1]), dec(r[2])) for r in found] == [
        ("GIFT", Decimal(1), Decimal("10.00")),
        ("SERVICE", Decimal(1), Decimal("10.00")),
    ]


def test_register_activity_shows_a_register_that_never_reported(made: Target) -> None:
    """A listed register that never sent a z-report or journal entry has its store (as
    v_registers gives it) and is silent since it was first listed, so a silent-registers
    query finds it."""
    found = view_rows(
        made,
        "SELECT registerid, store_id, last_activity_at, days_silent FROM v_register_activity "
        "WHERE days_silent > 2",
    )
    assert [(r[0], r[1], r[2], int(r[3])) for r in found] == [("{QUIET}", "S1", None, 5)]


def test_register_activity_is_made_without_the_store_tables_and_joins_them_later(
    tmp_path: Path,
) -> None:
    """A target without the warehouses and stores streams still gets v_register_activity
    (the store of a register that never reported unknown); once they are synced too, the
    view is made again and names that register's store."""
    with target_for("duckdb", tmp_path) as target:
        pos = ["cash_registers", "pos_z_reports", "journal_entries"]
        load_made(target, pos)
        query = "SELECT registerid, store_id, days_silent FROM v_register_activity"
        assert view_rows(target, query) == [("{QUIET}", None, 5)]
        load_made(target, [*pos, "stores", "warehouses"], fill=["stores", "warehouses"])
        assert view_rows(target, query) == [("{QUIET}", "S1", 5)]


POS = ["cash_registers", "journal_entries", "pos_z_reports"]


def _tick(
    sim: Simulator, target: Target, tmp: Path, sites: list[int], streams: list[str] = POS
) -> None:
    """One tick of `streams` for `sites` into `target`, as `run --once` would."""
    settings = settings_for(sim, tmp / "unused.duckdb", site_ids=sites, **target.settings())
    with make_client(settings, sleep=lambda _s: None) as client:
        report = run_once(
            settings,
            open_warehouse(settings.target_url, schema=settings.target_schema),
            client,
            select_streams(streams),
        )
    assert report.ok, report.results


@pytest.mark.parametrize("name", ["duckdb", "sqlite", "postgres", "mysql"])
def test_register_activity_counts_silence_only_while_a_register_is_synced(
    name: str, tmp_path: Path
) -> None:
    """After a site is taken out of SITOO_SITE_IDS (and with the z-reports not synced since),
    its registers' synced_until stays at the last tick that read a sign of life of them, and
    their days_silent is counted up to it, while the registers of the site still named are
    synced up to the latest tick: synced_until is the later of the journal's and the
    z-reports' last good sync."""
    sim = Simulator.create(SimConfig(seed=5, days=2, malformed_every=0)).start()
    try:
        kept, dropped = sim.world.site_ids()[:2]
        with target_for(name, tmp_path) as target:
            _tick(sim, target, tmp_path, [kept, dropped])
            between = datetime.now(UTC)
            _tick(sim, target, tmp_path, [kept], ["cash_registers", "journal_entries"])
            state = f"{target.schema}.sync_state" if target.schema else "sync_state"
            synced = {
                (s, p): utc(at)
                for s, p, at in view_rows(
                    target, f"SELECT stream, partition_key, last_success_at FROM {state}"
                )
            }
            rows = view_rows(
                target,
                "SELECT registerid, site_id, last_activity_at, synced_until, days_silent "
                "FROM v_register_activity",
            )
    finally:
        sim.stop()
    sites = {r.registerid: r.eshopid for r in sim.world.registers}
    assert {r[0]: r[1] for r in rows} == sites
    [z_reports] = [at for (s, _), at in synced.items() if s == "pos_z_reports"]
    assert z_reports < between
    for registerid, site, last, until, days in rows:
        journal = synced[("journal_entries", registerid)]
        assert (journal > between) == (site == kept)
        assert utc(until) == max(journal, z_reports)
        assert (utc(until) > between) == (site == kept)
        assert days == max(0, (utc(until) - utc(last)) // timedelta(days=1))


def test_stock_levels_of_a_site_no_longer_synced_keep_their_last_read(tmp_path: Path) -> None:
    """After a site is taken out of SITOO_SITE_IDS, the stock rows of its warehouses show
    the tick that last read them (synced_at), those of the site still named the latest."""
    stock = ["stores", "warehouses", "warehouse_items", "products"]
    sim = Simulator.create(SimConfig(seed=5, days=2, malformed_every=0)).start()
    try:
        kept, dropped = sim.world.site_ids()[:2]
        with target_for("duckdb", tmp_path) as target:
            _tick(sim, target, tmp_path, [kept, dropped], stock)
            between = datetime.now(UTC)
            _tick(sim, target, tmp_path, [kept], stock)
            rows = view_rows(target, "SELECT site_id, synced_at FROM v_stock_levels")
    finally:
        sim.stop()
    assert {site for site, _ in rows} == {kept, dropped}
    assert all((utc(at) > between) == (site == kept) for site, at in rows)
