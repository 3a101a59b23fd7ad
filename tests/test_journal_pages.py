"""Journal pages decoded into typed entries, and the columnar normalizer for clean windows."""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import msgspec
import pyarrow as pa
import pytest

from sitoo_sync.normalize import journal_pages
from sitoo_sync.normalize.journal_entries import normalize_window as reference
from sitoo_sync.normalize.journal_pages import (
    JournalEntry,
    as_dicts,
    decode_page,
    normalize_entries,
    normalize_window,
)
from sitoo_sync.normalize.records import NormalizedWindow
from sitoo_sync.simulator import SimConfig, World
from sitoo_sync.simulator.journal import journal_page
from sitoo_sync.streams.cursors import record_times
from tests.support import FIXTURES

NOW = 1_750_000_000
_DICTS = msgspec.json.Decoder(float_hook=Decimal)


def simulator_pages(**config: Any) -> list[bytes]:
    """The first page (up to 1,000 entries) of every register's journal, as the simulator
    sends it."""
    world = World(SimConfig(seed=11, days=2, now=NOW, **config))
    pages: list[bytes] = []
    for register in world.registers:
        query = {
            "register_id": [register.registerid],
            "date_type": ["added"],
            "num": ["1000"],
            "date_from": ["0"],
        }
        answer = journal_page(world.journal, query)
        pages.append(answer if isinstance(answer, bytes) else msgspec.json.encode(answer))
    return [p for p in pages if b'"items":[]' not in p]


def vendor_page() -> bytes:
    """The vendor's example page (FACTS 1.3 and 1.6): login, cash-start and a receipt."""
    return (FIXTURES / "journal_entries_vendor_example.json").read_bytes()


def _rows(table: pa.Table) -> list[tuple[Any, ...]]:
    """A table's rows in a stable order, JSON columns as the values they hold."""
    columns = []
    for name in table.column_names:
        values = table[name].to_pylist()
        if name in ("data", "additionaldata", "extra"):
            values = [None if v is None else json.loads(v) for v in values]
        columns.append(values)
    return sorted(zip(*columns, strict=True), key=repr)


def assert_same_window(got: NormalizedWindow, want: NormalizedWindow) -> None:
    """The same tables row for row (in any order; JSON columns as the values they hold),
    the same parent keys, rejects and notes."""
    assert got.tables.keys() == want.tables.keys()
    for name, table in want.tables.items():
        mine = got.tables[name]
        assert mine.schema == table.schema, name
        assert _rows(mine) == _rows(table), name
    assert got.keys() == want.keys()
    assert sorted((r.record_key, r.reason) for r in got.rejects) == sorted(
        (r.record_key, r.reason) for r in want.rejects
    )
    assert got.notes == want.notes


def test_a_clean_page_decodes_into_typed_entries_that_read_like_dicts() -> None:
    """Every entry of a simulator page is a JournalEntry that answers [], get, `in`,
    iteration and isinstance(Mapping) as the dict it replaces; an absent field is absent."""
    page = decode_page(simulator_pages()[0])
    entries = page["items"]
    assert entries
    assert all(type(e) is JournalEntry for e in entries)
    plain = _DICTS.decode(simulator_pages()[0])["items"]
    for entry, want in zip(entries, plain, strict=True):
        assert isinstance(entry, Mapping)
        assert entry["dateadded"] == want["dateadded"]
        assert entry.get("registerid") == want["registerid"]
        assert set(entry) == set(want)
        assert len(entry) == len(want)
    bare = decode_page(b'{"items":[{"registerid":"R","id":1,"type":"login"}]}')["items"][0]
    assert "data" not in bare
    assert bare.get("data", "absent") == "absent"
    assert "keys" not in bare  # a method is not a field
    assert bare.get("keys") is None
    with pytest.raises(KeyError):
        bare["datecreated"]


