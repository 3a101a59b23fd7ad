"""The HTTP client: Basic auth, timeouts, pooling, and a bounded retry policy.

The transport is the seam: tests pass `httpx.MockTransport(handler)`; the CLI passes nothing
and gets a pooled HTTPS transport. JSON is parsed by msgspec with every number that has a
fraction or an exponent read as a Decimal, so no float ever appears in a payload that
sitoo_sync reads (msgspec: 2.4x the standard library's `json.loads(parse_float=Decimal)` on
a journal page, which was a quarter of a backfill's CPU).
"""

from __future__ import annotations

import itertools
import math
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Any

import httpx
import msgspec

from sitoo_sync import __version__
from sitoo_sync.errors import (
    ApiError,
    AuthError,
    FatalApiError,
    RetriableError,
    RetryBudgetExhausted,
    StopRequested,
)
from sitoo_sync.json_text import mended
from sitoo_sync.log import get_logger
from sitoo_sync.settings import Settings

log = get_logger(__name__)

RETRIABLE_STATUS = frozenset({429, 500, 502, 503, 504})
#: JSON with exact numbers: a fraction or exponent becomes a Decimal, an integer an int.
_JSON = msgspec.json.Decoder(float_hook=Decimal)
#: Fetching threads per connection pool (see ShardedTransport).
SHARD_THREADS = 4


class Api(StrEnum):
    """The Sitoo APIs, each with its own base URL."""

    V2 = "v2"
    JOURNALS = "journals"
    ZREPORTS = "zreports"


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try: attempts in all, exponential backoff with full jitter, caps."""

    max_attempts: int = 6
    backoff_base: float = 0.5
    backoff_max: float = 60.0
    retry_after_max: float = 300.0

    def delay(self, attempt: int, retry_after: float | None, rand: float) -> float:
        """Seconds to wait before attempt `attempt + 1`; `Retry-After` wins when given."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.retry_after_max)
        ceiling = min(self.backoff_max, self.backoff_base * (2.0 ** (attempt - 1)))
        return ceiling * rand


def _decode_json(content: bytes) -> Any:
    """A response body as JSON; one whose only fault is text no UTF-8 string can hold (a
    cut emoji's lone surrogate escape) is read with U+FFFD in its place (json_text.py)."""
    try:
        return _JSON.decode(content)
    except msgspec.DecodeError:
        repaired = mended(content)
        if repaired == content:
            raise
        return _JSON.decode(repaired)


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None  # an HTTP date: rare for APIs; fall back to our own backoff
    return seconds if math.isfinite(seconds) else None  # "nan", "inf": no number of seconds


def _error_text(response: httpx.Response) -> str:
    """The vendor's `errortext` when the body has one, else the reason phrase."""
    try:
        body = response.json()
    except ValueError:
        return response.reason_phrase or "error"
    if isinstance(body, dict) and isinstance(body.get("errortext"), str):
        return str(body["errortext"])
    return response.reason_phrase or "error"


def _public_url(url: httpx.URL) -> str:
    """The URL as it may be shown: without any user:password part."""
    return str(url.copy_with(username=None, password=None))


def _location(response: httpx.Response) -> str:
    """Where a redirect points, as it may be shown (relative to the request, no password)."""
    try:
        return _public_url(response.request.url.join(response.headers.get("Location", "")))
    except httpx.InvalidURL:
        return "an unreadable Location"


