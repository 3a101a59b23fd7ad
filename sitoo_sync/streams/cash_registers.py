"""Cash registers (`GET {v2}/sites/{siteid}/cashregisters.json`): start/num pages to totalcount.

A full refresh of every site in SITOO_SITE_IDS each tick, registered or not
(`includenotregistered=true`). `list_registers` also serves other streams that need the
registers: journal entries (one partition per register) and the POS z-report split.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sitoo_sync.api.client import Api, SitooClient
from sitoo_sync.normalize import cash_registers as normalize
from sitoo_sync.streams.base import Stream
from sitoo_sync.streams.cursors import OffsetPages, WindowContext

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
    client: SitooClient, site_ids: Sequence[int], *, stream: str, concurrency: int = 1
) -> list[Mapping[str, Any]]:
    """Every register of every site, registered or not: the same pages the stream reads.

    Up to `concurrency` sites are listed at once; the result keeps the order of `site_ids`
    and any site's failure is raised.
    """

    def one_site(site: int) -> list[Mapping[str, Any]]:
        path = PATH.format(siteid=site)

        def fetch_raw(params: Mapping[str, str | int]) -> Any:
            return client.get_json(Api.V2, path, params, stream=stream, partition=f"site-{site}")

        context = WindowContext(fetch=_unused, fetch_raw=fetch_raw)
        return [
            item
            for window in PAGES.windows(context, None)
            for item in window.records
            if isinstance(item, Mapping)
        ]

    workers = min(concurrency, len(site_ids))
    if workers > 1:
        with ThreadPoolExecutor(workers, thread_name_prefix="sitoo-sites") as pool:
            per_site = list(pool.map(one_site, site_ids))
    else:
        per_site = [one_site(site) for site in site_ids]
    return [register for registers in per_site for register in registers]


def _unused(params: Mapping[str, str | int]) -> list[Any]:
    raise NotImplementedError("OffsetPages reads whole responses")
