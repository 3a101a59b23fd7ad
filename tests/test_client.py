"""The HTTP client's retry policy, auth handling and JSON decoding, on httpx.MockTransport."""

from __future__ import annotations

import threading
from collections.abc import Callable
from decimal import Decimal

import httpx
import pytest
from pydantic import SecretStr

from sitoo_sync.api.client import Api, RetryPolicy, ShardedTransport, SitooClient, make_client
from sitoo_sync.errors import AuthError, FatalApiError, RetryBudgetExhausted
from sitoo_sync.settings import Settings
from sitoo_sync.streams.base import items_of

Handler = Callable[[httpx.Request], httpx.Response]


def client_with(handler: Handler, sleeps: list[float], **settings: object) -> SitooClient:
    values: dict[str, object] = {
        "api_id": "1500-7",
        "api_password": SecretStr("s3cret-pw"),
        "http_max_attempts": 4,
        "http_backoff_base_seconds": 1.0,
        "http_backoff_max_seconds": 3.0,
    }
    values.update(settings)
    return make_client(
        Settings(**values),  # type: ignore[arg-type]  # typed via pydantic validation
        transport=httpx.MockTransport(handler),
        sleep=sleeps.append,
        rand=lambda: 1.0,
    )


def scripted(*responses: httpx.Response | Exception) -> tuple[Handler, list[httpx.Request]]:
    seen: list[httpx.Request] = []
    queue = list(responses)

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        item = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(item, Exception):
            raise item
        return item

    return handler, seen


def test_retry_after_is_honoured_then_succeeds() -> None:
    """A 429 with Retry-After waits that long plus the jittered backoff, then the retry's
    body is returned."""
    handler, seen = scripted(
        httpx.Response(429, headers={"Retry-After": "7"}, json={"statuscode": 429}),
        httpx.Response(200, json=[{"zreportid": 1}]),
    )
    sleeps: list[float] = []
    with client_with(handler, sleeps) as client:
        body = client.get_json(Api.ZREPORTS, "/pos-z-reports", {"dateaddedfrom": 0}, stream="s")
    assert body == [{"zreportid": 1}]
    assert sleeps == [8.0]  # Retry-After 7 s + the first backoff (base 1 s x rand 1.0)
    assert len(seen) == 2
    assert client.retries["s"] == 1


def test_server_errors_back_off_exponentially_until_the_budget_is_spent() -> None:
    """5xx is retried with doubling, capped waits; after max attempts the error names it all."""
    handler, seen = scripted(
        httpx.Response(503, json={"statuscode": 503, "errortext": "maintenance"})
    )
    sleeps: list[float] = []
    with (
        client_with(handler, sleeps) as client,
        pytest.raises(RetryBudgetExhausted) as info,
    ):
        client.get_json(Api.ZREPORTS, "/pos-z-reports", {"dateaddedfrom": 5}, stream="pos")
    assert len(seen) == 4
    assert sleeps == [1.0, 2.0, 3.0]  # base 1s doubling, capped at 3s (rand pinned to 1.0)
    err = info.value
    assert err.status == 503
    assert err.stream == "pos"
    assert err.url is not None
    assert "/pos-z-reports?dateaddedfrom=5" in err.url
    assert "s3cret-pw" not in str(err)
    assert "maintenance" in str(err)


def test_dropped_connections_are_retried() -> None:
    """Transport errors (a dropped connection) count as retriable."""
    handler, seen = scripted(
        httpx.RemoteProtocolError("Server disconnected without sending a response."),
        httpx.Response(200, json={"items": []}),
    )
    sleeps: list[float] = []
    with client_with(handler, sleeps) as client:
        body = client.get_json(Api.V2, "/sites/1/cashregisters.json", stream="s")
    assert body == {"items": []}
    assert len(seen) == 2


@pytest.mark.parametrize("status", [401, 403])
def test_auth_failures_are_not_retried(status: int) -> None:
    """401/403 fail at once with a message that names the settings to check."""
    handler, seen = scripted(
        httpx.Response(status, json={"statuscode": status, "errortext": "Authorization failed"})
    )
    sleeps: list[float] = []
    with client_with(handler, sleeps) as client, pytest.raises(AuthError) as info:
        client.get_json(Api.ZREPORTS, "/pos-z-reports", stream="pos")
    assert len(seen) == 1
    assert sleeps == []
    assert "SITOO_API_ID" in str(info.value)
    assert info.value.status == status


def test_bad_request_is_fatal_without_retry() -> None:
    """A 400 is not retried: asking again would get the same answer."""
    handler, seen = scripted(httpx.Response(400, json={"statuscode": 400, "errortext": "bad"}))
    with client_with(handler, []) as client, pytest.raises(FatalApiError):
        client.get_json(Api.ZREPORTS, "/pos-z-reports", stream="pos")
    assert len(seen) == 1


