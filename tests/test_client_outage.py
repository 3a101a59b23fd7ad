"""The client when the API says the same thing to every request: credentials refused (401)
mid-tick, or an API that is down. A tick of hundreds of partitions says it once and does not
spend every partition's whole retry budget on it."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, MutableMapping
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from structlog.testing import capture_logs

from sitoo_sync.api.client import (
    DOWN_AFTER_EXHAUSTED,
    Api,
    SitooClient,
    make_client,
)
from sitoo_sync.errors import AuthError, RefusedEarlier, RetryBudgetExhausted, StopRequested
from sitoo_sync.settings import Settings
from sitoo_sync.streams import STREAMS
from sitoo_sync.sync import RunReport, run_once
from sitoo_sync.warehouse import open_warehouse

Handler = Callable[[httpx.Request], httpx.Response]
REGISTERS = [f"{{REG-{i:03d}}}" for i in range(40)]
REFUSED = httpx.Response(401, json={"statuscode": 401, "errortext": "Unauthorized"})
DOWN = httpx.Response(503, json={"statuscode": 503, "errortext": "Service Unavailable"})


def _settings(db: Path | None = None, **overrides: Any) -> Settings:
    values: dict[str, object] = {
        "api_id": "1500-1",
        "api_password": SecretStr("pw"),
        "site_ids": [1],
        "streams": ["cash_registers", "journal_entries"],
        "http_max_attempts": 4,
        "http_backoff_base_seconds": 0.0,
        "http_backoff_max_seconds": 0.0,
        "concurrency": 4,
    }
    if db is not None:
        values["target_url"] = f"duckdb:///{db}"
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]  # typed via pydantic validation


def client_of(handler: Handler, **overrides: Any) -> SitooClient:
    return make_client(_settings(**overrides), httpx.MockTransport(handler), sleep=lambda _s: None)


def ask(client: SitooClient, partition: str = "p") -> object:
    return client.get_json(Api.V2, "/sites.json", stream="sites", partition=partition)


def tick(db: Path, journal: Handler) -> tuple[RunReport, list[MutableMapping[str, Any]]]:
    """One tick of the register listing (REGISTERS) and their journals, answered by
    `journal`; returns the report and the log events."""

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/cashregisters.json"):
            items = [{"registerid": r} for r in REGISTERS]
            return httpx.Response(200, json={"totalcount": len(items), "items": items})
        return journal(request)

    settings = _settings(db)
    streams = [STREAMS[name] for name in settings.streams or ()]
    with (
        capture_logs() as events,
        make_client(settings, httpx.MockTransport(handler), sleep=lambda _s: None) as client,
    ):
        report = run_once(settings, open_warehouse(settings.target_url), client, streams)
    return report, events


def journal_results(report: RunReport) -> list[tuple[str, str]]:
    return sorted(
        (r.status, r.error or "") for r in report.results if r.stream == "journal_entries"
    )


class Counted:
    """A journal answering `first` to its first `n` requests and `then` to the rest,
    counting the requests it was sent."""

    def __init__(self, n: int, first: httpx.Response, then: httpx.Response) -> None:
        self.n, self.first, self.then = n, first, then
        self.sent = 0
        self._lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            self.sent += 1
            answer = self.first if self.sent <= self.n else self.then
        return httpx.Response(answer.status_code, content=answer.content)


EMPTY = httpx.Response(200, content=json.dumps({"items": []}).encode())


def test_a_401_mid_tick_is_said_once_and_not_asked_of_every_register(tmp_path: Path) -> None:
    """Credentials refused mid-tick fail every register not yet done, with one error line
    for the tick (not one per register), and the registers not yet asked are not asked:
    at most the requests already in flight when the refusal came are sent after it."""
    journal = Counted(3, EMPTY, REFUSED)
    report, events = tick(tmp_path / "w.duckdb", journal)
    results = journal_results(report)
    failed = [error for status, error in results if status == "failed"]
    assert len(results) == len(REGISTERS)
    assert len(failed) >= len(REGISTERS) - 3
    assert all("refused the credentials" in error for error in failed)
    errors = [e for e in events if e["log_level"] == "error" and e["event"] == "partition_failed"]
    refusals = [e for e in errors if "refused the credentials" in str(e["error"])]
    # a few requests may have been in flight when the first 401 came: each of those says it
    assert 1 <= len(refusals) <= _settings().concurrency
    assert journal.sent <= 3 + _settings().concurrency
    assert sum(r.status == "failed" for r in report.results) == len(failed)


def test_a_refusal_holds_for_a_while_and_then_the_credentials_are_asked_again() -> None:
    """After a 401 the client sends nothing until the hold has passed (RefusedEarlier, saying
    when and why), then asks again: a refusal in passing (the vendor's auth service
    restarting) ends with the hold instead of failing the process for good."""
    answers = [REFUSED, httpx.Response(200, json={"items": []})]
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return answers[min(len(sent), len(answers)) - 1]

    with client_of(handler) as client:
        client.refusal_hold = 0.3
        with pytest.raises(AuthError) as first:
            ask(client)
        assert not isinstance(first.value, RefusedEarlier)
        with pytest.raises(RefusedEarlier, match=r"not sent: .*HTTP 401: Unauthorized") as held:
            ask(client, partition="q")
        assert (held.value.partition, held.value.status) == ("q", 401)
        assert len(sent) == 1
        time.sleep(0.35)
        assert ask(client) == {"items": []}
        assert len(sent) == 2


def test_a_403_holds_nothing_back() -> None:
    """A 403 is about one resource (a site these credentials may not read), not the account:
    the next request is sent as usual."""
    answers = [
        httpx.Response(403, json={"statuscode": 403, "errortext": "Forbidden"}),
        httpx.Response(200, json={"items": []}),
    ]
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return answers[len(sent) - 1]

    with client_of(handler) as client:
        with pytest.raises(AuthError):
            ask(client)
        assert ask(client) == {"items": []}
        assert len(sent) == 2


def test_a_down_api_costs_one_attempt_a_request_until_it_answers() -> None:
    """Once `DOWN_AFTER_EXHAUSTED` requests in a row spent every attempt, each request gets
    one attempt, saying why; the first answer gives every request its whole budget back."""
    status = {"down": True}
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return DOWN if status["down"] else httpx.Response(200, json={"items": []})

    with client_of(handler, http_max_attempts=4) as client:
        for _ in range(DOWN_AFTER_EXHAUSTED):
            with pytest.raises(RetryBudgetExhausted, match="after 4 attempts"):
                ask(client)
        assert len(sent) == 4 * DOWN_AFTER_EXHAUSTED
        with pytest.raises(RetryBudgetExhausted, match="after its one attempt"):
            ask(client)
        assert len(sent) == 4 * DOWN_AFTER_EXHAUSTED + 1
        status["down"] = False
        assert ask(client) == {"items": []}
        status["down"] = True
        with pytest.raises(RetryBudgetExhausted, match="after 4 attempts"):
            ask(client)


def test_an_answer_between_exhausted_requests_keeps_the_budget() -> None:
    """Requests that spend their attempts with answers between them (one register's page
    that keeps failing while the others load) never cut anyone's budget."""
    sent: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request.url.path)
        if request.url.path.endswith("/bad.json"):
            return DOWN
        return httpx.Response(200, json={"items": []})

    with client_of(handler, http_max_attempts=3) as client:
        for _ in range(DOWN_AFTER_EXHAUSTED * 2):
            with pytest.raises(RetryBudgetExhausted, match="after 3 attempts"):
                client.get_json(Api.V2, "/bad.json", stream="s")
            assert ask(client) == {"items": []}
        assert sent.count("/v2/accounts/1500/bad.json") == 3 * DOWN_AFTER_EXHAUSTED * 2


