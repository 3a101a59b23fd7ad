"""Adversarial review of the POS journal: what a finance user would hit, end to end."""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Callable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from pydantic import SecretStr

from sitoo_sync.api.client import make_client
from sitoo_sync.json_text import mended
from sitoo_sync.normalize.journal_entries import normalize_window as reference
from sitoo_sync.normalize.journal_pages import (
    decode_page,
    normalize_window,
    normalize_windows,
)
from sitoo_sync.normalize.personal import MODES, STAFF_NAMES, PersonalData
from sitoo_sync.settings import Settings
from sitoo_sync.streams import STREAMS
from sitoo_sync.sync import RunReport, run_once
from sitoo_sync.warehouse import open_warehouse
from tests.support import query
from tests.test_journal_entries import vendor_entries
from tests.test_journal_pages import _DICTS, assert_same_window, simulator_pages

REGISTER = "{2AA484B4-2B5F-55AB-128A-7DB46E573357}"
T0 = 1_700_000_000

#: What the journal endpoint answers to a request's query parameters: a body as bytes.
Journal = Callable[[Mapping[str, str]], bytes]


def entry(entry_id: int, added: int, **fields: Any) -> dict[str, Any]:
    """A login entry of the register, `fields` replacing its own."""
    made: dict[str, Any] = {
        "data": {"staff": "POS Staff", "staffuserid": "{25BA93F6}"},
        "dateadded": added,
        "datecreated": added - 5,
        "id": entry_id,
        "ispractice": False,
        "registerid": REGISTER,
        "registerkey": "SIE0000150100023",
        "type": "login",
    }
    made.update(fields)
    return made


def _settings(db: Path) -> Settings:
    return Settings(
        api_id="1500-1",
        api_password=SecretStr("pw"),
        site_ids=[1],
        target_url=f"duckdb:///{db}",
        streams=["cash_registers", "journal_entries"],
        http_max_attempts=2,
        http_backoff_base_seconds=0.0,
        http_backoff_max_seconds=0.0,
    )


def tick(db: Path, journal: Journal, asked: list[dict[str, str]] | None = None) -> RunReport:
    """One tick of the register listing and the journal of its one register, against
    `journal` for /journal-entries (every request's parameters appended to `asked`)."""

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/cashregisters.json"):
            return httpx.Response(200, json={"totalcount": 1, "items": [{"registerid": REGISTER}]})
        if request.url.path.endswith("/journal-entries"):
            params = dict(request.url.params)
            if asked is not None:
                asked.append(params)
            return httpx.Response(200, content=journal(params))
        return httpx.Response(404, json={"statuscode": 404, "errortext": "not here"})

    settings = _settings(db)
    streams = [STREAMS[name] for name in settings.streams or ()]
    with make_client(settings, httpx.MockTransport(handler), sleep=lambda _s: None) as client:
        return run_once(settings, open_warehouse(settings.target_url), client, streams)


def journal_failures(report: RunReport) -> list[str]:
    """The errors of the journal's partitions that did not end ok."""
    return [
        f"{r.partition}: {r.error}"
        for r in report.results
        if r.stream == "journal_entries" and r.status != "ok"
    ]


def stored_ids(db: Path) -> list[int]:
    """The ids of the register's entries in journal_entries, ascending."""
    rows = query(_settings(db), "SELECT id FROM journal_entries ORDER BY id")
    return [r[0] for r in rows]


# ---- the answer's shape -------------------------------------------------------------------


def test_a_journal_answered_as_a_bare_array_loads(tmp_path: Path) -> None:
    """A page sent as a bare array of entries, not the envelope (the contract's tolerant
    reader accepts both), loads its entries and moves the cursor, instead of failing the
    register on every tick."""
    body = json.dumps([entry(1, T0), entry(2, T0 + 1)]).encode()
    report = tick(tmp_path / "w.duckdb", lambda _params: body)
    assert journal_failures(report) == []
    assert stored_ids(tmp_path / "w.duckdb") == [1, 2]