def test_cursor_times_of_typed_entries_are_those_of_their_dicts() -> None:
    """`record_times` reads typed entries' times in one pass with what it reads from the
    same entries as dicts: absent, null and non-integer times left out, in order, also in a
    page that mixes typed entries with dicts."""
    body = (
        b'{"items":[{"registerid":"R","id":1,"type":"login","dateadded":7},'
        b'{"registerid":"R","id":2,"type":"login"},'
        b'{"registerid":"R","id":3,"type":"login","dateadded":null},'
        b'{"registerid":"R","id":4,"type":"login","dateadded":"8"},'
        b'{"registerid":"R","id":5,"type":"login","dateadded":5}]}'
    )
    entries = decode_page(body)["items"]
    assert all(type(e) is JournalEntry for e in entries)
    plain = _DICTS.decode(body)["items"]
    assert record_times(entries, "dateadded") == record_times(plain, "dateadded") == [7, 5]
    mixed = [*entries[:2], plain[4], "not a record"]
    assert record_times(mixed, "dateadded") == [7, 5]
    assert JournalEntry.values_of(mixed, "dateadded") is None
    assert record_times(entries, "no such field") == []
    page = decode_page(simulator_pages()[0])["items"]
    assert record_times(page, "dateadded") == record_times(as_dicts(page), "dateadded")


def test_an_entry_with_an_undeclared_field_leaves_the_page_as_plain_dicts() -> None:
    """A field the envelope does not declare sends the whole page the plain way, so the
    reference normalizer keeps that field in `extra`."""
    body = b'{"items":[{"registerid":"R","id":1,"type":"login","dateadded":5,"shiny":true}]}'
    page = decode_page(body)
    [entry] = page["items"]
    assert type(entry) is dict
    window = normalize_window(page["items"])
    assert json.loads(window.tables["journal_entries"]["extra"][0].as_py()) == {"shiny": True}


def test_bytes_that_are_not_json_raise_value_error() -> None:
    """The client retries a page that is not JSON: the decoder says so with ValueError."""
    with pytest.raises(ValueError, match="JSON"):
        decode_page(b"<html>502 Bad Gateway</html>")


@pytest.mark.parametrize(
    "config",
    [
        pytest.param({}, id="full-simulator"),
        pytest.param({"lazy_journal_size": 20_000}, id="lazy-journal"),
    ],
)
def test_the_columnar_path_makes_exactly_the_reference_tables(config: dict[str, Any]) -> None:
    """For every register's page of the simulator, the columnar normalizer takes the page
    (it does not fall back) and its tables equal the reference normalizer's of the same
    page decoded into dicts."""
    pages = simulator_pages(**config)
    assert len(pages) >= 5
    receipts = 0
    for body in pages:
        entries = decode_page(body)["items"]
        fast = normalize_entries(entries)
        assert fast is not None, "a clean simulator page must take the columnar path"
        want = reference(_DICTS.decode(body)["items"])
        assert_same_window(fast, want)
        receipts += fast.tables["journal_receipts"].num_rows
    assert receipts > 0


def test_the_vendor_example_takes_the_columnar_path_with_the_same_tables() -> None:
    """The vendor's own example page normalizes the same both ways."""
    entries = decode_page(vendor_page())["items"]
    fast = normalize_entries(entries)
    assert fast is not None
    assert_same_window(fast, reference(_DICTS.decode(vendor_page())["items"]))


def _page(*entries: dict[str, Any]) -> bytes:
    return msgspec.json.encode({"items": list(entries)})


def _vendor_entries() -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = _DICTS.decode(vendor_page())["items"]
    return items


def _delivered(entries: list[dict[str, Any]], value: Any) -> None:
    """The receipt's first item says it was delivered as `value` (the vendor sends text)."""
    entries[2]["data"]["items"][0]["additionaldata"]["item-delivered"] = value


def _mutated(mutate: Any) -> list[dict[str, Any]]:
    entries = _vendor_entries()
    mutate(entries)
    return entries


