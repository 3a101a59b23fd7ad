"""POS z-reports (`GET {zreports}/pos-z-reports`): every register's closing reports.

The contract (API_CONTRACT.md, "POS z-reports"): a bare array sorted by `dateadded`
ascending, at most 500 items, inclusive `dateaddedfrom`/`dateaddedto`, no paging parameter,
key (`registerid`, `zreportid`). Every **assumed** rule about it lives in this declaration.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from sitoo_sync.api.client import Api, SitooClient
from sitoo_sync.errors import FatalApiError, SitooSyncError
from sitoo_sync.log import get_logger
from sitoo_sync.normalize import pos_z_reports as normalize
from sitoo_sync.normalize.journal_entries import JOURNAL_RECEIPTS
from sitoo_sync.streams.base import Stream, TickSources
from sitoo_sync.streams.cursors import TimeWindows
from sitoo_sync.streams.partitions import REGISTER_LISTING, Partitioning, listed_sites
from sitoo_sync.streams.site_zones import read_site_zones

log = get_logger(__name__)
ZONE_CONFIG = "/store-z-reports/config"


#: What a site zone that failed to read costs, said where it is logged.
WAIT = (
    "z-reports of the site's registers whose journal names no zone fail this tick and are "
    "read again next tick, rather than load with a business_date in another zone"
)
#: What a site that has no zone costs.
NO_SITE_ZONE = "z-reports of the site's registers whose journal names no zone take the account's"


def register_zones(sources: TickSources) -> Mapping[str, Any]:
    """Once per tick: each register's zone, as its latest journal receipt names it (one
    query), each site's zone (streams/site_zones.py), and the account's store z-report zone
    (one GET) for the registers of a site without one.

    Any may be missing (journals not synced yet, aggregation not configured): the business
    day then falls back as `business_timezone` says. A site zone the API failed to give
    this tick makes the reports that need it wait (`normalize.ZONES_UNREAD`): the site's
    zone is what a register's own is before its journal is loaded, so a first backfill
    dates the z-reports as a later one does.
    """
    latest = sources.latest(JOURNAL_RECEIPTS, "registerid", "timezone", "datecreated")
    zones = {r: z for r, z in latest.items() if normalize.known_zone(z)}
    sites = read_site_zones(sources, "pos_z_reports", wait=WAIT, no_zone=NO_SITE_ZONE)
    account = None
    try:
        config = sources.get(Api.ZREPORTS, ZONE_CONFIG)
        if isinstance(config, Mapping):
            account = normalize.known_zone(config.get("time_zone"))
    except SitooSyncError as exc:  # 404 without aggregation: no account-wide zone
        log.info("zone_config_unavailable", stream="pos_z_reports", error=exc.message)
    return {
        normalize.REGISTER_ZONES: zones,
        normalize.SITE_ZONES: dict(sites.zones),
        normalize.ZONES_UNREAD: sites.unread,
        normalize.ACCOUNT_ZONE: account,
    }


def other_sites(client: SitooClient, sites: Sequence[int], *, stream: str) -> list[int]:
    """The sites `/sites.json` lists (its `eshopid`s, all pages) that `sites` does not name;
    none when the listing is refused (credentials without it: the old split stands)."""

    try:
        listed = listed_sites(client, stream=stream)
    except FatalApiError as exc:
        log.info("split_sites_unlisted", stream=stream, error=exc.message)
        return []
    return sorted(listed - set(sites))


@dataclass(frozen=True)
class AccountRegisters(Partitioning):
    """Every register of the account, whatever SITOO_SITE_IDS names: `/pos-z-reports` is
    read account-wide, so a crowded second split only by the configured sites' registers
    (and those its first page shows) would step past the other sites' reports in it."""

    def list_all(
        self, client: SitooClient, sites: Sequence[int], *, stream: str, concurrency: int = 1
    ) -> list[str]:
        """The registers of `sites` (any failure raised), then those of the account's other
        sites; one of those that refuses its listing (403, 404: these credentials may not
        read it) adds none."""
        registers = super().list_all(client, sites, stream=stream, concurrency=concurrency)

        def listed(site: int) -> list[str]:
            try:
                return self.list_site(client, site, stream=stream)
            except FatalApiError as exc:
                log.info("split_site_unlisted", stream=stream, site=site, error=exc.message)
                return []

        others = other_sites(client, sites, stream=stream)
        with ThreadPoolExecutor(max(1, min(concurrency, len(others)))) as pool:
            return registers + [r for found in pool.map(listed, others) for r in found]


POS_Z_REPORTS = Stream(
    name="pos_z_reports",
    api=Api.ZREPORTS,
    path="/pos-z-reports",
    cursor=TimeWindows(
        field="dateadded",
        lo_param="dateaddedfrom",
        hi_param="dateaddedto",
        cap=500,
        split_param="registerid",
        # a register deleted from the listing still has its reports: each site the
        # crowded second shows is asked for too, which finds them
        check_param="eshopid",
    ),
    tables=normalize.TABLES,
    normalize=normalize.normalize_window,
    description="POS z-reports (register closings) with VAT, product group, payment, "
    "discount, sales tax and currency children",
    # A second too crowded for one page is read register by register, every site's.
    split_by=AccountRegisters("register", listing=REGISTER_LISTING),
    tick_context=register_zones,
)
