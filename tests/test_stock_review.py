"""Stock levels and stock movements as a BI user relies on them: no change is lost to a
listing that shifted while it was read, and v_stock_levels says as of when each figure
was read."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from sitoo_sync.api.client import make_client
from sitoo_sync.settings import Settings
from sitoo_sync.simulator import SimConfig, Simulator
from sitoo_sync.simulator.rest_v2.config import RestConfig
from sitoo_sync.simulator.rest_v2.stock import MOVE_IN, SALES
from sitoo_sync.streams import STREAMS, select_streams
from sitoo_sync.streams.base import Stream
from sitoo_sync.streams.cursors import WindowContext
from sitoo_sync.streams.cursors_modified import ModifiedSince
from sitoo_sync.sync import run_once
from sitoo_sync.warehouse import open_warehouse
from sitoo_sync.warehouse.base import REJECTS
from tests.support import query, settings_for
from tests.targets import ALL_TARGETS, target_for, view_rows

T0 = 1_790_000_000  # the first tick
TICK = 900  # the schedule: 15 minutes


class ModifiedOrderStock:
    """One warehouse's stock served as an index on (datelastmodified) would serve it: in
    modification order, which the docs do not rule out (no sort is documented), with the
    inclusive `datelastmodifiedfrom` filter and start/num paging. `during[n]` runs before
    the n-th request is answered (a sale while the listing is read)."""

    def __init__(self, times: dict[str, int]) -> None:
        self.times = times
        self.levels = dict.fromkeys(times, 10)
        self.during: dict[int, Any] = {}
        self.requests = 0

    def sell(self, sku: str, at: int) -> None:
        """A sale moves the level and the row's datelastmodified."""
        self.levels[sku] -= 1
        self.times[sku] = at

    def __call__(self, params: Mapping[str, Any]) -> Any:
        self.requests += 1
        if self.requests in self.during:
            self.during[self.requests]()
        lo = params.get("datelastmodifiedfrom")
        rows = sorted((t, sku) for sku, t in self.times.items() if lo is None or t >= lo)
        start, num = int(params["start"]), int(params["num"])
        return {
            "totalcount": len(rows),
            "items": [
                {"sku": sku, "datelastmodified": t, "decimaltotal": f"{self.levels[sku]}.000"}
                for t, sku in rows[start : start + num]
            ],
        }


def _stock_cursor(page_size: int) -> ModifiedSince:
    cursor = STREAMS["warehouse_items"].cursor
    assert isinstance(cursor, ModifiedSince)
    return dataclasses.replace(cursor, page_size=page_size)


def test_a_sale_during_a_listing_in_modification_order_loses_no_other_change() -> None:
    """When the server lists stock in modification order and a row is sold while the
    modified feed is paged, that row moves to the end and the pages shift under the
    offset: the row the offset stepped over (changed since the last tick) still lands at
    the next tick, not at the next snapshot hours later."""
    strategy = _stock_cursor(page_size=2)
    server = ModifiedOrderStock({sku: T0 - 86400 for sku in "ABCDE"})
    levels: dict[str, str] = {}
    stored: str | None = None
    for n in range(3):
        if n == 1:
            for i, sku in enumerate("ABCD"):  # four sales since the first tick's snapshot
                server.sell(sku, T0 + 100 * (i + 1))
            # the feed lists E A | B C | D: A sells again before the second page is read
            server.during[server.requests + 2] = lambda: server.sell("A", T0 + TICK + 1)
        at = datetime.fromtimestamp(T0 + n * TICK, UTC)
        for window in strategy.windows(WindowContext(fetch_raw=server, now=at), stored):
            levels |= {r["sku"]: r["decimaltotal"] for r in window.records}
            stored = window.cursor
    assert levels == {sku: f"{level}.000" for sku, level in server.levels.items()}


