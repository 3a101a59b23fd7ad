"""Cash registers (`GET {v2}/sites/{siteid}/cashregisters.json`): start/num pages to totalcount.

A full refresh of every site in SITOO_SITE_IDS each tick, registered or not
(`includenotregistered=true`). `list_registers` also serves other streams that need the
registers: journal entries (one partition per register) and the POS z-report split.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from sitoo_sync.api.client import Api, SitooClient
from sitoo_sync.normalize import cash_registers as normalize
from sitoo_sync.streams.base import Stream
from sitoo_sync.streams.cursors import OffsetPages

PATH = "/sites/{siteid}/cashregisters.json"
PAGES = OffsetPages(fixed=(("includenotregistered", "true"),))

CASH_REGISTERS = Stream(
    name="cash_registers",
    api=Api.V2,
    path=PATH,
    key=("registerid",),
    cursor=PAGES,
    tables=normalize.TABLES,
    normalize=normalize.normalize_window,
    description="Cash registers of every configured site; vanished ones are kept and marked",
    default_schedule="1h",
    partitions="site",
    full_refresh=True,
    partition_column="site_id",
)


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
                {
                    **dict(PAGES.fixed),
                    PAGES.start_param: start,
                    PAGES.num_param: PAGES.page_size,
                },
                stream=stream,
                partition=f"site-{site}",
            )
            items = payload.get("items") if isinstance(payload, Mapping) else payload
            items = items if isinstance(items, list) else []
            total = payload.get(PAGES.total_field) if isinstance(payload, Mapping) else None
            for item in items:
                if isinstance(item, Mapping):
                    yield item
            start += len(items)
            if not items or (isinstance(total, int) and start >= total):
                break
