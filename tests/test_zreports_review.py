"""Adversarial review of the POS and store z-report streams: what a finance user would hit."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import httpx

from sitoo_sync.api.client import Api, SitooClient, make_client
from sitoo_sync.normalize.pos_z_reports import normalize_window
from sitoo_sync.partition import _split_values_from
from sitoo_sync.settings import Settings
from sitoo_sync.simulator import Simulator
from sitoo_sync.streams import STREAMS, select_streams
from sitoo_sync.streams.base import TickSources
from sitoo_sync.streams.cursors import DayWindows, TimeWindows, WindowContext
from sitoo_sync.streams.site_zones import Remembered, read_site_zones
from sitoo_sync.sync import RunReport, run_once
from sitoo_sync.warehouse import open_warehouse
from tests.support import query, settings_for, vendor_example

# ---- tolerant reader: a report number sent as digits --------------------------------


def test_a_zreportid_sent_as_digits_loads_under_its_number() -> None:
    """A POS z-report whose zreportid comes as a digit string ("2") loads as z-report 2, as
    every other integer of the report would, instead of going to rejects (the cursor moves
    past it either way, so a rejected one never loads)."""
    record = vendor_example()
    record["zreportid"] = "2"
    window = normalize_window([record], {})
    assert window.rejects == []
    rows = window.tables["pos_z_reports"].to_pylist()
    assert [(r["registerid"], r["zreportid"]) for r in rows] == [(record["registerid"], 2)]
    vat = window.tables["pos_z_report_vat_groups"].to_pylist()
    assert {r["zreportid"] for r in vat} == {2}


def test_a_zreportid_that_is_no_number_is_still_rejected() -> None:
    """Tolerance stops at digits: a zreportid that names no integer rejects the report."""
    record = vendor_example()
    record["zreportid"] = "Z2"
    window = normalize_window([record], {})
    assert [r.reason for r in window.rejects] == [
        "zreportid: missing or non-integer key field: 'Z2'"
    ]


# ---- a crowded second and SITOO_SITE_IDS --------------------------------------------


class SiteTwoLast(httpx.BaseTransport):
    """The simulator, except that a `/pos-z-reports` page not filtered by register puts,
    within each second, site 2's reports after site 1's before it is capped: which of a
    crowded second's reports fill the page is left open by the contract. The page is the
    first `cap` of both sites' answers (each the first `cap` of its own), merged."""

    def __init__(self, cap: int = 500, *, refused: str | None = None) -> None:
        self.inner = httpx.HTTPTransport()
        self.cap = cap
        self.refused = refused  # a path these credentials may not read (403)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if self.refused and request.url.path.endswith(self.refused):
            return httpx.Response(403, json={"statuscode": 403, "errortext": "Forbidden"})
        if not request.url.path.endswith("/pos-z-reports") or "registerid" in request.url.params:
            return self.inner.handle_request(request)
        merged: list[Any] = []
        for site in (1, 2):
            url = request.url.copy_add_param("eshopid", str(site))
            response = self.inner.handle_request(httpx.Request("GET", url, headers=request.headers))
            merged += json.loads(response.read())
            response.close()
        merged.sort(key=lambda r: (r["dateadded"], r["eshopid"] == 2))
        return httpx.Response(200, json=merged[: self.cap])

    def close(self) -> None:
        self.inner.close()


def _tick(settings: Settings, transport: httpx.BaseTransport) -> RunReport:
    client: SitooClient = make_client(settings, transport, sleep=lambda _s: None)
    with client:
        return run_once(
            settings,
            open_warehouse(settings.target_url),
            client,
            select_streams(settings.streams),
            clock=lambda: datetime.now(UTC),
        )


def test_a_crowded_second_loses_no_report_of_a_site_outside_site_ids(
    sim: Simulator, tmp_path: Path
) -> None:
    """`/pos-z-reports` is read account-wide, so a second too crowded for one page is split
    by every register of the account: with SITOO_SITE_IDS naming site 1 only, the reports
    a site-2 register uploaded in that second, none on the first page, still load."""
    settings = settings_for(sim, tmp_path / "w.duckdb", streams=["pos_z_reports"], site_ids=[1])
    transport = SiteTwoLast()
    assert _tick(settings, transport).ok
    world = sim.world
    at = world.advance_clock(30)
    site1 = [r for r in world.registers if r.eshopid == 1]
    oslo = next(r for r in world.registers if r.eshopid == 2)
    with world.lock:
        for i in range(600):  # a bulk import: more than a page in one second
            world.add_report(world.make_report(site1[i % len(site1)], at - 600, at))
        offline = [world.add_report(world.make_report(oslo, at - 600, at)) for _ in range(3)]
    report = _tick(settings, transport)
    assert report.ok, report.results
    keys = set(query(settings, "SELECT registerid, zreportid FROM pos_z_reports"))
    assert {(r.body["registerid"], r.body["zreportid"]) for r in offline} <= keys
    assert keys == world.valid_keys()