def test_requests_carry_basic_auth_and_the_account_base_url() -> None:
    """Every request uses Basic auth, and the v2 base has the API ID's account number."""
    handler, seen = scripted(httpx.Response(200, json=[]))
    with client_with(handler, []) as client:
        client.get_json(Api.ZREPORTS, "/pos-z-reports", stream="pos")
    request = seen[0]
    assert str(request.url) == "https://api.mysitoo.com/v2/accounts/1500/pos-z-reports"
    expected = httpx.BasicAuth("1500-7", "s3cret-pw")
    assert (
        request.headers["Authorization"]
        == next(expected.auth_flow(request)).headers["Authorization"]
    )


def test_numbers_with_a_fraction_decode_as_decimal_never_float() -> None:
    """JSON numbers such as a VAT rate of 12.5 arrive as Decimal."""
    handler, _ = scripted(httpx.Response(200, content=b'[{"vatvalue": 12.5, "n": 3}]'))
    with client_with(handler, []) as client:
        body = client.get_json(Api.ZREPORTS, "/pos-z-reports", stream="pos")
    assert body == [{"vatvalue": Decimal("12.5"), "n": 3}]
    assert type(body[0]["vatvalue"]) is Decimal


def test_invalid_json_is_retried_as_a_transient_fault() -> None:
    """A truncated or HTML body on 200 is retried, then returned once it is JSON."""
    handler, seen = scripted(
        httpx.Response(200, content=b"<html>proxy error</html>"),
        httpx.Response(200, json=[]),
    )
    with client_with(handler, []) as client:
        assert client.get_json(Api.ZREPORTS, "/pos-z-reports", stream="pos") == []
    assert len(seen) == 2


def test_retry_policy_delay_honours_caps() -> None:
    """Retry-After is capped, and jittered backoff never exceeds its ceiling."""
    policy = RetryPolicy(backoff_base=0.5, backoff_max=4.0, retry_after_max=30.0)
    assert policy.delay(1, 3600.0, 0.5) == 30.0
    assert policy.delay(10, None, 1.0) == 4.0
    assert policy.delay(2, None, 0.5) == 0.5


@pytest.mark.parametrize(
    ("payload", "expected"),
    [([1, 2], [1, 2]), ({"items": [3]}, [3]), ({"items": [], "next": None}, []), ({}, [])],
)
def test_tolerant_reader_accepts_a_bare_array_or_an_envelope(
    payload: object, expected: list[int]
) -> None:
    """A response may be a bare array or an `items` envelope; both give the records."""
    assert items_of(payload) == expected


def test_unexpected_response_shape_is_an_error() -> None:
    """A string or an object without items is not silently read as 'no data'."""
    with pytest.raises(ValueError, match="unexpected response shape"):
        items_of("oops")
    with pytest.raises(ValueError, match="unexpected response shape"):
        items_of({"error": "x"})


class _Pool(httpx.MockTransport):
    """A stand-in pool: answers 200 and remembers which threads sent on it."""

    def __init__(self) -> None:
        super().__init__(self._answer)
        self.threads: set[int] = set()
        self.closed = False

    def _answer(self, request: httpx.Request) -> httpx.Response:
        self.threads.add(threading.get_ident())
        return httpx.Response(200, json=[])

    def close(self) -> None:
        self.closed = True


def test_each_thread_sends_on_one_pool_and_the_threads_spread_over_all_pools() -> None:
    """Eight threads over four pools: each thread always uses the same pool, two per pool."""
    pools = [_Pool() for _ in range(4)]
    start = threading.Barrier(8)

    def fetch(http: httpx.Client) -> None:
        start.wait(timeout=10)  # eight distinct threads, not one reused
        for _ in range(5):
            http.get("https://api.mysitoo.com/v2/accounts/1500/sites.json").raise_for_status()

    with httpx.Client(transport=ShardedTransport(pools)) as http:
        threads = [threading.Thread(target=fetch, args=(http,)) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=10)
    assert [len(p.threads) for p in pools] == [2, 2, 2, 2]
    assert len(set().union(*(p.threads for p in pools))) == 8
    assert all(p.closed for p in pools)


def test_a_client_for_many_registers_at_once_shards_its_connections() -> None:
    """SITOO_CONCURRENCY=16 gets four pools sharing one TLS context; 4 keeps one pool."""
    settings = {"api_id": "1500-7", "api_password": SecretStr("s3cret-pw")}
    with make_client(Settings(**settings, concurrency=16)) as client:  # type: ignore[arg-type]
        transport = client._http._transport  # what make_client chose
        assert isinstance(transport, ShardedTransport)
        pools = transport._pools
        assert len(pools) == 4
        contexts = {id(p._pool._ssl_context) for p in pools}  # type: ignore[attr-defined]
        assert len(contexts) == 1
    with make_client(Settings(**settings, concurrency=4)) as client:  # type: ignore[arg-type]
        assert not isinstance(client._http._transport, ShardedTransport)


