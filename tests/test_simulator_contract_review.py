"""Adversarial review of the simulator against the wire contract (API_CONTRACT.md, the
vendor pages and rest-v2-catalogue.md): the hostile behaviours the contract allows that the
simulator did not have, each shown in the simulator and then synced end to end.

What the contract allows and the simulator now does: ids committed out of order (orders,
warehouse transactions: `RestConfig.late_commit_every`), products listed in modification
order and edited while they are listed (`product_order`, `edits_per_request`), a register
deleted from the listing whose reports remain (`World.retire_register`), modifications and
stock moves stamped earlier than the moment they become visible (`touch_product(at=)`,
`move_stock(at=)`), and a truncated body or a proxy's HTML 502 (`FaultPlan` kinds
`truncate`, `html`). Every end-to-end test compares the warehouse with the simulator's own
truth: each record once, none missing, none marked gone that is not.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from sitoo_sync.api.client import make_client
from sitoo_sync.simulator import RestConfig, SimConfig, Simulator
from sitoo_sync.streams import STREAMS, select_streams
from sitoo_sync.streams.base import Stream
from sitoo_sync.streams.cursors import CursorPages
from sitoo_sync.streams.cursors_modified import ModifiedSince
from sitoo_sync.sync import run_once
from sitoo_sync.warehouse import open_warehouse
from tests.support import settings_for
from tests.targets import Target, target_for

#: DuckDB, and PostgreSQL where SITOO_TEST_POSTGRES_URL names a server.
TARGETS = ["duckdb", "postgres"]


@pytest.fixture(params=TARGETS)
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    """An empty warehouse of each target."""
    with target_for(request.param, tmp_path) as found:
        yield found


def _api(sim: Simulator) -> httpx.Client:
    return httpx.Client(base_url=sim.v2_url, auth=(sim.api_id, sim.password))


def _tick(
    sim: Simulator,
    target: Target,
    names: list[str],
    *,
    options: Mapping[str, Mapping[str, Any]] | None = None,
    page_size: int | None = None,
    journal_num: int | None = None,
) -> None:
    """One tick of the streams `names` from `sim` into `target` on the world's clock (the
    modified feeds paged `page_size` at a time, journals `journal_num`); it must succeed."""
    settings = settings_for(
        sim, Path("unused.duckdb"), stream_options=dict(options or {}), **target.settings()
    )
    streams: list[Stream] = []
    for declared in select_streams(names):
        cursor: Any = declared.cursor
        if page_size is not None and isinstance(cursor, ModifiedSince):
            cursor = dataclasses.replace(cursor, page_size=page_size)
        if journal_num is not None and isinstance(cursor, CursorPages):
            fixed = tuple((k, journal_num if k == "num" else v) for k, v in cursor.fixed)
            cursor = dataclasses.replace(cursor, fixed=fixed)
        streams.append(dataclasses.replace(declared, cursor=cursor))
    warehouse = open_warehouse(target.url, schema=target.schema)
    with make_client(settings, sleep=lambda _s: None) as client:
        report = run_once(
            settings,
            warehouse,
            client,
            streams,
            clock=lambda: datetime.fromtimestamp(sim.world.config.now, UTC),
        )
    assert report.ok, report.results


def _rows(target: Target, stream: str, table: int = 0) -> list[dict[str, Any]]:
    """Every row of a stream's table (its parent unless `table` says), as dicts."""
    warehouse = open_warehouse(target.url, schema=target.schema)
    try:
        return warehouse.read_table(STREAMS[stream].tables[table])
    finally:
        warehouse.close()


def _once(rows: list[dict[str, Any]], key: tuple[str, ...]) -> set[tuple[Any, ...]]:
    """The keys of `rows`, each of which must be there once."""
    keys = Counter(tuple(r[k] for k in key) for r in rows)
    assert max(keys.values(), default=1) == 1, "a record is stored twice"
    return set(keys)


# ---- the simulator's hostile behaviours, as it serves them --------------------------------


