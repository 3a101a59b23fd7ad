"""POS z-reports: one JSON PosZReport → a `pos_z_reports` row plus its child rows.

Pure: no I/O, no clock. A record that fails validation becomes a Reject and the rest of
the window carries on.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sitoo_sync.errors import RecordRejected
from sitoo_sync.normalize.records import (
    EXTRA,
    NormalizedWindow,
    Row,
    RowMapper,
    reject_for,
    require_object,
)
from sitoo_sync.normalize.tables import Table, integer, json_column, money, text, timestamp
from sitoo_sync.normalize.z_report_fields import (
    CHILD_LIST_FIELDS,
    TOTALS,
    ZReportChildren,
    child_tables,
)

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

_parent = RowMapper(POS_Z_REPORTS, prefix=(), ignore=CHILD_LIST_FIELDS)
_children = ZReportChildren(CHILDREN, POS_Z_REPORTS.key)


def record_key(record: Mapping[str, Any]) -> tuple[str, int]:
    """The natural key (registerid, zreportid), or a rejection saying which part is missing."""
    registerid = record.get("registerid")
    zreportid = record.get("zreportid")
    if not isinstance(registerid, str) or not registerid:
        raise RecordRejected("missing or empty key field", field="registerid")
    if type(zreportid) is not int:
        raise RecordRejected(f"missing or non-integer key field: {zreportid!r}", field="zreportid")
    return registerid, zreportid


def normalize_record(record: Any) -> tuple[Row, dict[str, list[Row]]]:
    """The parent row and the child rows of one PosZReport."""
    obj = require_object(record, "record")
    key = record_key(obj)
    return _parent.row(obj), _children.rows(obj, key)


def normalize_window(records: Iterable[Any]) -> NormalizedWindow:
    """Normalize a window of PosZReports; a key seen twice keeps its last version."""
    latest: dict[tuple[str, int], tuple[Row, dict[str, list[Row]]]] = {}
    window = NormalizedWindow()
    for record in records:
        try:
            parent, children = normalize_record(record)
        except RecordRejected as exc:
            shown = None
            if isinstance(record, Mapping):
                shown = f"{record.get('registerid')}/{record.get('zreportid')}"
            window.rejects.append(reject_for(STREAM, record, exc, shown))
            continue
        latest[(parent[0], parent[1])] = (parent, children)
    window.rows = {table.name: [] for table in TABLES}
    parents = window.rows[POS_Z_REPORTS.name]
    for key, (parent, children) in latest.items():
        window.parents.append(key)
        parents.append(parent)
        for table_name, rows in children.items():
            window.rows[table_name].extend(rows)
    return window
