"""Orders (`GET {v2}/orders.json?eshopid=<site>`): keyset on `orderid`, per configured site.

The account-wide endpoint, filtered by the partition's site (`eshopid`; the site-level
`/sites/{siteid}/orders.json` is deprecated, fact sheet 2.1). There is no modified-date
filter (2.2), so every rule about what to read again lives in this declaration (**assumed**
where the fact sheet infers, 2.9): a walk by `orderid` (a late offline order keeps its old
`orderdate` but gets a new id), re-reads of the orders that can still change
(normalize/orders.py `changeable`), and a trailing span of ids read again every tick.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from sitoo_sync.api.client import Api
from sitoo_sync.log import get_logger
from sitoo_sync.normalize import orders as normalize
from sitoo_sync.streams.base import Stream, TickSources
from sitoo_sync.streams.cursors_keyset import Keyset
from sitoo_sync.streams.options import Option
from sitoo_sync.streams.partitions import SITES
from sitoo_sync.streams.site_zones import read_site_zones

log = get_logger(__name__)


#: What a site zone that failed to read costs, said where it is logged.
WAIT = (
    "the site's orders partition fails this tick when it meets an order without "
    "pos-timezone (a web order), and reads it again next tick, rather than load it without "
    "a business_date"
)
#: What a site zone that does not exist costs (the site's settings are not there, or name
#: none): retrying would not help.
NO_DAY = (
    "orders without pos-timezone (web orders) get no business_date, so "
    "v_daily_order_sales counts them on no day"
)


def site_zones(sources: TickSources) -> Mapping[str, Any]:
    """Once per tick: every site's time zone (streams/site_zones.py), the local day of an
    order that carries no `pos-timezone` (a web order).

    A zone the API failed to give this tick is named in `ZONES_UNREAD`: such an order fails
    its partition, which reads it again next tick. A site that has no zone: its web orders
    load without a business_date."""
    read = read_site_zones(sources, "orders", wait=WAIT, no_zone=NO_DAY)
    return {normalize.SITE_ZONES: dict(read.zones), normalize.ZONES_UNREAD: read.unread}


ORDERS = Stream(
    name="orders",
    api=Api.V2,
    path="/orders.json",
    cursor=Keyset(
        id_field="orderid",
        from_param="orderidfrom",
        sort="orderid",
        time_field="orderdate",
        time_from_param="orderdatefrom",
        partition_param="eshopid",
        ids_param="orderid",
        fixed=(("fields", ",".join(normalize.FIELDS)),),
        changeable=normalize.changeable,
        page_size=100,
        trailing_ids=200,
        max_changeable=20_000,
        reread_per_tick=2000,
    ),
    tables=normalize.TABLES,
    normalize=normalize.normalize_window,
    description="Orders (sales, refunds, web orders, bookings, parked) with items, sales "
    "taxes, payments and reserved payments; open orders are read again until final",
    partitions=SITES,
    tick_context=site_zones,
    options=(
        Option("page_size", int, "orders per request (`num`)", ge=1, le=1000),
        Option(
            "trailing_ids",
            int,
            "order ids below the cursor read again every tick (late commits, quick changes)",
            ge=0,
        ),
        Option(
            "max_changeable",
            int,
            "most open orders remembered and read again until final; past it the oldest are "
            "no longer followed",
            ge=0,
        ),
        Option(
            "reread_per_tick",
            int,
            "most open orders read again in one tick; when more are open, each tick reads the "
            "next ones in turn",
            ge=1,
        ),
        Option(
            "start",
            date | None,
            "first day (UTC) of orders on the first run; default: the first order",
        ),
    ),
)