def test_a_truncated_body_and_a_proxys_html_502_are_what_the_simulator_sends() -> None:
    """`truncate` promises the whole Content-Length and sends half; `html` is a 502 whose
    body is an HTML page, not the vendor's error shape; the next request is answered."""
    with Simulator.create(SimConfig(seed=2, days=1)) as sim, _api(sim) as api:
        sim.faults.queue("truncate", path="/sites.json")
        with pytest.raises(httpx.RemoteProtocolError):
            api.get("/sites.json")
        sim.faults.queue("html", path="/sites.json")
        proxy = api.get("/sites.json")
        assert proxy.status_code == 502
        assert proxy.headers["content-type"] == "text/html"
        assert proxy.text.startswith("<html>")
        assert api.get("/sites.json").json()["totalcount"] == 2


def test_an_order_that_commits_late_is_listed_after_the_ids_above_it() -> None:
    """With late commits, a new order's id is neither listed nor found by id while the ids
    above it are; it is listed once its listing has answered the requests it waits for."""
    rest = RestConfig(late_commit_every=2, late_commit_requests=2)
    with Simulator.create(SimConfig(seed=2, days=1, rest=rest)) as sim, _api(sim) as api:
        first, late, after = (o["orderid"] for o in sim.rest.add_orders(3))

        def listed() -> set[int]:
            answer = api.get("/orders.json", params={"orderidfrom": first, "sort": "orderid",
                                                     "num": 100}).json()  # fmt: skip
            return {o["orderid"] for o in answer["items"]}

        assert listed() == {first, after}
        by_id = api.get("/orders.json", params={"orderid": late}).json()
        assert by_id == {"totalcount": 0, "items": []}
        assert listed() == {first, late, after}


def test_a_warehouse_transaction_that_commits_late_is_listed_after_the_ids_above_it() -> None:
    """With late commits, a new stock transaction is left out of the listing for as many
    answers as it waits, then listed in its place."""
    rest = RestConfig(late_commit_every=2, late_commit_requests=1)
    with Simulator.create(SimConfig(seed=2, days=1, rest=rest)) as sim, _api(sim) as api:
        sku = next(iter(sim.rest.catalog.products.values()))["sku"]
        made = [sim.rest.move_stock(1, sku, n)["warehousetransactionid"] for n in (1, 2, 3)]

        def listed() -> list[int]:
            answer = api.get(
                "/sites/1/warehousetransactions.json",
                params={"warehousetransactionidfrom": made[0], "sort": "warehousetransactionid"},
            ).json()
            return [t["warehousetransactionid"] for t in answer["items"]]  # fmt: skip

        assert listed() == [made[0], made[2]]
        assert listed() == made


def test_products_in_modification_order_move_an_edited_one_to_the_end() -> None:
    """With `product_order="modified"`, the listing ascends by datemodified, so an edit
    moves a product the first page showed to the end (the count unchanged); with
    `edits_per_request`, each answer is followed by such an edit."""
    rest = RestConfig(product_order="modified", edits_per_request=1)
    with Simulator.create(SimConfig(seed=2, days=1, rest=rest)) as sim, _api(sim) as api:
        params: dict[str, str | int] = {
            "includeinactive": "true",
            "num": 5,
            "fields": "productid,datemodified",
        }
        first = api.get("/sites/1/products.json", params=params).json()
        times = [p["datemodified"] for p in first["items"]]
        assert times == sorted(times)
        edited = min(first["items"], key=lambda p: (p["datemodified"], p["productid"]))
        again = api.get("/sites/1/products.json", params={**params, "num": 100}).json()
        assert again["totalcount"] == first["totalcount"]
        assert again["items"][-1]["productid"] == edited["productid"]


def test_a_retired_register_leaves_the_listing_and_keeps_its_reports() -> None:
    """A register taken out of use is no longer listed by `/cashregisters`; its z-reports
    are still served, and new ones of it can still arrive (a backend import)."""
    with Simulator.create(SimConfig(seed=2, days=1)) as sim, _api(sim) as api:
        gone = sim.world.registers[0]
        sim.world.retire_register(gone.registerid)
        listing = api.get(f"/sites/{gone.eshopid}/cashregisters.json",
                          params={"includenotregistered": "true", "num": 100}).json()  # fmt: skip
        assert gone.registerid not in {r["registerid"] for r in listing["items"]}
        reports = api.get("/pos-z-reports", params={"registerid": gone.registerid}).json()
        assert reports
        at = sim.world.config.now
        sim.world.add_report(sim.world.make_report(gone, at - 600, at))
        again = api.get("/pos-z-reports", params={"registerid": gone.registerid}).json()
        assert len(again) == len(reports) + 1


