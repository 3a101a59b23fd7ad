"""The HTTP client against a hostile API and network: trickled, endless, compressed and
malformed bodies, odd Retry-After values, throttling bursts, and paging that loops.

The network cases run against small socket servers on loopback started here; the rest on
httpx.MockTransport. Nothing here talks to the real Sitoo.
"""

from __future__ import annotations

import gzip
import itertools
import random
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import httpx
import pytest
import structlog
from pydantic import SecretStr

from sitoo_sync.api.client import Api, RetryPolicy, SitooClient, make_client
from sitoo_sync.errors import (
    FatalApiError,
    RetryBudgetExhausted,
    SitooSyncError,
    StuckWindowError,
)
from sitoo_sync.normalize.journal_pages import decode_page
from sitoo_sync.settings import Settings
from sitoo_sync.streams.cursors import CursorPages, OffsetPages, WindowContext

PASSWORD = "s3cret-pw"
Handler = Callable[[httpx.Request], httpx.Response]
Serve = Callable[[socket.socket, int], None]


def settings_for(base: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "api_id": "1500-7",
        "api_password": SecretStr(PASSWORD),
        "api_base_url": base,
        "journals_base_url": base,
        "http_max_attempts": 2,
        "http_backoff_base_seconds": 0.0,
    }
    values.update(overrides)
    return Settings(**values)


def mock_client(handler: Handler, sleeps: list[float] | None = None, **kwargs: Any) -> SitooClient:
    http = httpx.Client(
        transport=httpx.MockTransport(handler), auth=httpx.BasicAuth("1500-7", PASSWORD)
    )
    bases = {Api.V2: "https://api.test/v2", Api.JOURNALS: "https://api.test/v3"}
    policy = RetryPolicy(max_attempts=kwargs.pop("max_attempts", 2), backoff_base=1.0)
    sleep = (sleeps if sleeps is not None else []).append
    return SitooClient(http, bases, policy, sleep=sleep, rand=lambda: 1.0, **kwargs)


@contextmanager
def socket_server(serve: Serve) -> Iterator[str]:
    """A loopback server calling `serve(connection, n)` for its n-th connection (from 0), each
    on a thread of its own; yields its base URL."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    counter = itertools.count()
    done = threading.Event()

    def handle(conn: socket.socket, n: int) -> None:
        try:
            serve(conn, n)
        except OSError:
            pass  # the client hung up: what several of these tests make it do
        finally:
            conn.close()

    def accept() -> None:
        while not done.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=handle, args=(conn, next(counter)), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        done.set()
        listener.close()


def read_request(conn: socket.socket) -> bytes:
    """One request's head, as sent (these tests send GETs: no body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def ok(body: bytes, *, close: bool = False) -> bytes:
    extra = b"Connection: close\r\n" if close else b""
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
    return head + extra + b"Content-Length: %d\r\n\r\n" % len(body) + body


def test_a_body_trickled_a_byte_at_a_time_ends_at_the_request_deadline() -> None:
    """A server that sends its body one byte per read, each within the read timeout, cannot
    keep a request past its deadline (a few read timeouts): the attempt fails, one line,
    naming the deadline, with no password in it or in any log line."""
    stop = threading.Event()

    def trickle(conn: socket.socket, _n: int) -> None:
        read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
        deadline = time.monotonic() + 12  # unbounded, the request took all of this
        while not stop.is_set() and time.monotonic() < deadline:
            conn.sendall(b" ")
            time.sleep(0.05)

    with socket_server(trickle) as base:
        settings = settings_for(base, http_timeout_seconds=0.5, http_max_attempts=1)
        started = time.monotonic()
        try:
            with (
                structlog.testing.capture_logs() as events,
                make_client(settings) as client,
                pytest.raises(RetryBudgetExhausted) as info,
            ):
                client.get_json(Api.V2, "/sites.json", stream="sites")
        finally:
            stop.set()
        elapsed = time.monotonic() - started
    assert elapsed < 6, elapsed  # deadline 4 x 0.5 s, plus one read at most
    assert "longer than 2 s in all" in str(info.value)
    assert "\n" not in str(info.value)
    assert PASSWORD not in str(info.value) + repr(events)


