"""POS z-reports: one JSON PosZReport → a `pos_z_reports` row plus its child rows.

Pure: no I/O, no clock. A record that fails validation becomes a Reject and the rest of
the window carries on. The normalizer itself is shared with store z-reports (z_reports.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sitoo_sync.errors import RecordRejected
from sitoo_sync.normalize.records import EXTRA
from sitoo_sync.normalize.tables import Table, integer, json_column, money, text, timestamp
from sitoo_sync.normalize.z_reports import TOTALS, ZReportNormalizer, child_tables

STREAM = "pos_z_reports"

PARENT_KEY = (text("registerid", nullable=False), integer("zreportid", nullable=False))

POS_Z_REPORTS = Table(
    name="pos_z_reports",
    description="One row per POS z-report (a register's closing report).",
    columns=(
        *PARENT_KEY,
        text("manufacturerid"),
        text("registerkey"),
        integer("registernumber"),
        timestamp("datecreated"),
        timestamp("dateopened"),
        timestamp("dateadded", nullable=False),
        integer("eshopid"),
        text("store_id"),
        text("store_name"),
        text("company"),
        text("companyid"),
        text("address"),
        text("address2"),
        text("address3"),
        text("currencycode"),
        text("staff"),
        text("staffuserid"),
        text("comment"),
        *TOTALS,
        money("moneygrandtotalsales"),
        money("moneygrandtotalrefund"),
        money("moneygrandtotalnet"),
        json_column(EXTRA),
    ),
    key=("registerid", "zreportid"),
)

CHILDREN = child_tables("pos_z_report", PARENT_KEY)
TABLES: tuple[Table, ...] = (POS_Z_REPORTS, *CHILDREN.values())


def record_key(record: Mapping[str, Any]) -> tuple[str, int]:
    """The natural key (registerid, zreportid), or a rejection saying which part is missing."""
    registerid = record.get("registerid")
    zreportid = record.get("zreportid")
    if not isinstance(registerid, str) or not registerid:
        raise RecordRejected("missing or empty key field", field="registerid")
    if type(zreportid) is not int:
        raise RecordRejected(f"missing or non-integer key field: {zreportid!r}", field="zreportid")
    return registerid, zreportid


normalize_window = ZReportNormalizer(
    stream=STREAM, parent=POS_Z_REPORTS, children=CHILDREN, key_of=record_key
)
