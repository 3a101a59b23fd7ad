"""Adversarial review of the REST v2 catalogue streams: what a BI user would hit, end to end."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from sitoo_sync.api.client import make_client
from sitoo_sync.normalize import pos_payment_types
from sitoo_sync.normalize.personal import PersonalData
from sitoo_sync.settings import Settings
from sitoo_sync.streams import STREAMS
from sitoo_sync.sync import RunReport, run_once
from sitoo_sync.warehouse import open_warehouse
from tests.support import query

NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
#: What a per-site listing answers to (its records, a request's query parameters).
Answer = Callable[[list[dict[str, Any]], Mapping[str, str]], Any]


def _settings(db: Path, stream: str) -> Settings:
    return Settings(
        api_id="1500-1",
        api_password=SecretStr("pw"),
        site_ids=[1],
        target_url=f"duckdb:///{db}",
        streams=[stream],
        http_max_attempts=2,
        http_backoff_base_seconds=0.0,
        http_backoff_max_seconds=0.0,
    )


def _records(stream: str, count: int) -> list[dict[str, Any]]:
    """`count` minimal vendor-shaped records of the stream's listing."""
    if stream == "stores":
        return [{"storeid": i, "eshopid": 1, "name": f"Store {i}"} for i in range(1, count + 1)]
    if stream == "categories":
        return [{"categoryid": i, "title": f"Category {i}"} for i in range(1, count + 1)]
    assert stream == "users"
    return [{"userid": f"{{U-{i:04d}}}", "role": 10} for i in range(1, count + 1)]


def _tick(db: Path, stream: str, records: list[dict[str, Any]], answer: Answer) -> RunReport:
    """One tick of `stream` for site 1, its listing answered by `answer`; a listing asked
    more than 50 times fails (a listing that would never end)."""
    path = STREAMS[stream].path.format(siteid=1)
    asked = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal asked
        if request.url.path.endswith(path):
            asked += 1
            if asked > 50:
                return httpx.Response(400, json={"statuscode": 400, "errortext": "asked forever"})
            return httpx.Response(200, json=answer(records, dict(request.url.params)))
        return httpx.Response(404, json={"statuscode": 404, "errortext": "not here"})

    settings = _settings(db, stream)
    with make_client(settings, httpx.MockTransport(handler), sleep=lambda _s: None) as client:
        return run_once(
            settings,
            open_warehouse(settings.target_url),
            client,
            [STREAMS[stream]],
            clock=lambda: NOW,
        )


def _page(records: list[dict[str, Any]], params: Mapping[str, str]) -> list[dict[str, Any]]:
    """The page start/num ask for (num defaults to 10, as the vendor's does)."""
    start, num = int(params.get("start", 0)), int(params.get("num", 10))
    return records[start : start + num]


def _bare_paged(records: list[dict[str, Any]], params: Mapping[str, str]) -> Any:
    return _page(records, params)


def _bare_capped_at_ten(records: list[dict[str, Any]], params: Mapping[str, str]) -> Any:
    return _page(records, {**params, "num": str(min(10, int(params.get("num", 10))))})


def _bare_unpaged(records: list[dict[str, Any]], params: Mapping[str, str]) -> Any:
    return records


def _no_total_unpaged(records: list[dict[str, Any]], params: Mapping[str, str]) -> Any:
    return {"items": records}


def _digit_total(records: list[dict[str, Any]], params: Mapping[str, str]) -> Any:
    return {"totalcount": str(len(records)), "items": _page(records, params)}


ANSWERS = {
    "bare array, paged": _bare_paged,
    "bare array, 10 a page whatever num says": _bare_capped_at_ten,
    "bare array, start ignored": _bare_unpaged,
    "envelope without totalcount, start ignored": _no_total_unpaged,
    "totalcount as digits": _digit_total,
}