class ShardedTransport(httpx.BaseTransport):
    """Several connection pools, each thread sending on one of them, all with one TLS context.

    httpcore's pool takes one lock around handing out and taking back every connection, and
    under it looks at each of its connections (a poll() on every idle one). With one pool
    for SITOO_CONCURRENCY=32, a no-op journal tick over 201 registers found its fetching
    threads queued on that lock, and a request cost 1.9-2.4 ms of CPU against 1.3-1.7 ms
    with a pool per thread. A thread keeps its pool, so its connections stay warm.
    """

    def __init__(self, pools: Sequence[httpx.BaseTransport]) -> None:
        self._pools = list(pools)
        self._next = itertools.count()
        self._local = threading.local()

    @classmethod
    def over(cls, shards: int, connections: int) -> ShardedTransport:
        """`shards` HTTPS pools. Each may open up to `connections` at once (the tick's slots
        bound the requests in flight of all of them) and keeps its share of them when idle."""
        tls = httpx.create_ssl_context()  # loading the CA bundle once: ~30 ms of CPU each
        idle = -(-connections // shards) + 1
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=idle)
        return cls([httpx.HTTPTransport(verify=tls, limits=limits) for _ in range(shards)])

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Send `request` on this thread's pool."""
        shard: int | None = getattr(self._local, "shard", None)
        if shard is None:
            shard = self._local.shard = next(self._next) % len(self._pools)
        return self._pools[shard].handle_request(request)

    def close(self) -> None:
        """Close every pool's connections."""
        for pool in self._pools:
            pool.close()


class SitooClient:
    """GET JSON from the Sitoo APIs with retries; counts requests for tests and metrics."""

    def __init__(
        self,
        http: httpx.Client,
        bases: Mapping[Api, str],
        policy: RetryPolicy,
        *,
        sleep: Callable[[float], None] = time.sleep,
        rand: Callable[[], float] = random.random,
        stop: threading.Event | None = None,
    ) -> None:
        self._http = http
        self._bases = dict(bases)
        self.policy = policy
        self._sleep = sleep
        self._stop = stop
        self._rand = rand
        self.requests: Counter[str] = Counter()
        self.retries: Counter[str] = Counter()
        self.partition_requests: Counter[tuple[str, str | None]] = Counter()
        #: Attempts that found no server to talk to (the connection itself failed).
        self.unconnected: Counter[str] = Counter()

    def url(self, api: Api, path: str) -> str:
        """The absolute URL of `path` on `api`."""
        return self._bases[api] + path

    def get_json(
        self,
        api: Api,
        path: str,
        params: Mapping[str, str | int] | None = None,
        *,
        stream: str,
        partition: str | None = None,
        on_body: Callable[[int], None] | None = None,
        decode: Callable[[bytes], Any] | None = None,
    ) -> Any:
        """GET and decode JSON, retrying 429/5xx/transport errors within the policy.

        `on_body(wire_bytes)` is called with each good response's size before it is
        decoded: the in-flight buffer waits there until the parsed page fits. `decode`
        replaces the plain JSON decoding (a stream's typed records); ValueError is bad JSON.
        """
        url = self.url(api, path)
        attempt = 0
        while True:
            attempt += 1
            try:
                return self._attempt(
                    url, params, stream=stream, partition=partition, on_body=on_body, decode=decode
                )
            except RetriableError as exc:
                # A stop request ends the retries too, not only their waits: retried at
                # once, a hanging API's requests ran out their timeouts past the stop's
                # deadline, and a failing one was sent the rest of its attempts back to back.
                spent = attempt >= self.policy.max_attempts
                if spent or self._stopping():
                    raise _gave_up(exc, attempt, stopped=not spent) from exc
                wait = self.policy.delay(attempt, exc.retry_after, self._rand())
                self.retries[stream] += 1
                log.warning(
                    "request_retry",
                    stream=stream,
                    partition=partition,
                    url=exc.url,
                    status=exc.status,
                    reason=exc.message,
                    attempt=attempt,
                    wait_seconds=round(wait, 3),
                )
                self._sleep(wait)
                if self._stopping():  # the stop cut the wait short: no attempt after it
                    raise _gave_up(exc, attempt, stopped=True) from exc

    def _stopping(self) -> bool:
        return self._stop is not None and self._stop.is_set()

    def _attempt(
        self,
        url: str,
        params: Mapping[str, str | int] | None,
        *,
        stream: str,
        partition: str | None,
        on_body: Callable[[int], None] | None = None,
        decode: Callable[[bytes], Any] | None = None,
    ) -> Any:
        self.requests[stream] += 1
        self.partition_requests[(stream, partition)] += 1
        ctx: dict[str, Any] = {"stream": stream, "partition": partition}
        try:
            response = self._http.get(url, params=params)
        except httpx.TransportError as exc:
            if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
                self.unconnected[stream] += 1
            shown = _public_url(httpx.URL(url, params=params))
            raise RetriableError(f"{type(exc).__name__}: {exc}", url=shown, **ctx) from exc
        status = response.status_code
        if 300 <= status < 400:  # not followed: it would carry the credentials elsewhere
            shown = _public_url(response.request.url)
            raise FatalApiError(
                f"redirected to {_location(response)}; check SITOO_API_BASE_URL, "
                "SITOO_JOURNALS_BASE_URL and SITOO_ZREPORTS_BASE_URL (https, current paths)",
                url=shown,
                status=status,
                **ctx,
            )
        if status < 400:
            if on_body is not None:
                on_body(len(response.content))
            try:
                return (decode or _decode_json)(response.content)
            except ValueError as exc:
                # A proxy's HTML error page or a truncated body: worth another try.
                shown = _public_url(response.request.url)
                raise RetriableError(
                    f"invalid JSON: {exc}", url=shown, status=status, **ctx
                ) from exc
        # Only an error shows the URL: building it costs ~0.5 ms a request.
        shown = _public_url(response.request.url)
        if status in (401, 403):
            raise AuthError(
                "Sitoo refused the credentials; check SITOO_API_ID and SITOO_API_PASSWORD "
                f"({_error_text(response)})",
                url=shown,
                status=status,
                **ctx,
            )
        if status in RETRIABLE_STATUS:
            raise RetriableError(
                _error_text(response),
                retry_after=_retry_after(response),
                url=shown,
                status=status,
                **ctx,
            )
        raise FatalApiError(_error_text(response), url=shown, status=status, **ctx)

    def close(self) -> None:
        """Close the pooled connections."""
        self._http.close()

    def __enter__(self) -> SitooClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _gave_up(exc: RetriableError, attempts: int, *, stopped: bool) -> ApiError:
    """The error a request ends with that is not tried again: StopRequested when a stop
    ended its retries, RetryBudgetExhausted when its attempts ran out (that first)."""
    error = StopRequested if stopped else RetryBudgetExhausted
    why = "a stop was requested" if stopped else "gave up"
    return error(
        f"{why} after {attempts} attempts: {exc.message}",
        stream=exc.stream,
        partition=exc.partition,
        url=exc.url,
        status=exc.status,
    )