def test_a_body_shorter_than_its_content_length_fails_in_one_read_timeout() -> None:
    """A Content-Length larger than the body, then silence: the read timeout ends the
    attempt, which is retried, and the request fails as a one-line API error."""

    def short(conn: socket.socket, _n: int) -> None:
        read_request(conn)
        conn.sendall(b'HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n{"items": [')
        time.sleep(3)

    with socket_server(short) as base:
        settings = settings_for(base, http_timeout_seconds=0.3)
        started = time.monotonic()
        with make_client(settings) as client, pytest.raises(RetryBudgetExhausted) as info:
            client.get_json(Api.V2, "/sites.json", stream="sites")
    assert time.monotonic() - started < 2.5
    assert "ReadTimeout" in str(info.value)
    assert client.requests["sites"] == 2


def test_a_connection_reset_mid_body_is_retried_and_each_response_closing_is_harmless() -> None:
    """A connection reset halfway through a body is retried on a new connection; a server
    that closes every connection after its response answers each request in turn."""
    body = b'{"items": [{"eshopid": 1}], "totalcount": 1}'

    def serve(conn: socket.socket, n: int) -> None:
        read_request(conn)
        if n == 0:
            conn.sendall(ok(body)[:-10])
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return  # closed with linger 0: an RST
        conn.sendall(ok(body, close=True))

    with socket_server(serve) as base, make_client(settings_for(base)) as client:
        answers = [client.get_json(Api.V2, "/sites.json", stream="sites") for _ in range(5)]
    assert answers == [{"items": [{"eshopid": 1}], "totalcount": 1}] * 5
    assert client.requests["sites"] == 6


def test_a_gzip_bomb_is_refused_before_it_is_inflated_whole() -> None:
    """A small gzip body that inflates past the body limit fails the request at once (no
    retry: it would come back the same), and is never handed to the buffer as a page."""
    bomb = gzip.compress(b" " * (8 * 1024 * 1024))
    seen: list[int] = []

    def handler(_request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"Content-Encoding": "gzip"}, content=bomb)

    client = mock_client(handler, max_body_bytes=1024 * 1024)
    with pytest.raises(FatalApiError) as info:
        client.get_json(Api.V2, "/sites.json", stream="sites", on_body=seen.append)
    assert "passed 1048576 bytes" in str(info.value)
    assert seen == []
    assert client.requests["sites"] == 1


def test_a_body_whose_content_length_passes_the_limit_is_not_read() -> None:
    """A declared Content-Length past the body limit fails before any of the body is read."""
    client = mock_client(lambda _r: httpx.Response(200, content=b"[" + b"1," * 600 + b"1]"))
    client.max_body_bytes = 1000
    with pytest.raises(FatalApiError) as info:
        client.get_json(Api.V2, "/sites.json", stream="sites")
    assert "(1203)" in str(info.value)


def test_a_body_its_content_encoding_cannot_decode_is_a_retried_api_error() -> None:
    """A body that says gzip and is not is an API error (retried, then a one-line failure of
    its partition), never httpx's DecodingError, which no partition catches."""
    sleeps: list[float] = []

    def handler(_request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"Content-Encoding": "gzip"}, content=b"not gzip")

    client = mock_client(handler, sleeps)
    with pytest.raises(RetryBudgetExhausted) as info:
        client.get_json(Api.V2, "/sites.json", stream="sites")
    assert "DecodingError" in str(info.value)
    assert len(sleeps) == 1


