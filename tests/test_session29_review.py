"""A second adversarial review of session 29's changes: the client's refusal hold and down
mode (api/client.py), the service's refusal (service.py), and the fence on (cursor,
windows_loaded) (warehouse/dialects.py, commit.py).

A test marked `xfail(strict=True)` shows a defect this review found and left to the module's
owner: it passes, and so fails as XPASS, once the defect is fixed, and its mark then goes.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from sitoo_sync.api.client import DOWN_AFTER_EXHAUSTED, Api, SitooClient, make_client
from sitoo_sync.errors import AuthError, RetryBudgetExhausted
from sitoo_sync.settings import Settings

JOURNALS_HOST = "journals.example"
REFUSED = httpx.Response(401, json={"statuscode": 401, "errortext": "Unauthorized"})
DOWN = httpx.Response(503, json={"statuscode": 503, "errortext": "Service Unavailable"})
ITEMS: dict[str, list[object]] = {"items": []}


def client_of(handler: Any, **overrides: Any) -> SitooClient:
    """A client over `handler` whose journals API lives on a host of its own, as Sitoo's."""
    values: dict[str, Any] = {
        "api_id": "1500-1",
        "api_password": SecretStr("pw"),
        "site_ids": [1],
        "journals_base_url": f"https://{JOURNALS_HOST}/v3",
        "http_max_attempts": 3,
        "http_backoff_base_seconds": 0.0,
        "http_backoff_max_seconds": 0.0,
    }
    values.update(overrides)
    settings = Settings(**values)
    return make_client(settings, httpx.MockTransport(handler), sleep=lambda _s: None)


# ---- the client: one API's trouble is not another's ------------------------------------


def test_a_401_from_the_journals_host_holds_back_no_request_to_the_rest_api() -> None:
    """A refusal by the journals API (a host of its own) holds back that API's requests
    only: the REST v2 API, which accepts the credentials, is still asked."""

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == JOURNALS_HOST:
            return httpx.Response(401, content=REFUSED.content)
        return httpx.Response(200, json=ITEMS)

    with client_of(handler) as client:
        with pytest.raises(AuthError):
            client.get_json(Api.JOURNALS, "/journal", stream="journal_entries", partition="r")
        assert client.get_json(Api.V2, "/sites.json", stream="sites") == ITEMS


def test_a_down_journals_host_leaves_the_rest_api_its_retries() -> None:
    """Once the journals API's requests spent every attempt in a row, a REST v2 request
    still gets its whole budget: a 503 in passing there is retried, not the end of it."""
    v2: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == JOURNALS_HOST:
            return httpx.Response(503, content=DOWN.content)
        v2.append(1)
        return (
            httpx.Response(503, content=DOWN.content)
            if len(v2) == 1
            else httpx.Response(200, json=ITEMS)
        )

    with client_of(handler) as client:
        for _ in range(DOWN_AFTER_EXHAUSTED):
            with pytest.raises(RetryBudgetExhausted, match="after 3 attempts"):
                client.get_json(Api.JOURNALS, "/journal", stream="journal_entries")
        assert client.get_json(Api.V2, "/sites.json", stream="sites") == ITEMS
        assert len(v2) == 2
