"""Adversarial review of the POS journal: what a finance user would hit, end to end."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

from sitoo_sync.api.client import make_client
from sitoo_sync.settings import Settings
from sitoo_sync.streams import STREAMS
from sitoo_sync.sync import RunReport, run_once
from sitoo_sync.warehouse import open_warehouse
from tests.support import query

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
