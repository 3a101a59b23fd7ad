"""POS z-reports (`GET {zreports}/pos-z-reports`): every register's closing reports.

The contract (API_CONTRACT.md, "POS z-reports"): a bare array sorted by `dateadded`
ascending, at most 500 items, inclusive `dateaddedfrom`/`dateaddedto`, no paging parameter,
key (`registerid`, `zreportid`). Every **assumed** rule about it lives in this declaration.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sitoo_sync.api.client import Api
from sitoo_sync.errors import SitooSyncError
from sitoo_sync.log import get_logger
from sitoo_sync.normalize import pos_z_reports as normalize
from sitoo_sync.normalize.journal_entries import JOURNAL_RECEIPTS
from sitoo_sync.streams.base import Stream, TickSources
from sitoo_sync.streams.cursors import TimeWindows
from sitoo_sync.streams.partitions import REGISTERS

log = get_logger(__name__)
ZONE_CONFIG = "/store-z-reports/config"


def register_zones(sources: TickSources) -> Mapping[str, Any]:
    """Once per tick: each register's zone, as its latest journal receipt names it (one
    query), and the account's store z-report zone (one GET) for the registers without one.

    Either may be missing (journals not synced, aggregation not configured): the business
    day then falls back as `business_timezone` says.
    """
    latest = sources.latest(JOURNAL_RECEIPTS, "registerid", "timezone", "datecreated")
    zones = {r: z for r, z in latest.items() if normalize.known_zone(z)}
    account = None
    try:
        config = sources.get(Api.ZREPORTS, ZONE_CONFIG)
        if isinstance(config, Mapping):
            account = normalize.known_zone(config.get("time_zone"))
    except SitooSyncError as exc:  # 404 without aggregation: no account-wide zone
        log.info("zone_config_unavailable", stream="pos_z_reports", error=exc.message)
    return {normalize.REGISTER_ZONES: zones, normalize.ACCOUNT_ZONE: account}


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
    ),
    tables=normalize.TABLES,
    normalize=normalize.normalize_window,
    description="POS z-reports (register closings) with VAT, product group, payment, "
    "discount, sales tax and currency children",
    split_by=REGISTERS,  # a second too crowded for one page is read register by register
    tick_context=register_zones,
)
