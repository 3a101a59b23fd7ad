"""Money and time at their edges: hostile but contract-plausible values through the real
normalizers and into every target, read back exactly, or rejected with a reason.

Every page is parsed as the client parses it (JSON numbers with a fraction or an exponent
as exact Decimals, journal pages into their typed records), so `1e999999999` reaches the
converters as the Decimal a live page would give.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from sitoo_sync.api.client import _decode_json
from sitoo_sync.commit import load_window
from sitoo_sync.errors import RecordRejected
from sitoo_sync.normalize.personal import PersonalData
from sitoo_sync.normalize.records import NormalizedWindow
from sitoo_sync.normalize.values import to_decimal, to_int, to_money, to_timestamp
from sitoo_sync.streams import STREAMS
from sitoo_sync.streams.base import items_of
from sitoo_sync.views import VIEWS
from sitoo_sync.warehouse import open_warehouse
from sitoo_sync.warehouse.base import REJECTS, SYSTEM_TABLES
from tests.support import FIXTURES
from tests.targets import ALL_TARGETS, Target, target_for

NOW = datetime(2026, 11, 2, 12, tzinfo=UTC)
HUGE = "1e999999999"  # a JSON number: Decimal('1E+999999999'), past the decimal context
LAST_SECOND = 253402300799  # 9999-12-31T23:59:59Z, the last a timestamp column holds
HOLE = "@@hostile@@"


@pytest.fixture(params=ALL_TARGETS)
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    """Each target in turn (servers skip when CI did not provide them)."""
    with target_for(request.param, tmp_path) as t:
        yield t


def _fixture(name: str) -> Any:
    doc = json.loads((FIXTURES / name).read_text())
    return doc["response"] if isinstance(doc, dict) and "response" in doc else doc


def _page(stream: str, records: list[Any], token: str) -> list[Any]:
    """`records` as a page of `stream` whose HOLE values are the raw JSON `token`, parsed
    as the client parses that stream's pages."""
    text = json.dumps({"items": records}).replace(json.dumps(HOLE), token).encode()
    decode = STREAMS[stream].decode
    if decode is not None:
        return list(decode(text).entries)
    return items_of(_decode_json(text))


def _normalize(stream: str, records: list[Any], token: str, **context: Any) -> NormalizedWindow:
    context = {"partition": "1", "now": NOW, "personal_data": PersonalData(), **context}
    return STREAMS[stream].normalize(_page(stream, records, token), context)


def _z_report() -> dict[str, Any]:
    return dict(_fixture("pos_z_reports_vendor_example.json")[0])


def _receipt(**data: Any) -> dict[str, Any]:
    items = _fixture("journal_entries_vendor_example.json")["items"]
    entry = next(e for e in items if e["type"] == "receipt")
    return {**entry, "data": {**entry["data"], **data}}


def _order(**fields: Any) -> dict[str, Any]:
    return {**_fixture("rest_v2_orders.json")["items"][0], **fields}


# ---- a JSON number with any exponent -------------------------------------------------------


@pytest.mark.timeout(
    60, method="thread"
)  # to_int once built the billion digits of 1E+999999999 first
@pytest.mark.parametrize("convert", [to_money, to_decimal, to_int, to_timestamp])
@pytest.mark.parametrize("text", ["1E+999999999", "-1E+999999999", "1E+1000000"])
def test_a_number_past_the_decimal_context_is_rejected_with_a_reason(
    convert: Callable[[Any], Any], text: str
) -> None:
    """A Decimal whose exponent is past the decimal context's (abs() overflows on it) is
    refused as out of range, never decimal.Overflow, and never after minutes of int()."""
    with pytest.raises(RecordRejected) as caught:
        convert(Decimal(text))
    assert "out of range" in caught.value.message or "not a Unix timestamp" in caught.value.message


@pytest.mark.timeout(60, method="thread")  # the same int(), from a normalizer
@pytest.mark.parametrize(
    ("stream", "records", "column"),
    [
        ("pos_z_reports", [{**_z_report(), "moneysalestotal": HOLE}], "moneysalestotal"),
        ("pos_z_reports", [{**_z_report(), "numsales": HOLE}], "numsales"),
        ("journal_entries", [_receipt(isrefund=True, moneytotal=HOLE)], "moneytotal"),
        ("orders", [_order(moneytotal_net=HOLE)], "moneytotal_net"),
        (
            "warehouse_items",
            [{**_fixture("rest_v2_warehouseitems.json")["items"][0], "decimaltotal": HOLE}],
            "decimaltotal",
        ),
    ],
)
def test_a_huge_exponent_rejects_its_record_and_not_the_window(
    stream: str, records: list[Any], column: str
) -> None:
    """A money, quantity or integer field sent as 1e999999999 rejects its record with the
    column and the reason; the normalizer does not raise (which failed the window on every
    tick: decimal.Overflow from abs() or a refund's negation, or int() running for ever)."""
    window = _normalize(stream, records, HUGE)
    [reject] = window.rejects
    # (a journal entry's `data` holds the number too: its own reason may come first)
    jsonb = "journal_entries.data: a JSON number past what PostgreSQL's jsonb holds: 1E+999999999"
    assert f".{column}: out of range" in reject.reason or reject.reason == jsonb