@pytest.mark.parametrize(
    ("mutate", "columnar"),
    [
        pytest.param(lambda e: e[2]["data"].update(receiptnumber="A-1"), True, id="undeclared"),
        pytest.param(
            lambda e: e[2]["data"]["items"][0].update(colour="red"), True, id="undeclared-in-item"
        ),
        pytest.param(lambda e: e[2]["data"].update(moneytotal="1,00"), False, id="bad-money"),
        pytest.param(lambda e: e[1].update(id="2"), False, id="string-id"),
        pytest.param(lambda e: e[0].update(registerid=""), False, id="empty-register"),
        pytest.param(lambda e: e.append({**e[0], "type": "logout"}), False, id="key-twice"),
        pytest.param(lambda e: e[1].update(datecreated=-5), False, id="time-before-1970"),
        pytest.param(lambda e: e[2]["data"].update(items="x"), False, id="items-not-a-list"),
        pytest.param(lambda e: e[1].update(data=[]), False, id="data-not-an-object"),
        pytest.param(lambda e: e[0].update(id=2**63), False, id="id-past-bigint"),
        pytest.param(lambda e: e[2]["data"].update(moneytotal="12.5"), True, id="money-one-place"),
        pytest.param(
            lambda e: e[2]["data"]["additionaldata"].update({"pos-timezone": 5}),
            True,
            id="timezone-a-number",
        ),
        pytest.param(lambda e: e[1].update(data=None), True, id="data-null"),
        pytest.param(lambda e: e[2]["data"].update(isrefund=True), True, id="refund"),
        pytest.param(lambda e: _delivered(e, " TRUE "), True, id="delivered-spaced"),
        pytest.param(lambda e: _delivered(e, True), False, id="delivered-a-boolean"),
        pytest.param(lambda e: _delivered(e, "yes"), True, id="delivered-neither"),
        pytest.param(lambda e: _delivered(e, {"at": 1}), False, id="delivered-an-object"),
        pytest.param(lambda e: _delivered(e, None), True, id="delivered-null"),
        pytest.param(lambda e: e[2]["data"].update(additionaldata=None), True, id="extra-null"),
        pytest.param(lambda e: e[2]["data"]["items"][0].pop("additionaldata"), True, id="no-extra"),
    ],
)
def test_a_window_normalizes_the_same_whichever_path_takes_it(mutate: Any, columnar: bool) -> None:
    """Whatever a window holds, `normalize_window` gives exactly what the reference
    normalizer gives: the same rows, the same rejects with the same reasons, an undeclared
    field in `extra`. What the columnar path cannot prove (a value a converter refuses, a
    key twice, a shape the structs do not declare) it leaves to the reference normalizer
    whole; an entry whose data has an undeclared field goes that way alone; a value the
    converters take as they are, it keeps."""
    entries = _mutated(mutate)
    body = _page(*entries)
    decoded = decode_page(body)["items"]
    typed = all(type(e) is JournalEntry for e in decoded)
    assert (typed and normalize_entries(decoded) is not None) is columnar
    assert_same_window(normalize_window(decoded), reference(_DICTS.decode(body)["items"]))


def test_typed_entries_turn_back_into_the_dicts_plain_decoding_gives() -> None:
    """`as_dicts` of typed entries equals the page decoded plainly: the reference
    normalizer and the rejects table see the entries as sent (no field added)."""
    body = simulator_pages()[0]
    assert as_dicts(decode_page(body)["items"]) == _DICTS.decode(body)["items"]


def test_a_malformed_entry_of_the_simulator_is_rejected_the_same_way() -> None:
    """The simulator's malformed entries (a non-integer id, a time that is not one) reach
    the rejects table with the reference normalizer's reasons; their pages' other entries
    load."""
    pages = simulator_pages(lazy_journal_size=20_000, journal_malformed_every=50)
    rejected = 0
    for body in pages:
        got = normalize_window(decode_page(body)["items"])
        assert_same_window(got, reference(_DICTS.decode(body)["items"]))
        rejected += len(got.rejects)
        assert got.tables["journal_entries"].num_rows > 0
    assert rejected > 0


def test_the_journal_stream_decodes_and_normalizes_through_this_module() -> None:
    """The stream's declaration names this module's decoder and normalizer."""
    from sitoo_sync.streams.journal_entries import JOURNAL_ENTRIES

    assert JOURNAL_ENTRIES.decode is journal_pages.decode_page
    assert JOURNAL_ENTRIES.normalize is journal_pages.normalize_window


