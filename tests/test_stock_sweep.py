"""Stock rows Sitoo stops listing (a deleted product's, a removed row's): the sku sweep of
warehouse_items marks them missing_since, v_stock_levels leaves them out of stock totals,
a row listed again is unmarked, and a sweep that did not run to its end marks nothing.

One story per target, through real ticks against the simulator: the first tick meets a
warehouse_items table an older version made (no missing_since column), a product with stock
is deleted and two more rows are removed, the sweep after them fails half way, the next one
runs, then the rows come back.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from sitoo_sync.api.client import make_client
from sitoo_sync.settings import Settings
from sitoo_sync.simulator import SimConfig, Simulator
from sitoo_sync.simulator.rest_v2 import totals
from sitoo_sync.simulator.rest_v2.query import RestError
from sitoo_sync.simulator.rest_v2.routes import serve as serve_rest_v2
from sitoo_sync.simulator.rest_v2.stock import MOVE_IN
from sitoo_sync.streams import STREAMS, select_streams
from sitoo_sync.streams.base import Stream
from sitoo_sync.streams.cursors_modified import ModifiedSince, parse_state
from sitoo_sync.sync import RunReport, run_once
from sitoo_sync.warehouse import open_warehouse
from tests.support import settings_for
from tests.targets import Target, grouped_targets, target_for, view_rows

T0 = 1_790_000_000
STREAMS_USED = ["stores", "warehouses", "products", "warehouse_items"]
Key = tuple[int, int, str]  # (site_id, warehouseid, sku)


def _sweep_hours() -> int:
    cursor = STREAMS["warehouse_items"].cursor
    assert isinstance(cursor, ModifiedSince)
    return cursor.sweep_hours


SWEEP = timedelta(hours=_sweep_hours())


def _at(seconds: float) -> datetime:
    return datetime.fromtimestamp(T0, UTC) + timedelta(seconds=seconds)


def _utc(value: Any) -> datetime | None:
    """A timestamp as aware UTC (MySQL and SQLite return naive UTC or text); None stays."""
    if value is None:
        return None
    at: datetime = datetime.fromisoformat(value) if isinstance(value, str) else value
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


@dataclass
class Seen:
    """What the target held after one tick."""

    report: RunReport
    missing: dict[Key, datetime | None]  # every warehouse_items row's missing_since
    view_keys: set[Key]
    view_value: dict[tuple[str, str], Decimal]  # stock_value summed per (store, currency)
    truth: dict[tuple[str, str], Decimal]  # the simulator's stock value, as served now
    swept_at: dict[str, int | None] = field(default_factory=dict)  # per partition


@dataclass
class Story:
    """The ticks of one target, by name, and the rows the story took away."""

    target: Target
    deleted: set[Key]  # the deleted product's rows
    removed: Key  # a row removed, then listed again unchanged
    moved: Key  # a row removed, then brought back by a Move In
    ticks: dict[str, Seen]


def _seen(target: Target, sim: Simulator, report: RunReport) -> Seen:
    stock = f"{target.schema}.warehouse_items" if target.schema else "warehouse_items"
    missing = {
        (int(s), int(w), str(k)): _utc(m)
        for s, w, k, m in view_rows(
            target, f"SELECT site_id, warehouseid, sku, missing_since FROM {stock}"
        )
    }
    value: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    keys: set[Key] = set()
    for site, wid, sku, store, currency, stock_value in view_rows(
        target,
        "SELECT site_id, warehouseid, sku, store_id, currencycode, stock_value FROM v_stock_levels",
    ):
        keys.add((int(site), int(wid), str(sku)))
        value[(store, currency)] += Decimal(str(stock_value))
    truth = {
        (store or "NO_STORE", currency): Decimal(v)
        for (store, currency), v in totals.stock_value_by_store(sim.rest).items()
    }
    warehouse = open_warehouse(target.url, schema=target.schema)
    try:
        swept = {
            s.partition: parse_state(s.cursor).swept_at
            for s in warehouse.states()
            if s.stream == "warehouse_items"
        }
    finally:
        warehouse.close()
    return Seen(report, missing, keys, dict(value), truth, swept)


def _paged_by_ten(stream: Stream) -> Stream:
    """`stream`, stock paged by 10."""
    cursor = stream.cursor
    if stream.name != "warehouse_items":
        return stream
    assert isinstance(cursor, ModifiedSince)
    return dataclasses.replace(stream, cursor=dataclasses.replace(cursor, page_size=10))


def _tick(settings: Settings, at: datetime) -> RunReport:
    """One tick of the story's streams at `at`; stock paged by 10, so a sweep of a
    warehouse takes several pages."""
    streams = [_paged_by_ten(s) for s in select_streams(STREAMS_USED, settings.stream_options)]
    with make_client(settings, sleep=lambda _s: None) as client:
        return run_once(
            settings,
            open_warehouse(settings.target_url, schema=settings.target_schema),
            client,
            streams,
            clock=lambda: at,
        )


def _old_stock_table(target: Target) -> None:
    """warehouse_items as a version without the sweep made it: no missing_since column."""
    parent = STREAMS["warehouse_items"].parent
    old = dataclasses.replace(
        parent, columns=tuple(c for c in parent.columns if c.name != "missing_since")
    )
    warehouse = open_warehouse(target.url, schema=target.schema)
    try:
        warehouse.ensure_schema([old])
    finally:
        warehouse.close()


def _fail_sweeps_after_their_first_page() -> Any:
    """A `serve_rest_v2` whose sku sweeps of stock fail from their second page on (503, for
    every retry), which ends the partition half way through its sweep as a crash would."""

    def failing(rest: Any, path: str, query: Mapping[str, list[str]]) -> Any:
        if (
            "warehouseitems" in path
            and query.get("fields") == ["sku"]
            and query.get("start", ["0"]) != ["0"]
        ):
            raise RestError(503, "Service Unavailable")
        return serve_rest_v2(rest, path, query)

    return failing


def _victim(sim: Simulator) -> int:
    """A live site-1 product with stock on hand, in no open order (settling one would move
    its stock again)."""
    rest = sim.rest
    open_skus = {ln.product["sku"] for i in rest.open_orders() for ln in rest.specs[i].lines}
    for product in rest.catalog.site_products(1, include_inactive=True):
        sku = product["sku"]
        rows = [i for (_w, s), i in rest.stock.items.items() if s == sku]
        if sku not in open_skus and any(i.total > 0 and i.cost > 0 for i in rows):
            return int(product["productid"])
    raise AssertionError("no product to delete")


def _two_rows(sim: Simulator) -> tuple[tuple[int, str], tuple[int, str]]:
    """Two site-1 rows with stock on hand in two warehouses: the first older than its
    warehouse's newest change by the most (no modified feed reads it again, the overlap
    included), the second any other."""
    rest = sim.rest
    site1 = {w["warehouseid"] for w in rest.catalog.warehouses if w["eshopid"] == 1}
    items = {k: i for k, i in rest.stock.items.items() if k[0] in site1 and i.total > 0}
    newest: dict[int, int] = {}
    for (wid, _sku), item in items.items():
        newest[wid] = max(newest.get(wid, 0), item.datelastmodified)
    first = min(sorted(items), key=lambda k: items[k].datelastmodified - newest[k[0]])
    overlap = STREAMS["warehouse_items"].cursor.overlap_seconds  # type: ignore[attr-defined]
    assert items[first].datelastmodified < newest[first[0]] - overlap
    return first, next(k for k in sorted(items) if k[0] != first[0])


def _play(target: Target, tmp_path: Path) -> Story:
    config = SimConfig(seed=5, days=2, malformed_every=0, now=T0)
    with Simulator.create(config) as sim:
        # No snapshots after the first tick: only the sweep can see a row that went or
        # came back unchanged.
        settings = settings_for(
            sim,
            tmp_path / "unused.duckdb",
            **target.settings(),
            stream_options={"warehouse_items": {"snapshot_hours": 0}},
        )
        _old_stock_table(target)
        rest, ticks = sim.rest, {}
        ticks["first"] = _seen(target, sim, _tick(settings, _at(0)))

        rest.advance(60)
        victim = _victim(sim)
        sku = rest.catalog.products[victim]["sku"]
        deleted = {(1, w, s) for (w, s) in rest.stock.items if s == sku}
        rest.delete_product(victim)
        (w1, s1), (w2, s2) = _two_rows(sim)
        assert rest.remove_item(w1, s1)
        assert rest.remove_item(w2, s2)
        removed, moved = (1, w1, s1), (1, w2, s2)

        rest.advance(int(SWEEP.total_seconds()) - 120)
        ticks["before"] = _seen(target, sim, _tick(settings, _at(SWEEP.total_seconds() - 60)))

        rest.advance(60)
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(
                "sitoo_sync.simulator.server.serve_rest_v2", _fail_sweeps_after_their_first_page()
            )
            ticks["crashed"] = _seen(target, sim, _tick(settings, _at(SWEEP.total_seconds())))

        rest.advance(900)
        ticks["swept"] = _seen(target, sim, _tick(settings, _at(SWEEP.total_seconds() + 900)))

        rest.advance(900)
        with rest.lock:  # listed again as it was: its datelastmodified is old
            rest.stock.items[(w1, s1)] = rest.stock.removed.pop((w1, s1))
            rest.stock.transact(1, w2, MOVE_IN, [(s2, 3)], rest.now)  # comes back moved
        ticks["moved"] = _seen(target, sim, _tick(settings, _at(SWEEP.total_seconds() + 1800)))

        rest.advance(int(SWEEP.total_seconds()))
        again = _at(2 * SWEEP.total_seconds() + 1800)
        ticks["listed again"] = _seen(target, sim, _tick(settings, again))
    return Story(target, deleted, removed, moved, ticks)


@pytest.fixture(scope="module", params=grouped_targets("stock-sweep"))
def story(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Story]:
    """The story played on one target."""
    tmp_path = tmp_path_factory.mktemp(request.param)
    with target_for(request.param, tmp_path) as target:
        yield _play(target, tmp_path)


def test_a_removed_stock_row_gets_missing_since_at_the_sweep_and_leaves_the_totals(
    story: Story,
) -> None:
    """Rows Sitoo stopped listing (a deleted product's in every warehouse, a removed row)
    keep missing_since NULL, and overstate v_stock_levels, until the sku sweep is due; the
    sweep marks exactly them, they stay in warehouse_items, and v_stock_levels' stock value
    per store is the simulator's again, on a table an older version made without the
    column."""
    gone = {*story.deleted, story.removed, story.moved}
    first, before, swept = (story.ticks[n] for n in ("first", "before", "swept"))
    assert all(t.report.ok for t in (first, before, swept))
    assert first.view_value == first.truth
    assert all(m is None for m in before.missing.values())
    assert gone <= before.view_keys
    assert before.view_value != before.truth  # the stale rows overstate the stock
    marked = {k: m for k, m in swept.missing.items() if m is not None}
    assert marked == dict.fromkeys(gone, _at(SWEEP.total_seconds() + 900))
    assert set(swept.missing) == set(first.missing)  # kept
    assert not gone & swept.view_keys
    assert swept.view_keys == {k for k, m in swept.missing.items() if m is None}
    assert swept.view_value == swept.truth


def test_a_sweep_that_failed_half_way_marks_nothing(story: Story) -> None:
    """A sweep that did not run to its end (its second pages failed) marks no row, though
    the rows are gone, and does not count as a sweep: the next tick sweeps, and marks."""
    crashed, first = story.ticks["crashed"], story.ticks["first"]
    assert not crashed.report.ok
    assert all(m is None for m in crashed.missing.values())
    failed = {r.partition for r in crashed.report.results if r.error}
    assert failed  # warehouses of more than one sweep page
    assert all(crashed.swept_at[p] == first.swept_at[p] for p in failed)
    assert story.ticks["swept"].missing[story.removed] is not None


def test_a_row_listed_again_loses_its_mark(story: Story) -> None:
    """A removed row a transaction brings back is unmarked by the next tick's modified
    feed; one listed again unchanged (its datelastmodified old, so no feed reads it) by the
    next sweep; both are back in v_stock_levels, whose totals are the simulator's."""
    moved, again = story.ticks["moved"], story.ticks["listed again"]
    assert moved.missing[story.moved] is None
    assert story.moved in moved.view_keys
    assert moved.missing[story.removed] is not None  # no sweep yet
    assert again.missing[story.removed] is None
    assert story.removed in again.view_keys
    assert all(again.missing[k] is not None for k in story.deleted)
    assert again.view_value == again.truth


def test_a_sweep_costs_one_request_series_per_warehouse_every_sweep_hours(
    tmp_path: Path,
) -> None:
    """The sku sweep asks `fields=sku`, a page per 100 rows of each warehouse, only in
    ticks where it is due (the first, then every sweep_hours): between them a tick of the
    stock stream makes no sweep request."""
    config = SimConfig(seed=5, days=2, malformed_every=0, now=T0)
    with Simulator.create(config) as sim:
        settings = settings_for(sim, tmp_path / "w.duckdb", streams=["warehouse_items"])
        warehouses = len(sim.rest.catalog.warehouses)

        def sweeps(at: datetime) -> int:
            before = len(sim.log)
            stream = [STREAMS["warehouse_items"]]
            with make_client(settings, sleep=lambda _s: None) as client:
                report = run_once(settings, open_warehouse(settings.target_url), client, stream,
                                  clock=lambda: at)  # fmt: skip
            assert report.ok
            return sum(
                1 for path, q in sim.log[before:] if "warehouseitems" in path and "fields" in q
            )

        assert sweeps(_at(0)) == warehouses  # fewer than 100 rows each: one page
        assert sweeps(_at(900)) == 0
        assert sweeps(_at(SWEEP.total_seconds())) == warehouses
        assert [q["fields"] for _p, q in sim.log if "fields" in q] == ["sku"] * 2 * warehouses


def test_the_simulator_drops_a_deleted_products_stock_rows_and_brings_a_row_back() -> None:
    """In the simulator a deleted product's stock rows leave every listing of its site's
    warehouses (the sku-only pages a sweep asks for too) and the stock value it states;
    a transaction on a removed row's sku lists the row again, same id, level moved."""
    config = SimConfig(seed=5, days=2, malformed_every=0, now=T0)
    with (
        Simulator.create(config) as sim,
        httpx.Client(auth=(sim.api_id, sim.password), base_url=sim.v2_url) as api,
    ):

        def listed(wid: int, **params: Any) -> dict[str, Any]:
            path = f"/sites/1/warehouses/{wid}/warehouseitems.json"
            answer = api.get(path, params={"num": 1000, **params})
            assert answer.status_code == 200
            return {i["sku"]: i for i in answer.json()["items"]}

        victim = _victim(sim)
        sku = sim.rest.catalog.products[victim]["sku"]
        wids = sorted({w for (w, s) in sim.rest.stock.items if s == sku})
        before = {w: listed(w)[sku] for w in wids}
        value = totals.stock_value_by_store(sim.rest)
        sim.rest.delete_product(victim)
        assert all(sku not in listed(w) and sku not in listed(w, fields="sku") for w in wids)
        assert all(set(r) == {"sku"} for w in wids for r in listed(w, fields="sku").values())
        assert totals.stock_value_by_store(sim.rest) != value
        with sim.rest.lock:
            sim.rest.stock.transact(1, wids[0], MOVE_IN, [(sku, 2)], sim.rest.now)
        back = listed(wids[0])[sku]
        assert back["warehouseitemid"] == before[wids[0]]["warehouseitemid"]
        assert Decimal(back["decimaltotal"]) == Decimal(before[wids[0]]["decimaltotal"]) + 2