# ---- the last second a timestamp column holds ----------------------------------------------


@pytest.mark.parametrize(
    ("stream", "record", "context", "table", "time_column"),
    [
        (
            "pos_z_reports",
            {**_z_report(), "datecreated": HOLE},
            {"timezone": "Europe/Stockholm"},
            "pos_z_reports",
            "datecreated",
        ),
        (
            "journal_entries",
            {**_receipt(), "datecreated": HOLE},
            {},
            "journal_receipts",
            "datecreated",
        ),
        (
            "orders",
            _order(orderdate=HOLE),
            {"site_zones": {"1": "Asia/Tokyo"}},
            "orders",
            "orderdate",
        ),
    ],
)
def test_the_last_second_east_of_utc_loads_with_no_local_day(
    stream: str, record: dict[str, Any], context: dict[str, Any], table: str, time_column: str
) -> None:
    """9999-12-31T23:59:59Z is a time the column holds, but in a zone east of UTC its local
    day is in the year 10000, which no DATE holds: the record loads with its exact instant
    and no business_date, where computing that day raised OverflowError and failed the
    window."""
    window = _normalize(stream, [record], str(LAST_SECOND), **context)
    assert window.rejects == []
    [row] = window.tables[table].select([time_column, "business_date"]).to_pylist()
    assert row == {
        time_column: datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC),
        "business_date": None,
    }


# ---- one record, one outcome, whatever its neighbours --------------------------------------


@pytest.mark.parametrize("token", ["1587110959.0", "1.587110959e9"])
def test_a_timestamp_with_a_fraction_part_is_rejected_alone_and_among_bad_neighbours(
    token: str,
) -> None:
    """A JSON number with a fraction or exponent is not Unix seconds (to_timestamp, and every
    cursor, refuse it): the record is rejected in a window of clean records too, where the
    one-pass Arrow read took it as 1587110959 and loaded it."""
    odd = {**_z_report(), "datecreated": HOLE}
    bad = {**_z_report(), "zreportid": 3, "moneysalestotal": "12.345"}
    for records in ([odd], [odd, bad]):
        window = _normalize("pos_z_reports", records, token)
        reasons = {r.record_key: r.reason for r in window.rejects}
        key = f"{odd['registerid']}/{odd['zreportid']}"
        assert reasons[key].startswith("pos_z_reports.datecreated: not a Unix timestamp")


# ---- read back exactly, on every target ----------------------------------------------------

#: (moneysalestotal / moneycash_diff, datecreated, a vat group's vatvalue): DECIMAL(18,2)'s and
#: DECIMAL(18,3)'s ends, negative zero, a JSON number with an exponent, the epoch, the last
#: second, a leap day, the nights Stockholm's clocks go forward and back, a year's end.
EDGES: list[tuple[str, int, str]] = [
    ('"9999999999999999.99"', LAST_SECOND, "999999999999999.999"),
    ('"-9999999999999999.99"', 0, "-999999999999999.999"),
    ('"-0.00"', 1709208000, "-0.0"),  # 2024-02-29T12:00:00Z
    ("1E+3", 1711846800, '"0.001"'),  # 2024-03-31T01:00:00Z: 03:00 CEST, the hour after the gap
    ('"+0.01"', 1729990800, "25"),  # 2024-10-27T01:00:00Z: 02:00 CET, the repeated hour's second
    ("12.5", 1735689599, '"1E+2"'),  # 2024-12-31T23:59:59Z: 2025-01-01 in Stockholm
]


def _edge_window() -> NormalizedWindow:
    texts = []
    for i, (money, created, rate) in enumerate(EDGES):
        record = _z_report()
        record["vatgroupssales"] = [{**record["vatgroupssales"][0], "vatvalue": "@@rate@@"}]
        record.update(zreportid=i + 1, moneysalestotal="@@money@@", moneycash_diff="@@money@@")
        record["datecreated"] = created
        text = json.dumps(record).replace('"@@money@@"', money).replace('"@@rate@@"', rate)
        texts.append(text)
    page = _decode_json(("[" + ",".join(texts) + "]").encode())
    context = {"partition": "p", "now": NOW, "personal_data": PersonalData()}
    return STREAMS["pos_z_reports"].normalize(page, {**context, "timezone": "Europe/Stockholm"})


def test_the_edges_normalize_to_exact_values() -> None:
    """The edge values become exactly the amounts, rates and local days they are."""
    window = _edge_window()
    assert window.rejects == []
    rows = window.tables["pos_z_reports"].to_pylist()
    assert [str(r["moneysalestotal"]) for r in rows] == [
        "9999999999999999.99",
        "-9999999999999999.99",
        "0.00",
        "1000.00",
        "0.01",
        "12.50",
    ]
    assert [r["business_date"] for r in rows] == [
        None,  # Stockholm is UTC+1 then: the last second is 10000-01-01 00:59:59 there
        date(1970, 1, 1),
        date(2024, 2, 29),
        date(2024, 3, 31),
        date(2024, 10, 27),
        date(2025, 1, 1),
    ]
    rates = window.tables["pos_z_report_vat_groups"].column("vatvalue").to_pylist()
    assert [str(r) for r in rates] == [
        "999999999999999.999",
        "-999999999999999.999",
        "0.000",
        "0.001",
        "25.000",
        "100.000",
    ]