# ---- synced end to end ----------------------------------------------------------------------


def test_a_crowded_second_finds_the_reports_of_a_register_no_longer_listed(
    target: Target,
) -> None:
    """A bulk import of more than 500 z-reports in one second, the last of them of a
    register deleted from the listing (served in the order they came, so no page shows it):
    the split by the registers the sync knows does not reach it, the check by the second's
    sites does, so every valid report loads, each once."""
    config = SimConfig(seed=1, days=1, malformed_every=0, same_second_order="added")
    with Simulator.create(config) as sim:
        world = sim.world
        at = world.config.now - 100
        gone = world.registers[-2]
        others = [r for r in world.registers if r is not gone]
        for n in range(520):
            world.add_report(world.make_report(others[n % len(others)], at - 600, at))
        world.add_report(world.make_report(gone, at - 600, at))
        world.retire_register(gone.registerid)
        _tick(sim, target, ["pos_z_reports"])
        loaded = _once(_rows(target, "pos_z_reports"), ("registerid", "zreportid"))
        assert loaded == world.valid_keys()


def test_a_sweep_while_products_are_edited_marks_no_live_product_missing(
    tmp_path: Path,
) -> None:
    """Products listed in modification order, one edited after every answer: the id
    sweep's pages shift under each edit (the count unchanged); ids listed twice make it
    list again, so no live product gets `missing_since`."""
    rest = RestConfig(product_order="modified", edits_per_request=1)
    with (
        Simulator.create(SimConfig(seed=3, days=2, malformed_every=0, rest=rest)) as sim,
        target_for("duckdb", tmp_path) as target,
    ):
        _tick(sim, target, ["products"], page_size=5)
        live = set(sim.rest.catalog.products)
        marked = {r["productid"] for r in _rows(target, "products") if r["missing_since"]}
        assert not marked & live


def _hostile_world() -> SimConfig:
    """A small world with every hostile REST v2 behaviour on."""
    rest = RestConfig(
        late_commit_every=3,
        late_commit_requests=4,
        late_commit_span=40,  # within the 50 and 200 trailing ids of the two keysets
        product_order="modified",
        stock_order="modified",
        settles_per_request=1,
    )
    return SimConfig(seed=5, days=1, registers_per_store=1, malformed_every=0, rest=rest)


HOSTILE_STREAMS = [
    "cash_registers",
    "journal_entries",
    "pos_z_reports",
    "orders",
    "warehouse_transactions",
    "products",
    "warehouse_items",
]
HOSTILE_OPTIONS = {
    "orders": {"page_size": 40},
    "warehouse_transactions": {"page_size": 25},
    "products": {"sweep_hours": 1, "snapshot_hours": 2},
    "warehouse_items": {"sweep_hours": 1, "snapshot_hours": 2},
}


def _no_live_row_marked_missing(sim: Simulator, target: Target) -> None:
    """No product the catalogue still has, and no stock row still listed, is marked gone."""
    live = set(sim.rest.catalog.products)
    products = _rows(target, "products")
    assert not {r["productid"] for r in products if r["missing_since"]} & live
    listed = set(sim.rest.stock.items)
    items = _rows(target, "warehouse_items")
    assert not {(r["warehouseid"], r["sku"]) for r in items if r["missing_since"]} & listed