@pytest.mark.parametrize(
    ("answers", "journals", "fatal"),
    [
        ([httpx.ConnectError("refused")], None, True),
        ([httpx.Response(503), httpx.Response(503), httpx.ConnectTimeout("t")], None, False),
        ([httpx.ReadTimeout("slow")], None, False),
        ([httpx.ConnectError("refused")], "https://journals.elsewhere.example/v3", False),
    ],
    ids=["never-connected", "answered-then-lost", "slow", "journals-on-another-host"],
)
def test_an_api_out_of_reach_ends_one_tick_only_when_no_attempt_connected_on_its_one_host(
    answers: list[httpx.Response | Exception], journals: str | None, fatal: bool
) -> None:
    """`run --once`'s credentials check stops the tick only when none of its attempts could
    connect and every API is on the check's host; an API that answered (503) or is slow,
    or journals elsewhere, are left to the tick's streams (a warning)."""
    from sitoo_sync.errors import ApiError
    from sitoo_sync.start_checks import check_credentials

    handler, _ = scripted(*answers)
    bases = {"api_base_url": "https://api.example/v2/accounts/{account_id}"}
    bases["journals_base_url"] = journals or "https://api.example/v3"
    client = client_with(handler, [], **bases)
    settings = Settings(api_id="1500-7", api_password=SecretStr("pw"), **bases)  # type: ignore[arg-type]
    if fatal:
        with pytest.raises(ApiError, match=r"^cannot reach the Sitoo API, nothing was synced"):
            check_credentials(settings, client, unreachable_is_fatal=True)
    else:
        check_credentials(settings, client, unreachable_is_fatal=True)  # goes on
    check_credentials(settings, client, unreachable_is_fatal=False)  # the service: goes on


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_a_redirect_fails_at_once_naming_where_it_points(status: int) -> None:
    """A redirect (an http:// base URL sent on to https://, an endpoint moved) is not
    followed, since it would carry the credentials elsewhere, nor retried as invalid JSON
    six times over: it fails at once, saying where it points and which settings to check."""
    handler, seen = scripted(
        httpx.Response(
            status,
            headers={"Location": "https://elsewhere.example/v2/accounts/1500/pos-z-reports"},
            content=b"<html>Moved</html>",
        )
    )
    sleeps: list[float] = []
    with client_with(handler, sleeps) as client, pytest.raises(FatalApiError) as info:
        client.get_json(Api.ZREPORTS, "/pos-z-reports", stream="pos")
    assert len(seen) == 1
    assert sleeps == []
    assert info.value.status == status
    assert "https://elsewhere.example/v2/accounts/1500/pos-z-reports" in str(info.value)
    assert "BASE_URL" in str(info.value)


@pytest.mark.parametrize("header", ["nan", "NaN", "-inf", "inf"])
def test_a_retry_after_that_is_no_number_of_seconds_falls_back_to_the_backoff(
    header: str,
) -> None:
    """A Retry-After of "nan" or an infinity (float() reads them) waits the policy's own
    backoff instead of crashing time.sleep with NaN or waiting the cap for "inf"."""
    handler, seen = scripted(
        httpx.Response(503, headers={"Retry-After": header}, json={"statuscode": 503}),
        httpx.Response(200, json=[]),
    )
    sleeps: list[float] = []
    with client_with(handler, sleeps) as client:
        assert client.get_json(Api.ZREPORTS, "/pos-z-reports", stream="pos") == []
    assert len(seen) == 2
    assert sleeps == [1.0]  # the first backoff: base 1.0 x rand 1.0


def test_a_page_with_a_lone_surrogate_escape_decodes_with_a_replacement_character() -> None:
    """A REST page whose text was cut in the middle of an emoji (`"\\ud83d"`, valid JSON that
    msgspec refuses) or holds bytes that are not UTF-8 decodes at once with U+FFFD in their
    place, instead of being retried as invalid JSON and refused on every tick."""
    body = b'{"items": [{"productid": 1, "title": "Tack! \\ud83d", "note": "Caf\xe9"}]}'
    handler, seen = scripted(httpx.Response(200, content=body))
    with client_with(handler, []) as client:
        page = client.get_json(Api.V2, "/sites/1/products.json", stream="products")
    assert len(seen) == 1
    assert page == {"items": [{"productid": 1, "title": "Tack! \ufffd", "note": "Caf\ufffd"}]}


def test_the_suite_never_reaches_the_real_sitoo() -> None:
    """A request to a vendor host (a default URL a test failed to replace) fails at once
    inside the tests instead of going to the network (conftest's `_no_real_sitoo`)."""
    with pytest.raises(httpx.ConnectError, match="tests never call the real Sitoo"):
        httpx.get("https://api.mysitoo.com/v2/accounts/1/sites.json")
