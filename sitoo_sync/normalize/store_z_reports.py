"""Store z-reports: one JSON StoreZReport → a `store_z_reports` row plus its child rows.

A store z-report is one store's aggregate of a day's POS z-reports. Its figures sit in a
`data` object with the same fields and lists as a POS z-report; here they are lifted into
the row beside the header fields, so one table holds one report. The children are tables
of their own (`store_z_report_*`), shaped exactly like the `pos_z_report_*` ones but keyed
by `store_zreport_id`: a BI user joins one key and never filters on a parent kind.
`store_z_report_registers` lists the POS z-reports each store report aggregates.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sitoo_sync.errors import RecordRejected
from sitoo_sync.normalize.entity import ChildList
from sitoo_sync.normalize.records import EXTRA
from sitoo_sync.normalize.tables import (
    Table,
    day,
    integer,
    json_column,
    text,
    timestamp,
)
from sitoo_sync.normalize.values import NO_STORE
from sitoo_sync.normalize.z_reports import (
    EXTRA_DOC,
    POSITION,
    TOTALS,
    child_tables,
    z_report_normalizer,
)

STREAM = "store_z_reports"

PARENT_KEY = (text("store_zreport_id", "UUID of the store z-report.", nullable=False),)
CURRENCY = text("currency_code", "Currency of the report's money columns (ISO 4217 alpha-3).")

STORE_Z_REPORTS = Table(
    name="store_z_reports",
    description=(
        "One row per store and day: the vendor's aggregate of the store's POS z-reports of "
        "that local day (its StoreZReportData lifted beside the header). Money is in "
        "currency_code; sales and refunds are both positive."
    ),
    columns=(
        *PARENT_KEY,
        text(
            "store_id",
            f"The store's external ID in Sitoo; '{NO_STORE}' aggregates the POS z-reports "
            "without a store.",
            nullable=False,
        ),
        text("store_name", "The name of the store."),
        CURRENCY,
        day(
            "day_created",
            "The local business day aggregated, in the time zone of the aggregation's config.",
            nullable=False,
        ),
        timestamp("date_created", "When the aggregate was made (UTC)."),
        *TOTALS,
        json_column(EXTRA, EXTRA_DOC),
    ),
    key=("store_zreport_id",),
    # A re-aggregated day may come back under a new id: it replaces the old report.
    replace_group=("store_id", "day_created"),
)

STORE_Z_REPORT_REGISTERS = Table(
    name="store_z_report_registers",
    description="The POS z-reports a store z-report aggregates; joins pos_z_reports.",
    columns=(
        *PARENT_KEY,
        POSITION,
        text("registerid", "The register of an aggregated POS z-report."),
        integer("zreportid", "The aggregated POS z-report's number (pos_z_reports.zreportid)."),
        json_column(EXTRA, EXTRA_DOC),
    ),
    key=("store_zreport_id", "position"),
    parent_key=("store_zreport_id",),
)

CHILDREN = {
    **child_tables("store_z_report", PARENT_KEY, CURRENCY, "store z-report"),
    "registers": STORE_Z_REPORT_REGISTERS,
}
TABLES: tuple[Table, ...] = (STORE_Z_REPORTS, *CHILDREN.values())


def lift_data(record: Mapping[str, Any], context: Mapping[str, Any]) -> Mapping[str, Any]:
    """The header fields and the `data` figures as one object (the header wins a clash)."""
    data = record.get("data")
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise RecordRejected(f"expected an object, got {type(data).__name__}", field="data")
    header = {k: v for k, v in record.items() if k != "data"}
    return {**data, **header}


normalize_window = z_report_normalizer(
    stream=STREAM,
    parent=STORE_Z_REPORTS,
    children=CHILDREN,
    extra_lists=(ChildList("register_zreports", STORE_Z_REPORT_REGISTERS),),
    prepare=lift_data,
)