def test_a_full_bare_array_is_asked_again_from_its_newest_second(tmp_path: Path) -> None:
    """A bare array as long as `num` may not be the whole answer (it has no `next`): the
    tick asks again from its newest second, inclusively, and loads every entry, including
    those of that second the first page did not hold."""
    entries = [entry(i + 1, T0 + i // 3) for i in range(2_500)]  # three entries a second
    asked: list[dict[str, str]] = []

    def journal(params: Mapping[str, str]) -> bytes:
        lo, num = int(params["date_from"]), int(params["num"])
        return json.dumps([e for e in entries if e["dateadded"] >= lo][:num]).encode()

    report = tick(tmp_path / "w.duckdb", journal, asked)
    assert journal_failures(report) == []
    assert stored_ids(tmp_path / "w.duckdb") == list(range(1, 2_501))
    assert [int(p["date_from"]) for p in asked] == [0, T0 + 333, T0 + 666]


def test_a_full_bare_array_of_one_second_stops_the_register_visibly(tmp_path: Path) -> None:
    """A bare array that fills a page with one second cannot be paged on without skipping
    or asking the same page forever: the register fails with why, and its entries load."""
    entries = [entry(i + 1, T0) for i in range(1_000)]
    body = json.dumps(entries).encode()
    report = tick(tmp_path / "w.duckdb", lambda _params: body)
    [failure] = journal_failures(report)
    assert "bare array" in failure
    assert len(stored_ids(tmp_path / "w.duckdb")) == 1_000


# ---- text no UTF-8 can hold ---------------------------------------------------------------


def receipt(entry_id: int, added: int, comment: str) -> dict[str, Any]:
    """A sale of 100.00 SEK with `comment`."""
    data = {
        "additionaldata": {"pos-receiptid": f"R{entry_id}", "pos-timezone": "Europe/Stockholm"},
        "comment": comment,
        "currencycode": "SEK",
        "isrefund": False,
        "items": [],
        "moneytotal": "100.00",
        "payments": [{"moneyamount": "100.00", "name": "Card"}],
    }
    return entry(entry_id, added, type="receipt", data=data)


def test_a_comment_cut_in_the_middle_of_an_emoji_does_not_stop_the_register(
    tmp_path: Path,
) -> None:
    """A string cut between the two halves of an emoji is sent as a lone surrogate escape
    (valid JSON, which the strict decoder refuses): the receipt loads with U+FFFD in its
    place, and so do its neighbours, instead of the page failing on every tick."""
    body = json.dumps({"items": [entry(1, T0), receipt(2, T0, "Tack! \ud83d")]})
    assert "\\ud83d" in body  # how a JSON encoder writes the lone half
    report = tick(tmp_path / "w.duckdb", lambda _params: body.encode())
    assert journal_failures(report) == []
    assert stored_ids(tmp_path / "w.duckdb") == [1, 2]
    rows = query(
        _settings(tmp_path / "w.duckdb"), "SELECT comment, moneytotal FROM journal_receipts"
    )
    assert [(c, str(m)) for c, m in rows] == [("Tack! \ufffd", "100.00")]


def test_bytes_that_are_not_utf8_in_an_entrys_data_do_not_crash_the_tick(tmp_path: Path) -> None:
    """An entry whose data holds bytes that are not UTF-8 (a typed page reads its data as
    raw bytes, unchecked) loads with U+FFFD for them: the tick does not die with a decode
    error, and the register's other entries load."""
    body = json.dumps(
        {"items": [entry(1, T0), entry(2, T0, type="printout", data={"text": "Caf_"})]}
    ).encode()
    body = body.replace(b"Caf_", b"Caf\xe9")  # Latin-1, not UTF-8
    report = tick(tmp_path / "w.duckdb", lambda _params: body)
    assert journal_failures(report) == []
    rows = query(
        _settings(tmp_path / "w.duckdb"), "SELECT id, data FROM journal_entries ORDER BY id"
    )
    assert [(i, json.loads(d)) for i, d in rows][1] == (2, {"text": "Caf\ufffd"})


@pytest.mark.parametrize("names", [None, "hash"])
@pytest.mark.parametrize(
    "where",
    [
        pytest.param(lambda e: e[2]["data"].update(comment="Caf_"), id="receipt"),
        pytest.param(lambda e: e[1]["data"].update(currencycode="Caf_"), id="cash-event"),
        pytest.param(
            lambda e: e[2]["data"]["items"][0]["additionaldata"].update(note="Caf_"),
            id="item-additionaldata",
        ),
    ],
)
def test_bytes_that_are_not_utf8_normalize_as_their_mended_page(where: Any, names: Any) -> None:
    """Wherever in a typed entry's data bytes that are not UTF-8 are, alone or joined with
    another register's window, the window normalizes as the reference normalizer reads the
    page with U+FFFD for them; nothing raises."""
    entries = vendor_entries()
    where(entries)
    body = msgspec.json.encode({"items": entries}).replace(b"Caf_", b"Caf\xe9")
    other = msgspec.json.encode({"items": [entry(9, T0, registerid="{OTHER}")]})
    context = None if names is None else {STAFF_NAMES: PersonalData(names, b"key")}
    want = reference(_DICTS.decode(mended(body))["items"], context)
    assert_same_window(normalize_window(decode_page(body)["items"], context), want)
    joined = normalize_windows(
        [(decode_page(body)["items"], context), (decode_page(other)["items"], context)]
    )
    assert_same_window(joined[0], want)


def test_a_next_token_that_points_at_the_end_again_ends_the_tick(tmp_path: Path) -> None:
    """An API that always answers with a `next` (at the end of the data, the token to poll
    from later, the same each time) does not keep the tick asking forever: a token equal to
    the one just sent ends the query, and every entry is loaded."""
    entries = [entry(i + 1, T0 + i) for i in range(5)]
    asked: list[dict[str, str]] = []

    def journal(params: Mapping[str, str]) -> bytes:
        if len(asked) > 20:  # (the loop this test is about: break it, the assert says so)
            return b'{"items": []}'
        at = int(params.get("next", "0"))
        page = entries[at : at + 2]
        return json.dumps({"items": page, "next": str(at + len(page))}).encode()

    report = tick(tmp_path / "w.duckdb", journal, asked)
    assert journal_failures(report) == []
    assert stored_ids(tmp_path / "w.duckdb") == [1, 2, 3, 4, 5]
    assert [p.get("next") for p in asked] == [None, "2", "4", "5"]


# ---- the two normalizers on generated input ---------------------------------------------

#: Values a field may be given: what a tolerant reader meets, and what it must reject.
ODD_VALUES: tuple[Any, ...] = (
    None, "", " ", "0", "12", "-3", "12.50", "12.345", "1e3", "abc", "true", " TRUE ",
    0, 1, -1, 2**63, Decimal("1.5"), Decimal("12.00"), True, False, [], [1], {}, {"a": 1},
    "Europe/Stockholm", "America/New_York", "Not/AZone", "+5.00", "-0.00", "CUT_EMOJI",
    "NOT_UTF8", T0,
)  # fmt: skip
#: Fields a generated entry may gain (declared ones, undeclared ones, ones a table fills in).
ODD_FIELDS = ("zz", "type", "id", "registerid", "currencycode", "staff", "store_id", "position")


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value inside `value` (dict keys, list indexes)."""
    children: list[tuple[Any, Any]] = []
    if isinstance(value, dict):
        children = list(value.items())
    elif isinstance(value, list):
        children = list(enumerate(value))
    found = []
    for key, child in children:
        found.append((*prefix, key))
        found += _paths(child, (*prefix, key))
    return found


def _mutated_page(rng: random.Random, pages: list[list[dict[str, Any]]]) -> list[Any]:
    """A copy of one of `pages` with one to three of its values changed, removed or added."""
    page = copy.deepcopy(rng.choice(pages))
    for _ in range(rng.randint(1, 3)):
        target = rng.randrange(len(page))
        *parents, last = rng.choice(_paths(page[target]))
        holder: Any = page[target]
        for step in parents:
            holder = holder[step]
        roll = rng.random()
        if roll < 0.1 and isinstance(holder, dict):
            holder.pop(last)
        elif roll < 0.2 and isinstance(holder, dict):
            holder[rng.choice(ODD_FIELDS)] = rng.choice(ODD_VALUES)
        else:
            holder[last] = rng.choice(ODD_VALUES)
    return page


def test_the_columnar_and_reference_normalizers_agree_on_generated_windows() -> None:
    """On windows of generated entries (values of every type, fields removed and added,
    staff names kept, hashed or dropped, strings cut mid-emoji, bytes that are not UTF-8),
    the columnar normalizer, alone or joined with another register's window, gives exactly
    what the reference normalizer gives for the page as it reads it; nothing raises."""
    rng = random.Random(20261207)
    simulated = [_DICTS.decode(p)["items"][:40] for p in simulator_pages()[:2]]
    pages = [vendor_entries(), *simulated]
    other = decode_page(msgspec.json.encode({"items": [entry(9, T0, registerid="{OTHER}")]}))
    for _ in range(250):
        body = msgspec.json.encode({"items": _mutated_page(rng, pages)})
        body = body.replace(b"CUT_EMOJI", b"Tack \\ud83d").replace(b"NOT_UTF8", b"Caf\xe9")
        mode = rng.choice((None, *MODES))
        context = None if mode is None else {STAFF_NAMES: PersonalData(mode, b"key")}
        want = reference(_DICTS.decode(mended(body))["items"], context)
        assert_same_window(normalize_window(decode_page(body)["items"], context), want)
        joined = normalize_windows(
            [(decode_page(body)["items"], context), (other["items"], context)]
        )
        assert_same_window(joined[0], want)