@pytest.mark.parametrize("decode", [None, decode_page])
def test_a_page_with_a_byte_order_mark_decodes(decode: Callable[[bytes], Any] | None) -> None:
    """A UTF-8 byte order mark before the JSON (RFC 8259 lets a reader ignore it) is
    dropped, for plain pages and typed journal pages, instead of failing every tick."""
    body = b'\xef\xbb\xbf{"items": [], "totalcount": 0}'
    client = mock_client(lambda _r: httpx.Response(200, content=body))
    page = client.get_json(Api.V2, "/sites.json", stream="sites", decode=decode)
    assert client.requests["sites"] == 1
    assert page is not None


def test_an_error_text_is_one_short_line() -> None:
    """A vendor error text of many lines (a stack trace, a page of HTML) reaches the error
    and the retry's log line as one line of at most 200 characters."""
    text = "Internal error\n  at Foo.bar()\r\n" + "x" * 5000

    def handler(_request: httpx.Request) -> httpx.Response:
        return httpx.Response(500, json={"statuscode": 500, "errortext": text})

    with structlog.testing.capture_logs() as events, pytest.raises(RetryBudgetExhausted) as info:
        mock_client(handler).get_json(Api.V2, "/sites.json", stream="sites")
    assert "\n" not in str(info.value)
    assert "Internal error at Foo.bar() xxx" in info.value.message
    assert len(info.value.message) < 260
    reasons = [e["reason"] for e in events if e["event"] == "request_retry"]
    assert reasons
    assert all("\n" not in r and len(r) <= 200 for r in reasons)


def test_a_retry_after_given_as_an_http_date_waits_until_then() -> None:
    """Retry-After as an HTTP date waits from the client's clock until that date (plus the
    jitter), not the client's own short backoff."""
    now = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
    later = format_datetime(datetime(2026, 3, 1, 12, 0, 30, tzinfo=UTC), usegmt=True)
    answers = iter([httpx.Response(429, headers={"Retry-After": later}), httpx.Response(200)])
    sleeps: list[float] = []
    client = mock_client(lambda _r: next(answers), sleeps, clock=lambda: now)
    with pytest.raises(RetryBudgetExhausted):  # the 200 has no JSON body: invalid, given up
        client.get_json(Api.V2, "/sites.json", stream="sites")
    assert sleeps == [31.0]  # 30 s to the date + the first backoff (1 s x rand 1.0)


def test_a_negative_retry_after_falls_back_to_the_backoff() -> None:
    """A negative Retry-After is no wait the server asked for: the jittered backoff is used,
    not an immediate retry."""
    answers = iter([httpx.Response(503, headers={"Retry-After": "-30"}), httpx.Response(200)])
    sleeps: list[float] = []
    client = mock_client(lambda _r: next(answers), sleeps)
    with pytest.raises(RetryBudgetExhausted):
        client.get_json(Api.V2, "/sites.json", stream="sites")
    assert sleeps == [1.0]


def test_partitions_throttled_together_do_not_come_back_together() -> None:
    """32 partitions told the same Retry-After by one burst of 429s wait at least that long,
    each a different jitter on top, so their retries do not arrive as one burst again."""
    seen: set[str] = set()
    lock = threading.Lock()

    def handler(request: httpx.Request) -> httpx.Response:
        with lock:
            first = request.url.params["p"] not in seen
            seen.add(request.url.params["p"])
        if first:
            return httpx.Response(429, headers={"Retry-After": "2"})
        return httpx.Response(200, json=[])

    sleeps: list[float] = []
    client = mock_client(handler, sleeps)
    client._rand = random.Random(7).random
    for p in range(32):
        client.get_json(Api.V2, "/sites.json", {"p": p}, stream="s", partition=str(p))
    assert len(sleeps) == 32
    assert min(sleeps) >= 2.0
    assert max(sleeps) - min(sleeps) > 0.5  # spread over the first backoff's second
    assert len(set(sleeps)) == 32