def _tick(settings: Settings, streams: list[Stream], at: datetime) -> None:
    with make_client(settings, sleep=lambda _s: None) as client:
        report = run_once(
            settings,
            open_warehouse(settings.target_url, schema=settings.target_schema),
            client,
            streams,
            clock=lambda: at,
        )
    assert report.ok, [r.error for r in report.results if r.error]


def test_stock_paged_in_modification_order_while_it_sells_ends_up_right(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Against a simulator that lists stock in modification order, a warehouse whose every
    row moved in between two ticks, and one row of which sells while the next tick pages
    through them, holds every row's level as the simulator does a tick later (no row the
    pages shifted past waits for the snapshot, six hours on)."""
    now = datetime.fromtimestamp(T0, UTC)
    config = SimConfig(seed=5, days=2, malformed_every=0, now=T0)
    config.rest = RestConfig(stock_order="modified")
    with Simulator.create(config) as sim:
        settings = settings_for(sim, tmp_path / "w.duckdb", streams=["warehouse_items"])
        stream = STREAMS["warehouse_items"]
        streams = [dataclasses.replace(stream, cursor=_stock_cursor(page_size=10))]
        stock = sim.rest.stock
        wid = next(w["warehouseid"] for w in sim.rest.catalog.warehouses if not w["sellable"])
        rows = sorted(sku for (w, sku) in stock.items if w == wid)
        assert len(rows) > 20  # three pages
        _tick(settings, streams, now)
        sim.rest.advance(100)
        with sim.rest.lock:
            stock.transact(1, wid, MOVE_IN, [(sku, 2) for sku in rows], sim.rest.now)
        sim.rest.advance(TICK - 100)
        listed = stock.item_bodies
        requests: list[int] = []

        def sells_before_the_second_page(warehouseid: int) -> list[Any]:
            if warehouseid == wid:
                requests.append(warehouseid)
                if len(requests) == 2:  # the first page's first row sells
                    first = min(rows, key=lambda sku: stock.items[(wid, sku)].warehouseitemid)
                    stock.transact(1, wid, SALES, [(first, -1)], sim.rest.now)
            return listed(warehouseid)

        monkeypatch.setattr(stock, "item_bodies", sells_before_the_second_page)
        _tick(settings, streams, now + timedelta(seconds=TICK))
        sim.rest.advance(TICK)
        _tick(settings, streams, now + timedelta(seconds=2 * TICK))
        got = dict(
            query(
                settings, f"SELECT sku, decimaltotal FROM warehouse_items WHERE warehouseid = {wid}"
            )
        )
        assert got == {sku: Decimal(stock.items[(wid, sku)].total) for sku in rows}


def _utc(value: Any) -> datetime:
    """A timestamp as aware UTC (MySQL and SQLite views return naive UTC or text)."""
    at: datetime = datetime.fromisoformat(value) if isinstance(value, str) else value
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


@pytest.mark.parametrize("name", ALL_TARGETS)
def test_stock_levels_say_as_of_when_a_rows_reservation_was_read(name: str, tmp_path: Path) -> None:
    """A reservation moves no transaction, so the modified feed does not read its row again
    until the next full read: v_stock_levels gives that row the time it was last read
    (read_at), before the reservation, while synced_at, which on_hand is as of, moves on
    with every tick; a row a sale touched is read, and shows it, at once."""
    config = SimConfig(seed=5, days=2, malformed_every=0, now=T0)
    with Simulator.create(config) as sim, target_for(name, tmp_path) as target:
        settings = settings_for(sim, tmp_path / "unused.duckdb", **target.settings())
        streams = select_streams(["stores", "warehouses", "products", "warehouse_items"])
        _tick(settings, streams, datetime.fromtimestamp(T0, UTC))
        first = datetime.now(UTC)
        items = sim.rest.stock.items
        newest: dict[int, int] = {}
        for (warehouse, _sku), item in items.items():
            newest[warehouse] = max(newest.get(warehouse, 0), item.datelastmodified)
        # a row the feed does not read again: older than its warehouse's newest change
        wid, sku = min(
            sorted(items),
            key=lambda k: items[k].datelastmodified - newest[k[0]],
        )
        sim.rest.reserve(wid, sku, 3)
        sim.rest.advance(60)
        sold = sim.rest.add_orders(1)[0]
        sold_sku = sold["orderitems"][0]["sku"]
        sim.rest.advance(TICK - 60)
        _tick(settings, streams, datetime.fromtimestamp(T0 + TICK, UTC))
        rows = {
            (w, s): (Decimal(str(reserved)), _utc(synced), _utc(read))
            for w, s, reserved, synced, read in view_rows(
                target,
                "SELECT warehouseid, sku, reserved, synced_at, read_at FROM v_stock_levels",
            )
        }
    reserved, synced, read = rows[(wid, sku)]
    assert reserved == items[(wid, sku)].reserved - 3  # not read again yet
    assert read < first < synced
    _, synced, read = rows[(sold["warehouseid"], sold_sku)]
    assert first < read
    assert first < synced


def test_a_row_changed_in_the_cursors_second_lands_if_the_bound_is_exclusive() -> None:
    """With no overlap, a stock row changed in the very second the cursor holds, after the
    tick that read that second, lands at the next tick though `datelastmodifiedfrom` turns
    out to be exclusive (the docs do not say): the bound is asked one second early."""
    stream = STREAMS["warehouse_items"].configured({"warehouse_items": {"overlap_seconds": 0}})
    strategy = stream.cursor
    assert isinstance(strategy, ModifiedSince)
    times = {"A": T0 - 3600, "B": T0 - 7200}
    levels = {"A": 5, "B": 5}

    def exclusive(params: Mapping[str, Any]) -> Any:
        lo = params.get("datelastmodifiedfrom")
        rows = [s for s in sorted(times) if lo is None or times[s] > lo]
        items = [
            {"sku": s, "datelastmodified": times[s], "decimaltotal": f"{levels[s]}.000"}
            for s in rows
        ]
        return {"totalcount": len(items), "items": items}

    loaded: dict[str, str] = {}
    stored: str | None = None
    for n in range(2):
        if n == 1:  # B sells in A's second, after the first tick read it
            times["B"], levels["B"] = times["A"], 4
        at = datetime.fromtimestamp(T0 + n * TICK, UTC)
        for window in strategy.windows(WindowContext(fetch_raw=exclusive, now=at), stored):
            loaded |= {r["sku"]: r["decimaltotal"] for r in window.records}
            stored = window.cursor
    assert loaded == {"A": "5.000", "B": "4.000"}


@pytest.mark.parametrize("name", ALL_TARGETS)
def test_a_sku_longer_than_a_key_column_holds_is_a_reject_not_a_stuck_warehouse(
    name: str, tmp_path: Path
) -> None:
    """A stock row whose SKU is longer than the 255 characters every target's key column
    holds is rejected with its reason, and its warehouse's other rows still load (on
    PostgreSQL and MySQL the load used to fail every tick); a key of exactly 255
    characters, multi-byte ones included, loads as it is."""
    config = SimConfig(seed=5, days=2, malformed_every=0, now=T0)
    with Simulator.create(config) as sim, target_for(name, tmp_path) as target:
        settings = settings_for(sim, tmp_path / "unused.duckdb", **target.settings())
        streams = select_streams(["warehouses", "warehouse_items"])
        items = sim.rest.stock.items
        (wid, sku), item = next(iter(sorted(items.items())))
        longest, too_long = "å" * 255, "x" * 256
        for new in (longest, too_long):
            items[(wid, new)] = dataclasses.replace(item, sku=new, warehouseitemid=10**6 + len(new))
        _tick(settings, streams, datetime.fromtimestamp(T0, UTC))
        stored = {r[2] for r in target.rows(STREAMS["warehouse_items"].tables[0])}
        rejects = target.rows(REJECTS)
    assert longest in stored
    assert sku in stored
    assert too_long not in stored
    assert [r[3] for r in rejects] == ["sku: key field longer than 255 characters (256)"]