def test_a_site_outside_site_ids_that_refuses_its_registers_does_not_fail_the_split(
    sim: Simulator, tmp_path: Path
) -> None:
    """Credentials that may not list another site's registers (403) split a crowded second
    by the registers they can list: the tick is ok and the configured site's reports load."""
    settings = settings_for(sim, tmp_path / "w.duckdb", streams=["pos_z_reports"], site_ids=[1])
    transport = SiteTwoLast(refused="/sites/2/cashregisters.json")
    assert _tick(settings, transport).ok
    world = sim.world
    at = world.advance_clock(30)
    site1 = [r for r in world.registers if r.eshopid == 1]
    with world.lock:
        burst = [
            world.add_report(world.make_report(site1[i % len(site1)], at - 600, at))
            for i in range(600)
        ]
    report = _tick(settings, transport)
    assert report.ok, report.results
    keys = set(query(settings, "SELECT registerid, zreportid FROM pos_z_reports"))
    assert {(r.body["registerid"], r.body["zreportid"]) for r in burst} <= keys


# ---- the strategies' own tolerance (streams/cursors.py) ------------------------------

TIMES = TimeWindows(
    field="dateadded", lo_param="from", hi_param="to", cap=5, split_param="registerid"
)


def _endpoint(records: list[dict[str, Any]], limit: int = 200) -> Any:
    """A capped, ascending endpoint over `records` that gives up after `limit` requests."""
    asked: list[Mapping[str, str | int]] = []

    def fetch(params: Mapping[str, str | int]) -> list[Any]:
        asked.append(dict(params))
        if len(asked) > limit:
            raise RuntimeError(f"still reading after {limit} requests")
        lo, hi = int(params["from"]), int(params.get("to", 2**62))
        rows = [
            r
            for r in records
            if lo <= r["dateadded"] <= hi
            and params.get("registerid", r["registerid"]) == r["registerid"]
        ]
        return sorted(rows, key=lambda r: r["dateadded"])[: TIMES.cap]

    return fetch


def test_a_full_page_stamped_in_milliseconds_ends_the_tick() -> None:
    """A page full of reports stamped in milliseconds (sorted after every real second)
    ends the walk: they are rejects, and no second-by-second split runs up to them."""
    records = [{"registerid": "A", "zreportid": i, "dateadded": 100 + i} for i in range(3)]
    records += [
        {"registerid": "B", "zreportid": 10 + i, "dateadded": 1_700_000_000_000 + i}
        for i in range(6)
    ]
    ctx = WindowContext(
        fetch=_endpoint(records), key=("registerid", "zreportid"),
        split_values=lambda _f, _p: ["A", "B"],
    )  # fmt: skip
    windows = list(TIMES.windows(ctx, None))
    assert windows[-1].cursor == "103"  # past the real seconds, not into milliseconds


def test_a_report_whose_registerid_is_a_list_is_a_reject_not_a_crash() -> None:
    """A malformed registerid (a JSON list) on a full page reaches the normalizer, which
    rejects it, instead of raising TypeError out of the tick."""
    records = [{"registerid": "A", "zreportid": i, "dateadded": 100 + i // 3} for i in range(5)]
    records[-1]["registerid"] = ["A"]
    records.append({"registerid": "A", "zreportid": 99, "dateadded": 200})
    ctx = WindowContext(fetch=_endpoint(records), key=("registerid", "zreportid"))
    windows = list(TIMES.windows(ctx, None))
    assert windows[-1].cursor == "200"


def test_an_aggregation_hour_sent_as_digits_is_read() -> None:
    """`hour_of_day: "22"` (digits, as the tolerant reader takes every integer) schedules
    the days as 22 does, instead of failing the store z-reports every tick."""
    config = {"aggregation_active": True, "hour_of_day": "22", "time_zone": "Europe/Stockholm"}
    strategy = DayWindows(param="day", config_path="/store-z-reports/config")
    now = datetime(2026, 11, 21, 12, tzinfo=UTC)
    ctx = WindowContext(get=lambda _p: config, now=now)
    as_int = WindowContext(get=lambda _p: {**config, "hour_of_day": 22}, now=now)
    assert strategy.schedule(ctx) == strategy.schedule(as_int)


def test_a_site_listed_with_its_eshopid_as_digits_has_its_zone_read() -> None:
    """`/sites.json` listing `"eshopid": "2"` (digits, as the engine's own listing of the
    sites reads it) still has site 2's zone read, so a z-report of a register whose journal
    names no zone is dated in its site's zone, not the account's."""

    def get(_api: Api, path: str) -> Any:
        if path == "/sites.json":
            return {"totalcount": 1, "items": [{"eshopid": "2"}]}
        if path == "/sites/2/settings.json":
            return {"timezone": "Europe/London"}
        raise AssertionError(path)

    sources = TickSources(latest=lambda *_a: {}, get=get, now=datetime.now(UTC))
    zones = read_site_zones(sources, "pos_z_reports", wait="w", no_zone="n", cache=Remembered())
    assert dict(zones.zones) == {"2": "Europe/London"}


def test_a_crowded_page_is_split_by_its_text_values_only() -> None:
    """The values a crowded second is split by are the page's text ones: a number or a
    list there (a malformed report, which the normalizer rejects) would make the split's
    `sorted` raise and fail the tick."""
    stream = dataclasses.replace(STREAMS["pos_z_reports"], split_by=None)
    values = _split_values_from(cast(Any, None), cast(Any, None), stream)
    page = [{"registerid": "A"}, {"registerid": 7}, {"registerid": ["B"]}, {"registerid": ""}]
    assert sorted(values("registerid", page)) == ["A"]
