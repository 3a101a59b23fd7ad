"""POS z-reports (`GET {zreports}/pos-z-reports`): every register's closing reports.

The contract (API_CONTRACT.md, "POS z-reports"): a bare array sorted by `dateadded`
ascending, at most 500 items, inclusive `dateaddedfrom`/`dateaddedto`, no paging parameter,
key (`registerid`, `zreportid`). Every **assumed** rule about it lives in this declaration.
"""

from __future__ import annotations

from sitoo_sync.api.client import Api
from sitoo_sync.normalize import pos_z_reports as normalize
from sitoo_sync.streams.base import Stream
from sitoo_sync.streams.cursors import TimeWindows
from sitoo_sync.streams.partitions import REGISTERS

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
)
