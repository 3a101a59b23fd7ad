"""Cash registers (`GET {v2}/sites/{siteid}/cashregisters.json`): start/num pages to totalcount.

Used to enumerate every register of the configured sites, e.g. to split a second of
z-reports that alone fills a page.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from sitoo_sync.api.client import Api, SitooClient

PATH = "/sites/{siteid}/cashregisters.json"
PAGE_SIZE = 100  # **assumed** maximum `num` for REST v2 (API_CONTRACT.md)


def list_registers(
    client: SitooClient, site_ids: Sequence[int], *, stream: str
) -> Iterator[Mapping[str, Any]]:
    """Every register of every site, registered or not, paging until totalcount."""
    for site in site_ids:
        start = 0
        while True:
            payload = client.get_json(
                Api.V2,
                PATH.format(siteid=site),
                {"start": start, "num": PAGE_SIZE, "includenotregistered": "true"},
                stream=stream,
                partition=f"site-{site}",
            )
            items = payload.get("items") if isinstance(payload, Mapping) else payload
            items = items if isinstance(items, list) else []
            total = payload.get("totalcount") if isinstance(payload, Mapping) else None
            for item in items:
                if isinstance(item, Mapping):
                    yield item
            start += len(items)
            if not items or (isinstance(total, int) and start >= total):
                break