def test_the_edges_read_back_exactly_on_every_target(target: Target) -> None:
    """Money, rates, instants and local days at their edges read back from every target
    equal to what was loaded (money to the cent and to its two places, instants in UTC),
    and v_cash_differences shows each cash difference as exact as its column."""
    stream = STREAMS["pos_z_reports"]
    window = _edge_window()
    parent, vat_groups = stream.tables[0], stream.tables[1]
    names = ["zreportid", "moneysalestotal", "moneycash_diff", "datecreated", "business_date"]
    want = sorted(tuple(r[n] for n in names) for r in window.tables[parent.name].to_pylist())
    want_rates = sorted(
        (r["zreportid"], r["vatvalue"]) for r in window.tables[vat_groups.name].to_pylist()
    )
    warehouse = open_warehouse(target.url, schema=target.schema)
    try:
        warehouse.ensure_schema([*SYSTEM_TABLES, *stream.tables], VIEWS)
        load_window(warehouse, stream, "p", window, "1")
        got = sorted(tuple(r[n] for n in names) for r in warehouse.read_table(parent))
        got_rates = sorted(
            (r["zreportid"], r["vatvalue"]) for r in warehouse.read_table(vat_groups)
        )
        view = warehouse.qualified("v_cash_differences")
        diffs = warehouse.query(f"SELECT zreportid, cash_difference FROM {view}")
    finally:
        warehouse.close()
    assert got == want
    assert [tuple(map(str, r[1:3])) for r in got] == [tuple(map(str, r[1:3])) for r in want]
    assert got_rates == want_rates
    by_id = {int(i): Decimal(str(d)) for i, d in diffs}
    assert by_id == {r[0]: r[2] for r in want if r[2] != 0}
    assert all(str(by_id[r[0]]) == str(r[2]) for r in want if r[2] != 0)


# ---- a JSON number no PostgreSQL jsonb holds -----------------------------------------------


def _cash_start(**data: Any) -> dict[str, Any]:
    items = _fixture("journal_entries_vendor_example.json")["items"]
    entry = next(e for e in items if e["type"] == "cash-start")
    return {**entry, "data": {**entry["data"], **data}}


def test_a_json_number_past_jsonb_is_a_reject_that_loads_on_every_target(target: Target) -> None:
    """An undeclared field holding 1e200000 (kept as JSON in `extra` or an entry's `data`)
    rejects its record on every target, where PostgreSQL's jsonb, which cannot hold the
    number, failed the window's load on every tick; the reject itself loads everywhere, its
    raw copy JSON with that number written as a string."""
    good = {**_z_report(), "zreportid": 7}
    z_window = _normalize("pos_z_reports", [{**_z_report(), "foo": HOLE}, good], "1e200000")
    entry = _cash_start(foo=HOLE)
    journal = _normalize("journal_entries", [entry], "1e200000", partition=entry["registerid"])
    reasons = [r.reason for r in (*z_window.rejects, *journal.rejects)]
    assert reasons == [
        "pos_z_reports.extra: a JSON number past what PostgreSQL's jsonb holds: 1E+200000",
        "journal_entries.data: a JSON number past what PostgreSQL's jsonb holds: 1E+200000",
    ]
    warehouse = open_warehouse(target.url, schema=target.schema)
    try:
        streams = [STREAMS["pos_z_reports"], STREAMS["journal_entries"]]
        warehouse.ensure_schema([*SYSTEM_TABLES, *(t for s in streams for t in s.tables)])
        load_window(warehouse, streams[0], "p", z_window, "1")
        load_window(warehouse, streams[1], entry["registerid"], journal, "1")
        counts = warehouse.table_counts([streams[0].tables[0], REJECTS])
        raws = [r["raw"] for r in warehouse.read_table(REJECTS)]
    finally:
        warehouse.close()
    assert counts == {"pos_z_reports": 1, "rejects": 2}
    assert all(json.loads(r) if isinstance(r, str) else r for r in raws)


def test_verify_dates_the_last_second_east_of_utc_on_its_utc_day() -> None:
    """A register's activity at 9999-12-31T23:59:59Z is dated in Stockholm on its UTC day, the
    last a date holds, rather than overflowing into year 10000 and failing verify."""
    from sitoo_sync.verify.source import local_day

    last = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
    assert local_day(last, "Europe/Stockholm") == date(9999, 12, 31)
    assert local_day(datetime(2026, 3, 29, 23, 30, tzinfo=UTC), "Europe/Stockholm") == date(
        2026, 3, 30
    )
