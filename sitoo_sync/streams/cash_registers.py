"""Cash registers (`GET {v2}/sites/{siteid}/cashregisters.json`): start/num pages to totalcount.

A full refresh of every site in SITOO_SITE_IDS each tick, registered or not
(`includenotregistered=true`). The same listing is how the tick finds the register
partitions of other streams (streams/partitions.py `REGISTERS`).
"""

from __future__ import annotations

from sitoo_sync.api.client import Api
from sitoo_sync.normalize import cash_registers as normalize
from sitoo_sync.streams.base import Stream
from sitoo_sync.streams.partitions import REGISTER_LISTING, SITES

CASH_REGISTERS = Stream(
    name="cash_registers",
    api=Api.V2,
    path=REGISTER_LISTING.path,
    cursor=REGISTER_LISTING.pages,
    tables=normalize.TABLES,
    normalize=normalize.normalize_window,
    description="Cash registers of every configured site; vanished ones are kept and marked",
    default_schedule="1h",
    partitions=SITES,
    full_refresh=True,
    partition_column="site_id",
)
