"""Sites (`GET {v2}/sites.json`): every site of the account, in one request.

The endpoint takes no query parameters (fact sheet 9), so it is read whole each tick
(`WholeListing`) with the account as its one partition; a site the listing no longer shows
gets `missing_since`. Its `eshopid` is every per-site path's `{siteid}`: this table is how
SITOO_SITE_IDS can default to every site of the account.
"""

from __future__ import annotations

from sitoo_sync.api.client import Api
from sitoo_sync.normalize import sites as normalize
from sitoo_sync.streams.base import Stream
from sitoo_sync.streams.cursors_listing import WholeListing
from sitoo_sync.streams.partitions import ACCOUNT, SITE_LIST

SITES = Stream(
    name="sites",
    api=Api.V2,
    path=SITE_LIST,
    cursor=WholeListing(),
    tables=normalize.TABLES,
    normalize=normalize.normalize_window,
    description="Sites (webshops) of the account; vanished ones are kept and marked",
    default_schedule="1h",
    partitions=ACCOUNT,
    full_refresh=True,
    partition_column="account_id",
)