def test_a_hostile_world_synced_tick_by_tick_equals_the_simulators_truth(
    target: Target,
) -> None:
    """Late commits, orders arriving and settling while they are walked, pages of a few
    records, products and stock listed in modification order and edited while listed,
    changes stamped before they become visible, a register added and one deleted, z-reports
    of one second and a late one, journal pages within one second, and a
    truncated body, a proxy's HTML 502, a 429, a 503 and a dropped connection on the way:
    tick by tick nothing live is marked gone, and once the world is quiet every record
    of the simulator is in the warehouse once, in its latest state."""
    with Simulator.create(_hostile_world()) as sim:
        world, rest = sim.world, sim.rest

        def tick(page_size: int = 12) -> None:
            _tick(sim, target, HOSTILE_STREAMS, options=HOSTILE_OPTIONS, page_size=page_size,
                  journal_num=25)  # fmt: skip
            _no_live_row_marked_missing(sim, target)

        # The backfill: orders arrive during the walk, and every products answer is followed
        # by an edit, so listings and the first sweep shift under it.
        rest.config.orders_per_request = 1
        rest.config.edits_per_request = 1
        tick()
        # Changes stamped before the cursors just stored (seen only now; within the overlap).
        then = world.config.now
        product = sorted(rest.catalog.products)[3]
        rest.touch_product(product, at=then - 300, title="Renamed while its edit committed")
        warehouse, sku = sorted(rest.stock.items)[0]
        rest.move_stock(warehouse, sku, 5, at=then - 200)
        # Over an hour on (a sweep due): orders, a refund, settles, a reservation, a new
        # register and a retired one, z-reports of one second, a late one, a journal burst.
        world.advance_clock(4500)
        now = world.config.now
        rest.add_orders(6)
        rest.add_orders(2, "pending")
        sale = next(i for i, s in rest.specs.items() if s.kind == "sale" and s.credit is None)
        rest.add_refund(sale)
        rest.settle(rest.open_orders()[0])
        rest.reserve(warehouse, sku, 2)
        world.add_register("200")
        retired = world.registers[1]
        world.retire_register(retired.registerid)
        for register in world.registers:  # a backend import: many in one second
            world.add_report(world.make_report(register, now - 600, now - 5))
        world.add_late_report(now - 400)
        world.journal.offline_burst(world.registers[2].registerid, 40, now - 5)
        sim.faults.queue("truncate", path="/orders.json")
        sim.faults.queue("html", path="/warehousetransactions", after=1)
        sim.faults.queue("429", path="/journal-entries", retry_after=0)
        sim.faults.queue("503", path="/products.json")
        sim.faults.queue("drop", path="/pos-z-reports")
        sim.faults.queue("truncate", path="/warehouseitems.json")
        tick(page_size=6)
        # The world goes quiet: everything commits; a snapshot and a sweep come due.
        rest.config.orders_per_request = 0
        rest.config.edits_per_request = 0
        rest.config.settles_per_request = 0
        rest.commit_all()
        world.advance_clock(2 * 3600 + 1)
        tick()

        orders = {r["orderid"]: r for r in _rows(target, "orders")}
        _once(list(orders.values()), ("orderid",))
        states = {i: (o["orderstateid"], o["paymentstateid"], o["ordertypeid"])
                  for i, o in rest.orders.items()}  # fmt: skip
        assert {i: (o["orderstateid"], o["paymentstateid"], o["ordertypeid"])
                for i, o in orders.items()} == states  # fmt: skip
        lines = _once(_rows(target, "orders", 1), ("orderid", "position"))
        assert len(lines) == sum(len(o["orderitems"]) for o in rest.orders.values())

        moves = _once(_rows(target, "warehouse_transactions"), ("warehousetransactionid",))
        assert moves == {(t["warehousetransactionid"],) for t in rest.stock.transactions}

        products = {r["productid"]: r for r in _rows(target, "products")}
        for productid, truth in rest.catalog.products.items():
            row = products[productid]
            assert (row["datemodified"], row["title"], row["missing_since"]) == (
                datetime.fromtimestamp(truth["datemodified"], UTC),
                truth["title"],
                None,
            )
        assert all(products[p]["missing_since"] for p in rest.catalog.deleted if p in products)

        items = {(r["warehouseid"], r["sku"]): r for r in _rows(target, "warehouse_items")}
        for (warehouseid, item_sku), item in rest.stock.items.items():
            body = item.body()
            row = items[(warehouseid, item_sku)]
            assert (str(row["decimaltotal"]), str(row["decimalreserved"])) == (
                body["decimaltotal"],
                body["decimalreserved"],
            )
        gone_rows = set(items) - set(rest.stock.items)
        assert all(items[k]["missing_since"] for k in gone_rows)

        reports = _once(_rows(target, "pos_z_reports"), ("registerid", "zreportid"))
        assert reports == world.valid_keys()
        entries = _once(_rows(target, "journal_entries"), ("registerid", "id"))
        assert entries == {(e["registerid"], e["id"]) for e in world.journal.all_entries()}
        registers_rows = {r["registerid"]: r for r in _rows(target, "cash_registers")}
        assert {r for r, row in registers_rows.items() if row["missing_since"]} == {
            retired.registerid
        }
        assert set(registers_rows) == {r.registerid for r in world.registers}
