"""Warehouse transactions (`GET {v2}/sites/{siteid}/warehousetransactions.json`): keyset on
`warehousetransactionid`, per configured site, append-only (fact sheet 6.5, **assumed**:
no modified date, and the sales, refund and stocktaking types are read-only).

Every tick walks from `last id + 1 - trailing_ids` (`warehousetransactionidfrom`,
`sort=warehousetransactionid`); a transaction re-read there whose key is stored already is
skipped (`immutable`), so the trailing span costs one request and no write.
"""

from __future__ import annotations

from datetime import date

from sitoo_sync.api.client import Api
from sitoo_sync.normalize import warehouse_transactions as normalize
from sitoo_sync.streams.base import Stream
from sitoo_sync.streams.cursors_keyset import Keyset
from sitoo_sync.streams.options import Option
from sitoo_sync.streams.partitions import SITES

WAREHOUSE_TRANSACTIONS = Stream(
    name="warehouse_transactions",
    api=Api.V2,
    path="/sites/{siteid}/warehousetransactions.json",
    cursor=Keyset(
        id_field="warehousetransactionid",
        from_param="warehousetransactionidfrom",
        sort="warehousetransactionid",
        time_field="datecreated",
        time_from_param="datecreatedfrom",
        page_size=100,
        trailing_ids=50,
    ),
    tables=normalize.TABLES,
    normalize=normalize.normalize_window,
    description="Warehouse transactions (stock moves, sales, refunds, stocktakings) with "
    "their item lines",
    partitions=SITES,
    immutable=True,
    options=(
        Option("page_size", int, "transactions per request (`num`)", ge=1, le=1000),
        Option("trailing_ids", int, "transaction ids below the cursor read again every tick", ge=0),
        Option(
            "start",
            date | None,
            "first day (UTC) of transactions on the first run; default: the first one",
        ),
    ),
)