@pytest.mark.parametrize("stream", ["stores", "categories", "users"])
@pytest.mark.parametrize("shape", list(ANSWERS))
def test_a_listing_in_any_shape_the_contract_allows_loads_every_record_once(
    tmp_path: Path, stream: str, shape: str
) -> None:
    """A full listing answered as a bare array (paged, paged by 10, or not paged at all), as
    an envelope without a totalcount, or with the count as digits, loads all of its records,
    marks none missing, and ends: a bare array is not taken for the whole listing when it
    is only its first page."""
    db = tmp_path / "w.duckdb"
    records = _records(stream, 150)
    report = _tick(db, stream, records, ANSWERS[shape])
    assert report.ok, [r.error for r in report.results if r.error]
    settings = _settings(db, stream)
    table = STREAMS[stream].parent.name
    counts = query(settings, f"SELECT count(*), count(missing_since) FROM {table}")
    assert counts == [(150, 0)]


def test_a_payment_method_code_sent_as_digits_gets_its_name() -> None:
    """A paymentmethodid sent as a digit string, which the integer column reads as its
    code, is spelled out under that code's name, not left NULL beside it."""
    record = {"paymenttypeid": 1, "paymentmethodid": "710", "name": "Swish"}
    context = {"partition": "1", "now": NOW, "personal_data": PersonalData()}
    window = pos_payment_types.normalize_window([record], context)
    assert not window.rejects
    (row,) = window.tables["pos_payment_types"].to_pylist()
    assert (row["paymentmethodid"], row["paymentmethod_name"]) == (710, "Swish")


def test_a_listed_store_whose_new_version_is_rejected_is_not_marked_missing(
    tmp_path: Path,
) -> None:
    """A store the listing still shows, whose changed record is now rejected (a malformed
    field), keeps its stored row un-marked: it is listed, not gone."""
    db = tmp_path / "w.duckdb"
    records = _records("stores", 3)
    assert _tick(db, "stores", records, _digit_total).ok
    records[1] = {**records[1], "storetype": "not a number"}
    _tick(db, "stores", records, _digit_total)
    rows = query(
        _settings(db, "stores"), "SELECT storeid FROM stores WHERE missing_since IS NOT NULL"
    )
    assert rows == []


def _sites(count: int) -> list[dict[str, Any]]:
    return [{"eshopid": i, "siteurl": f"https://s{i}.example"} for i in range(1, count + 1)]


def test_a_site_listing_short_of_its_totalcount_marks_no_site_missing(tmp_path: Path) -> None:
    """A /sites.json answer whose items fall short of its own totalcount (an account with
    more sites than one page shows) loads what it shows and marks none of the others
    missing: the listing says itself that it is incomplete, and its partition fails saying so."""
    db = tmp_path / "w.duckdb"
    every = _sites(15)
    assert _tick(db, "sites", every, lambda r, p: {"totalcount": len(r), "items": r}).ok
    short = _tick(db, "sites", every, lambda r, p: {"totalcount": len(r), "items": r[:10]})
    assert ["totalcount" in (r.error or "") for r in short.results] == [True]
    rows = query(_settings(db, "sites"), "SELECT count(*), count(missing_since) FROM sites")
    assert rows == [(15, 0)]


def test_a_listing_that_ignores_start_short_of_its_totalcount_marks_nothing_missing(
    tmp_path: Path,
) -> None:
    """A store listing that answers the same first page whatever `start` asks, with a
    totalcount beyond it, marks none of the stores it never showed missing, and fails."""
    db = tmp_path / "w.duckdb"
    records = _records("stores", 150)
    assert _tick(db, "stores", records, _digit_total).ok
    short = _tick(db, "stores", records, lambda r, p: {"totalcount": len(r), "items": r[:100]})
    assert ["totalcount" in (r.error or "") for r in short.results] == [True]
    rows = query(_settings(db, "stores"), "SELECT count(*), count(missing_since) FROM stores")
    assert rows == [(150, 0)]