def test_a_down_api_fails_a_tick_of_many_registers_in_few_requests(tmp_path: Path) -> None:
    """A journal API that is down fails each register, having sent a few registers their
    whole budget and the rest one attempt each, instead of every register its whole budget."""
    journal = Counted(0, DOWN, DOWN)
    report, _events = tick(tmp_path / "w.duckdb", journal)
    results = journal_results(report)
    assert [status for status, _ in results] == ["failed"] * len(REGISTERS)
    attempts = _settings().http_max_attempts
    # in flight together, up to `concurrency` requests may each spend their whole budget
    # before the streak is seen
    most = (DOWN_AFTER_EXHAUSTED + _settings().concurrency) * attempts + len(REGISTERS)
    assert journal.sent <= most < len(REGISTERS) * attempts


def test_a_request_the_clients_close_cuts_short_is_not_retried_nor_warned() -> None:
    """A request in flight when the client is closed (a listing read ahead by a tick whose
    warehouse failed) fails quietly with StopRequested: no `request_retry` line follows the
    command's one-line error, and nothing is sent again."""
    sent: list[httpx.Request] = []
    inside, closed = threading.Event(), threading.Event()

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        inside.set()
        closed.wait(5)
        raise httpx.ReadError("[Errno 9] Bad file descriptor", request=request)

    client = client_of(handler)
    raised: list[BaseException] = []

    def ask_in_thread() -> None:
        try:
            ask(client)
        except Exception as exc:
            raised.append(exc)

    with capture_logs() as events:
        thread = threading.Thread(target=ask_in_thread)
        thread.start()
        assert inside.wait(5)
        client.close()
        closed.set()
        thread.join(5)
    assert [type(e) for e in raised] == [StopRequested]
    assert len(sent) == 1
    assert [e for e in events if e["event"] == "request_retry"] == []