def make_client(
    settings: Settings,
    transport: httpx.BaseTransport | None = None,
    *,
    sleep: Callable[[float], None] = time.sleep,
    rand: Callable[[], float] = random.random,
    stop: threading.Event | None = None,
) -> SitooClient:
    """A SitooClient for `settings`; pass `transport` to stub the network in tests. Once
    `stop` is set a failed request is not tried again."""
    api_id, password = settings.require_credentials()
    # One connection per register fetched at once (SITOO_CONCURRENCY), at least 16, in a
    # pool per four fetching threads (see ShardedTransport).
    connections = max(16, settings.concurrency)
    timeout = httpx.Timeout(settings.http_timeout_seconds, connect=10.0)
    if transport is None and settings.concurrency > SHARD_THREADS:
        transport = ShardedTransport.over(settings.concurrency // SHARD_THREADS, connections)
    http = httpx.Client(
        auth=httpx.BasicAuth(api_id, password),
        timeout=timeout,
        limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
        headers={"User-Agent": f"sitoo-sync/{__version__}", "Accept": "application/json"},
        transport=transport,
        follow_redirects=False,
    )
    bases = {
        Api.V2: settings.v2_base_url,
        Api.JOURNALS: settings.journals_base_url,
        Api.ZREPORTS: settings.z_reports_base_url,
    }
    policy = RetryPolicy(
        max_attempts=settings.http_max_attempts,
        backoff_base=settings.http_backoff_base_seconds,
        backoff_max=settings.http_backoff_max_seconds,
    )
    return SitooClient(http, bases, policy, sleep=sleep, rand=rand, stop=stop)


__all__ = ["Api", "ApiError", "RetryPolicy", "SitooClient", "make_client"]
