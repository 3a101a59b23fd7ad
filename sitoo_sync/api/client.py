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
from datetime import UTC, datetime
from decimal import Decimal
from email.utils import parsedate_to_datetime
from enum import StrEnum
from typing import Any

import httpx
import msgspec

from sitoo_sync import __version__
from sitoo_sync.errors import (
    ApiError,
    AuthError,
    FatalApiError,
    RefusedEarlier,
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
#: The most a response body may hold, decoded: a full journal page is 0.43 MB. A body is
#: read whole before the tick's `Buffer` counts it, so this bounds what a gzip bomb or an
#: endless body costs a fetching thread (passed by at most one decoded read, ~64 KB
#: inflated) instead of letting it take the host's memory.
MAX_BODY_BYTES = 64 * 1024 * 1024
#: A request's whole exchange may last this many read timeouts (SITOO_HTTP_TIMEOUT_SECONDS
#: bounds each read only: a body trickled a byte per read would never end).
DEADLINE_TIMEOUTS = 4
#: After Sitoo refused the credentials (401), the client sends nothing to that API (its base
#: URL: the journals API is a service of its own) for this long: each request fails at once
#: (`RefusedEarlier`). Otherwise every partition of a tick asks, is refused and says so (300
#: registers: 300 error lines, and 300 refused logins that an account's lockout may count),
#: where credentials that are wrong stay wrong until the process is given new ones. After
#: it a request asks again: a refusal in passing ends.
REFUSAL_HOLD_SECONDS = 60.0
#: Requests to one API (base URL) in a row that spent every attempt, with no answer from it
#: between, after which each request to it gets one attempt until one is answered. An API
#: that is down would otherwise cost each partition its whole retry budget (six attempts and
#: ~15 s of backoff: a 300-register tick at concurrency 4 spent ~20 minutes and 1,500
#: warnings saying one thing); the first answer gives every request its budget back.
DOWN_AFTER_EXHAUSTED = 3
#: An error text as shown in a log line or a partition's error, at most.
_ERROR_TEXT_CHARS = 200


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
        """Seconds to wait before attempt `attempt + 1`: the jittered backoff, after the
        `Retry-After` when given. The jitter goes on top of it: concurrent partitions told
        the same Retry-After by one burst of 429s would otherwise all come back at once."""
        ceiling = min(self.backoff_max, self.backoff_base * (2.0 ** (attempt - 1)))
        if retry_after is not None:
            return min(max(retry_after, 0.0) + ceiling * rand, self.retry_after_max)
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


def _retry_after(response: httpx.Response, now: Callable[[], datetime]) -> float | None:
    """`Retry-After` in seconds: a number of them, or an HTTP date (seconds from `now`);
    None when it says neither, or a negative or endless wait (the own backoff then)."""
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        until = _seconds_until(value, now)
        # A date passed already: at once (plus the jitter), as the server said.
        return None if until is None else max(until, 0.0)
    # "nan", "inf", or a negative number of seconds (no HTTP date is): no wait it means.
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def _seconds_until(value: str, now: Callable[[], datetime]) -> float | None:
    """Seconds from `now` to an HTTP date, or None when `value` is none."""
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000": UTC, as HTTP dates always are
        when = when.replace(tzinfo=UTC)
    return (when - now()).total_seconds()


def _error_text(response: httpx.Response, content: bytes) -> str:
    """The vendor's `errortext` when the body has one, else the reason phrase: one line,
    at most `_ERROR_TEXT_CHARS` (a server may put a page of HTML or a stack trace there)."""
    try:
        body = _JSON.decode(content)
    except (ValueError, msgspec.MsgspecError):
        body = None
    text = body.get("errortext") if isinstance(body, dict) else None
    if not isinstance(text, str) or not text.strip():
        text = response.reason_phrase or "error"
    line = " ".join(text.split())
    if len(line) > _ERROR_TEXT_CHARS:
        line = line[: _ERROR_TEXT_CHARS - 3] + "..."
    return line


class _BodyTooLarge(Exception):
    """A response body passed `MAX_BODY_BYTES`."""


class _DeadlinePassed(Exception):
    """A response was still being read at its request's deadline."""


def _body(response: httpx.Response, deadline: float, limit: int) -> bytes:
    """The decoded body of a streamed `response`, read until `deadline` (time.monotonic)
    and `limit` bytes at most. A read may wait the read timeout; the deadline is checked
    after each, so no trickling body keeps a request beyond it by more than one."""
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _BodyTooLarge(int(declared))
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > limit:
            raise _BodyTooLarge(size)
        chunks.append(chunk)
        if time.monotonic() > deadline:
            raise _DeadlinePassed(size)
    return b"".join(chunks)


def _public_url(url: httpx.URL) -> str:
    """The URL as it may be shown: without any user:password part."""
    return str(url.copy_with(username=None, password=None))


def _location(response: httpx.Response) -> str:
    """Where a redirect points, as it may be shown (relative to the request, no password)."""
    try:
        return _public_url(response.request.url.join(response.headers.get("Location", "")))
    except httpx.InvalidURL:
        return "an unreadable Location"


def _redirected(response: httpx.Response, ctx: dict[str, Any]) -> None:
    """A redirect fails: followed, it would carry the credentials elsewhere."""
    raise FatalApiError(
        f"redirected to {_location(response)}; check SITOO_API_BASE_URL, "
        "SITOO_JOURNALS_BASE_URL and SITOO_ZREPORTS_BASE_URL (https, current paths)",
        url=_public_url(response.request.url),
        status=response.status_code,
        **ctx,
    )


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
        deadline: float | None = None,
        max_body_bytes: int = MAX_BODY_BYTES,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._http = http
        self._bases = dict(bases)
        self.policy = policy
        #: Seconds one attempt's exchange may last in all: by default `DEADLINE_TIMEOUTS`
        #: read timeouts of `http`.
        self.deadline = deadline or DEADLINE_TIMEOUTS * (http.timeout.read or 30.0)
        self.max_body_bytes = max_body_bytes
        self._clock = clock  # what an HTTP-date Retry-After is counted from
        self._sleep = sleep
        self._stop = stop
        self._rand = rand
        self._closed = False
        self.requests: Counter[str] = Counter()
        self.retries: Counter[str] = Counter()
        #: Seconds after a 401 that nothing is sent (REFUSAL_HOLD_SECONDS).
        self.refusal_hold = REFUSAL_HOLD_SECONDS
        #: By API base URL: when (time.monotonic) and why it last refused the credentials.
        #: Kept apart, as are the streaks below: the journals API is another host, whose
        #: refusal or outage says nothing of the REST API's (and held every stream back).
        self._refused: dict[str, tuple[float, str]] = {}
        #: By API base URL: its requests in a row that spent every attempt (see
        #: DOWN_AFTER_EXHAUSTED).
        self._exhausted: Counter[str] = Counter()
        self._exhausted_lock = threading.Lock()
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
        url, base = self.url(api, path), self._bases[api]
        self._not_refused(base, url, params, stream=stream, partition=partition)
        down = self._exhausted[base] >= DOWN_AFTER_EXHAUSTED
        attempts = 1 if down else self.policy.max_attempts
        attempt = 0
        while True:
            attempt += 1
            try:
                return self._attempt(
                    url,
                    params,
                    base=base,
                    stream=stream,
                    partition=partition,
                    on_body=on_body,
                    decode=decode,
                )
            except RetriableError as exc:
                # A stop request ends the retries too, not only their waits: retried at
                # once, a hanging API's requests ran out their timeouts past the stop's
                # deadline, and a failing one was sent the rest of its attempts back to back.
                if self._closed:  # its connection closed under it: our doing, not the API's
                    raise _gave_up(exc, attempt, stopped=True, down=down) from exc
                spent = attempt >= attempts
                if spent or self._stopping():
                    if spent:
                        with self._exhausted_lock:
                            self._exhausted[base] += 1
                    raise _gave_up(exc, attempt, stopped=not spent, down=down) from exc
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
                    raise _gave_up(exc, attempt, stopped=True, down=down) from exc

    def _stopping(self) -> bool:
        """A stop was requested, or the client was closed: a request that failed then (its
        connection closed under it) is not tried again, nor warned about."""
        return self._closed or (self._stop is not None and self._stop.is_set())

    def _not_refused(
        self,
        base: str,
        url: str,
        params: Mapping[str, str | int] | None,
        *,
        stream: str,
        partition: str | None,
    ) -> None:
        """Raise RefusedEarlier, sending nothing, within `refusal_hold` seconds of a 401 from
        the API at `base`."""
        refused = self._refused.get(base)
        if refused is None:
            return
        at, why = refused
        ago = time.monotonic() - at
        if ago >= self.refusal_hold:
            return
        raise RefusedEarlier(
            f"not sent: Sitoo refused the credentials {ago:.0f} s before ({why})",
            url=_public_url(httpx.URL(url, params=params)),
            status=401,
            stream=stream,
            partition=partition,
        )

    def _attempt(
        self,
        url: str,
        params: Mapping[str, str | int] | None,
        *,
        base: str,
        stream: str,
        partition: str | None,
        on_body: Callable[[int], None] | None = None,
        decode: Callable[[bytes], Any] | None = None,
    ) -> Any:
        self.requests[stream] += 1
        self.partition_requests[(stream, partition)] += 1
        ctx: dict[str, Any] = {"stream": stream, "partition": partition}
        deadline = time.monotonic() + self.deadline
        try:
            with self._http.stream("GET", url, params=params) as response:
                if 300 <= response.status_code < 400:
                    _redirected(response, ctx)  # its body is not read
                content = _body(response, deadline, self.max_body_bytes)
        except httpx.RequestError as exc:
            # A transport failure, or a body its Content-Encoding cannot decode (a
            # DecodingError is no TransportError: uncaught, it ended the tick).
            if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
                self.unconnected[stream] += 1
            shown = _public_url(httpx.URL(url, params=params))
            message = " ".join(f"{type(exc).__name__}: {exc}".split())
            raise RetriableError(message, url=shown, **ctx) from exc
        except _DeadlinePassed as exc:
            raise RetriableError(
                f"the response took longer than {self.deadline:g} s in all "
                f"({exc.args[0]} bytes read)",
                url=_public_url(response.request.url),
                status=response.status_code,
                **ctx,
            ) from None
        except _BodyTooLarge as exc:
            raise FatalApiError(
                f"the response body passed {self.max_body_bytes} bytes ({exc.args[0]}) "
                "and was not read further",
                url=_public_url(response.request.url),
                status=response.status_code,
                **ctx,
            ) from None
        return self._answer(response, content, ctx, on_body, decode, base=base)

    def _answer(
        self,
        response: httpx.Response,
        content: bytes,
        ctx: dict[str, Any],
        on_body: Callable[[int], None] | None,
        decode: Callable[[bytes], Any] | None,
        *,
        base: str,
    ) -> Any:
        """The decoded body of a response read whole from the API at `base`, or the error
        its status means."""
        status = response.status_code
        if self._exhausted[base] and status not in RETRIABLE_STATUS:
            with self._exhausted_lock:  # an answer: the API is up, each request has its budget
                self._exhausted[base] = 0
        if status < 400:
            if on_body is not None:
                on_body(len(content))
            try:
                return (decode or _decode_json)(content)
            except ValueError as exc:
                # A proxy's HTML error page or a truncated body: worth another try.
                shown = _public_url(response.request.url)
                raise RetriableError(
                    f"invalid JSON: {exc}", url=shown, status=status, **ctx
                ) from exc
        # Only an error shows the URL: building it costs ~0.5 ms a request.
        shown = _public_url(response.request.url)
        if status in (401, 403):
            why = _error_text(response, content)
            if status == 401:  # the account's credentials (403: this resource's permission)
                self._refused[base] = (time.monotonic(), f"HTTP 401: {why}")
            raise AuthError(
                f"Sitoo refused the credentials; check SITOO_API_ID and SITOO_API_PASSWORD ({why})",
                url=shown,
                status=status,
                **ctx,
            )
        if status in RETRIABLE_STATUS:
            raise RetriableError(
                _error_text(response, content),
                retry_after=_retry_after(response, self._clock),
                url=shown,
                status=status,
                **ctx,
            )
        raise FatalApiError(_error_text(response, content), url=shown, status=status, **ctx)

    def close(self) -> None:
        """Close the pooled connections. A request still in flight (a listing read ahead
        by a tick that failed) fails then, quietly: after a command's one-line error, no
        retry warning of it follows."""
        self._closed = True
        self._http.close()

    def __enter__(self) -> SitooClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _gave_up(exc: RetriableError, attempts: int, *, stopped: bool, down: bool) -> ApiError:
    """The error a request ends with that is not tried again: StopRequested when a stop
    ended its retries, RetryBudgetExhausted when its attempts ran out (that first); `down`:
    it had one attempt, the requests before it having spent all theirs."""
    error = StopRequested if stopped else RetryBudgetExhausted
    why = "a stop was requested" if stopped else "gave up"
    tried = f"{attempts} attempt{'' if attempts == 1 else 's'}"
    if down and not stopped:
        tried = (
            f"its one attempt (the {DOWN_AFTER_EXHAUSTED} requests before it spent every "
            "attempt: one each until the API answers)"
        )
    return error(
        f"{why} after {tried}: {exc.message}",
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