def test_a_next_token_that_names_another_host_stays_a_parameter_on_the_api_host() -> None:
    """A `next` token that is a URL of another host is sent back as a query parameter to the
    configured API host: the credentials never go anywhere else."""
    hosts: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        hosts.append(request.url.host)
        return httpx.Response(200, json={"items": []})

    client = mock_client(handler)
    client.get_json(Api.JOURNALS, "/j", {"next": "https://evil.example/steal"}, stream="j")
    assert hosts == ["api.test"]


def journal_pages(answer: Callable[[str | None], dict[str, Any]]) -> tuple[int, int]:
    """Walk a journal-like CursorPages query over `answer(next token)`: (windows, requests),
    failing the test at 50 requests (a query that never ends)."""
    calls = itertools.count(1)
    asked = 0

    def fetch_raw(params: Any) -> Any:
        nonlocal asked
        asked = next(calls)
        assert asked < 50, "the query never ends"
        return answer(params.get("next"))

    pages = CursorPages(
        partition_param="registerid",
        time_field="t",
        lo_param="from",
        next_param="next",
        next_field="next",
        fixed=(("num", 2),),
    )
    now = datetime(2026, 3, 1, tzinfo=UTC)
    ctx = WindowContext(fetch_raw=fetch_raw, partition="r1", now=now)
    windows = list(pages.windows(ctx, None))
    return len(windows), asked


def test_a_next_token_that_loops_back_ends_the_query() -> None:
    """Tokens that lead in a circle (A, B, A, ...) end the query once a token comes round
    again; each page is read once."""

    def answer(token: str | None) -> dict[str, Any]:
        step = {None: ("A", 1), "A": ("B", 2), "B": ("A", 3)}[token]
        return {"items": [{"id": step[1], "t": 1000 + step[1]}], "next": step[0]}

    windows, requests = journal_pages(answer)
    assert (windows, requests) == (3, 3)


def test_the_same_page_under_ever_new_tokens_ends_the_query() -> None:
    """An API that ignores the token and answers the same page with a fresh token each
    time (or empty pages with fresh tokens) ends the query at the first repeat."""
    fresh = itertools.count()

    def same(_token: str | None) -> dict[str, Any]:
        return {"items": [{"id": 1, "t": 1000}], "next": f"t{next(fresh)}"}

    def empty(_token: str | None) -> dict[str, Any]:
        return {"items": [], "next": f"t{next(fresh)}"}

    assert journal_pages(same) == (2, 2)
    assert journal_pages(empty) == (2, 2)


def test_a_listing_whose_empty_page_comes_short_of_its_totalcount_fails() -> None:
    """An empty page while the listing's own totalcount says more are left fails the
    partition once what it showed is loaded (StuckWindowError), so the rows it never
    showed are not marked missing as if deleted."""

    def fetch_raw(params: Any) -> Any:
        start = int(params["start"])
        return {"items": list(range(start, min(start + 100, 200))), "totalcount": 250}

    windows = OffsetPages().windows(WindowContext(fetch_raw=fetch_raw), None)
    assert len(next(windows).records) == 100
    assert len(next(windows).records) == 100
    assert next(windows).records == []  # loaded as shown; then the listing fails
    with pytest.raises(StuckWindowError, match="showed 200 of its totalcount 250"):
        next(windows)


@pytest.mark.parametrize(
    "body",
    [
        b"<html><body>502 Bad Gateway</body></html>",
        b'{"items": [{"id": 1',
        b'{"items": [], "total": NaN}',
        b'{"items": [], "total": Infinity}',
    ],
)
def test_a_200_that_is_no_json_fails_in_one_line_as_an_api_error(body: bytes) -> None:
    """A 200 with HTML, truncated JSON or NaN/Infinity literals (not JSON) is retried and
    then fails as one line of SitooSyncError, which its partition reports: no traceback."""
    client = mock_client(lambda _r: httpx.Response(200, content=body))
    with pytest.raises(SitooSyncError) as info:
        client.get_json(Api.V2, "/sites.json", stream="sites")
    assert "invalid JSON" in str(info.value)
    assert "\n" not in str(info.value)