def test_receipts_with_undeclared_fields_go_the_reference_way_alone() -> None:
    """In a page of the simulator where every 5th receipt carries a field nobody declared
    (`journal_unknown_field_every`), the columnar path still takes the window: those
    receipts alone go through the reference normalizer, which keeps the field in `extra`,
    and the window equals the reference's."""
    pages = simulator_pages(lazy_journal_size=20_000, journal_unknown_field_every=5)
    odd = 0
    for body in pages:
        entries = decode_page(body)["items"]
        got = normalize_entries(entries)
        assert got is not None, "an undeclared field must not send the whole window"
        assert_same_window(got, reference(_DICTS.decode(body)["items"]))
        extras = [e for e in got.tables["journal_receipts"]["extra"].to_pylist() if e]
        assert all(json.loads(e).keys() == {"receiptnumber"} for e in extras)
        odd += len(extras)
    assert odd > 0


def _alone_and_joined(windows: list[list[Any]]) -> list[tuple[NormalizedWindow, NormalizedWindow]]:
    joined = journal_pages.normalize_windows([(w, {}) for w in windows])
    assert len(joined) == len(windows)
    return [(normalize_window(w, {}), j) for w, j in zip(windows, joined, strict=True)]


def test_windows_normalized_together_are_each_what_it_is_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Several registers' windows normalized in one call (what the tick's normalizing thread
    does with windows waiting together) give each window exactly the tables, row order, keys
    and notes it has alone, in fewer calls of the columnar path than windows; the bytes each
    is charged add up to what the call's buffers hold."""
    calls: list[int] = []
    tables = journal_pages._tables

    def counted(entries: Any, *rest: Any) -> Any:
        calls.append(len(entries))
        return tables(entries, *rest)

    windows = [decode_page(body)["items"] for body in simulator_pages()]
    monkeypatch.setattr(journal_pages, "MAX_JOINED_ENTRIES", 3 * max(map(len, windows)))
    pairs = _alone_and_joined(windows)
    monkeypatch.setattr(journal_pages, "_tables", counted)
    journal_pages.normalize_windows([(w, {}) for w in windows])
    assert 1 < len(calls) < len(windows) / 2
    assert max(calls) <= journal_pages.MAX_JOINED_ENTRIES
    noted = 0
    for alone, joined in pairs:
        for name, table in alone.tables.items():
            assert joined.tables[name].equals(table), name
        assert joined.parent_keys.equals(alone.parent_keys)
        assert joined.keys() == alone.keys()
        assert joined.notes == alone.notes
        assert not joined.rejects
        noted += sum(joined.notes.values())
        assert 0 < joined.nbytes() <= alone.nbytes() * 2
    assert noted > 0, "the simulator's undocumented entry types must be noted per window"


@pytest.mark.parametrize(
    "windows",
    [
        pytest.param(lambda p: [p[0], p[0][:3]], id="one-register-twice"),
        pytest.param(lambda p: [p[0] + p[1], p[2]], id="a-window-of-two-registers"),
        pytest.param(lambda p: [p[0], [], p[1]], id="an-empty-window"),
    ],
)
def test_windows_that_cannot_be_told_apart_are_normalized_one_by_one(windows: Any) -> None:
    """Windows that joined could not be cut back apart by register (one register twice, a
    window holding two) are normalized each on its own, with the same result."""
    pages = [decode_page(body)["items"] for body in simulator_pages()]
    for alone, joined in _alone_and_joined(windows(pages)):
        assert_same_window(joined, alone)


@pytest.mark.parametrize(
    "mutate",
    [
        pytest.param(lambda e: e[2]["data"].update(receiptnumber="A-1"), id="undeclared"),
        pytest.param(lambda e: e[2]["data"].update(moneytotal="1,00"), id="bad-money"),
        pytest.param(lambda e: e[1].update(id="2"), id="string-id"),
    ],
)
def test_a_window_the_columnar_path_refuses_leaves_the_others_right(mutate: Any) -> None:
    """A window with a reject or an undeclared field among clean windows of other registers:
    every window, that one included, normalizes exactly as alone (rejects, `extra`)."""
    pages = [decode_page(body)["items"] for body in simulator_pages()[:3]]
    odd = decode_page(_page(*_mutated(mutate)))["items"]
    for alone, joined in _alone_and_joined([pages[0], odd, pages[1], pages[2]]):
        assert_same_window(joined, alone)
