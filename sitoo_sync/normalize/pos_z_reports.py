"""POS z-reports: one JSON PosZReport → a `pos_z_reports` row plus its child rows.

Pure: no I/O, no clock. A record that fails validation becomes a Reject and the rest of
the window carries on. The normalizer itself is shared with store z-reports (z_reports.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sitoo_sync.errors import ContextUnavailable
from sitoo_sync.normalize.records import EXTRA
from sitoo_sync.normalize.tables import Table, day, integer, json_column, money, text, timestamp
from sitoo_sync.normalize.values import NO_STORE, local_day, to_int_or_none, zone_named
from sitoo_sync.normalize.z_reports import EXTRA_DOC, TOTALS, child_tables, z_report_normalizer

STREAM = "pos_z_reports"

PARENT_KEY = (
    text("registerid", "Unique ID of the cash register (GUID in braces).", nullable=False),
    integer("zreportid", "The report's number, counting per register.", nullable=False),
)
CURRENCY = text("currencycode", "Currency of the report's money columns (ISO 4217 alpha-3).")

POS_Z_REPORTS = Table(
    name="pos_z_reports",
    description=(
        "One row per POS z-report: a register's closing report, with its sales, refund and "
        "cash totals since the register was opened. Money is in currencycode; sales and "
        "refunds are both positive."
    ),
    columns=(
        *PARENT_KEY,
        text("manufacturerid", "Manufacturer ID of the register (tax-authority number)."),
        text("registerkey", "Register key used by the tax authorities, printed on receipts."),
        integer("registernumber", "Number of the register in its store (1, 2, 3 ...)."),
        timestamp("datecreated", "When the report was created on the register (UTC)."),
        timestamp("dateopened", "When the register was opened (UTC); NULL from legacy POS."),
        timestamp(
            "dateadded",
            "When the register uploaded the report to Sitoo (UTC); the sync's cursor.",
            nullable=False,
        ),
        integer("eshopid", "Eshop (site) ID of the report in Sitoo."),
        text(
            "store_id",
            f"The store's external ID in Sitoo; '{NO_STORE}' when the register has none "
            "(the vendor's spelling; the API sends null or '').",
        ),
        text("store_name", "The name of the store."),
        text("company", "Company name."),
        text("companyid", "Company ID (organisation number)."),
        text("address", "Address line 1 (street)."),
        text("address2", "Address line 2 (c/o or similar)."),
        text("address3", "Address line 3 (zip, city and state)."),
        CURRENCY,
        text(
            "staff",
            "Name of the staff who produced the report, as SITOO_STAFF_NAMES says: as sent "
            "(keep, the default), a keyed HMAC-SHA256 (hash) or NULL (drop).",
        ),
        text(
            "staffuserid",
            "User ID of the staff who produced the report: an id, kept "
            "whatever SITOO_STAFF_NAMES says.",
        ),
        text("comment", "The comment the staff entered for the report."),
        *TOTALS,
        money("moneygrandtotalsales", "Sales since the register was first started (running)."),
        money("moneygrandtotalrefund", "Refunds since the register was first started, positive."),
        money(
            "moneygrandtotalnet",
            "moneygrandtotalsales - moneygrandtotalrefund, since the register was first started.",
        ),
        day(
            "business_date",
            "The local day the report closed: datecreated in business_timezone. Ours.",
        ),
        text(
            "business_timezone",
            "The IANA time zone business_date is counted in (the POS z-report itself carries "
            "none). First source that has one wins: the register's own zone, as its latest "
            "journal receipt names it (journal_receipts.timezone, the POS's pos-timezone); "
            "else its site's zone (/sites/{eshopid}/settings.json timezone), so a z-report "
            "loaded before its register's journal is dated the same; else the account's store "
            "z-report zone (/store-z-reports/config time_zone); else UTC. Fixed when the "
            "report is loaded. Ours.",
        ),
        json_column(EXTRA, EXTRA_DOC),
    ),
    key=("registerid", "zreportid"),
)

CHILDREN = child_tables("pos_z_report", PARENT_KEY, CURRENCY, "POS z-report")
TABLES: tuple[Table, ...] = (POS_Z_REPORTS, *CHILDREN.values())


#: Normalizer context keys: each register's own zone (registerid -> IANA name), each
#: site's (eshopid as text -> IANA name) and the sites whose zone could not be read this
#: tick ("*": none could), and the account-wide zone. See `business_timezone` for the order.
REGISTER_ZONES = "timezones"
SITE_ZONES = "site_timezones"
ZONES_UNREAD = "site_zones_unread"
ACCOUNT_ZONE = "timezone"


def known_zone(name: Any) -> str | None:
    """`name` when it is an IANA time zone this system knows, else None."""
    return name if zone_named(name) is not None else None


def zone_of(record: Mapping[str, Any], context: Mapping[str, Any]) -> str:
    """The zone a z-report's business day is counted in: its register's own, its site's,
    the account's, or UTC. Raises ContextUnavailable when its site's zone could not be read
    this tick and its register has none of its own: a later tick dates it instead."""
    registers: Mapping[Any, Any] = context.get(REGISTER_ZONES) or {}
    own = known_zone(registers.get(record.get("registerid")))
    if own:
        return own
    site = str(record.get("eshopid"))
    sites: Mapping[str, Any] = context.get(SITE_ZONES) or {}
    if zone := known_zone(sites.get(site)):
        return zone
    unread = context.get(ZONES_UNREAD) or ()
    if "*" in unread or site in unread:
        raise ContextUnavailable(
            f"the time zone of site {site} could not be read in this tick "
            "(/sites/{id}/settings.json failed): its z-reports wait for the next tick rather "
            "than load with a business_date in another zone"
        )
    return known_zone(context.get(ACCOUNT_ZONE)) or "UTC"


def prepare(record: Mapping[str, Any], context: Mapping[str, Any]) -> Mapping[str, Any]:
    """The report with "no store" spelled NO_STORE and its local business date added, in
    the zone of its register (`zone_of`); a zreportid sent as digits is the number it
    names, as every other integer column reads it (the cursor steps past the report
    either way: a rejected one would never load)."""
    zone = zone_of(record, context)
    store = record.get("store_id")
    out = {
        **record,
        "store_id": NO_STORE if store is None or store == "" else store,
        "business_date": local_day(record.get("datecreated"), zone),
        "business_timezone": zone,
    }
    if (number := to_int_or_none(record.get("zreportid"))) is not None:
        out["zreportid"] = number
    return out


normalize_window = z_report_normalizer(
    stream=STREAM, parent=POS_Z_REPORTS, children=CHILDREN, prepare=prepare
)
