"""POS payment types (`GET {v2}/sites/{siteid}/pospaymenttypes.json`): one bare array.

The endpoint answers a bare array with no paging (fact sheet 7.1), so it is read in one
request per site (`WholeListing`: start/num pages would never see a totalcount to stop at);
types the listing no longer shows get `missing_since` and are kept.
"""

from __future__ import annotations

from sitoo_sync.api.client import Api
from sitoo_sync.normalize import pos_payment_types as normalize
from sitoo_sync.streams.base import Stream
from sitoo_sync.streams.cursors_listing import WholeListing
from sitoo_sync.streams.partitions import SITES

POS_PAYMENT_TYPES = Stream(
    name="pos_payment_types",
    api=Api.V2,
    path="/sites/{siteid}/pospaymenttypes.json",
    cursor=WholeListing(),
    tables=normalize.TABLES,
    normalize=normalize.normalize_window,
    description="POS payment types of every configured site; vanished ones are kept and marked",
    default_schedule="1h",
    partitions=SITES,
    full_refresh=True,
    partition_column="site_id",
)
