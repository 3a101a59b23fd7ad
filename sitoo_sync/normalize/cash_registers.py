"""Cash registers: the `posregister` objects of a site's listing → `cash_registers` rows.

The listing carries no site or time, so both come from the context: the site (the
partition) and when it was listed. `first_seen_at` is kept from the first listing that
showed the register; `missing_since` is set by the sync when a listing no longer shows it
(the register is kept, never deleted) and cleared when it shows up again.

The listing gives no store, only `warehouseid` (cash-registers-v2.txt): the register's store
is that warehouse's `storeid` (the `warehouses` stream), a join rather than a column here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sitoo_sync.normalize.entity import EntityNormalizer
from sitoo_sync.normalize.records import EXTRA
from sitoo_sync.normalize.tables import Table, integer, json_column, text, timestamp

STREAM = "cash_registers"

CASH_REGISTERS = Table(
    name="cash_registers",
    description=(
        "Every register of the configured sites (the vendor's posregister), with when it was "
        "first and last listed; a register no longer listed is kept, with missing_since set."
    ),
    columns=(
        text("registerid", "Unique ID of the register (GUID in braces).", nullable=False),
        integer("site_id", "The site (eshop ID) whose listing showed the register. Ours."),
        text("manufacturerid", "The tax authority's manufacturing number of the register."),
        text("registerkey", "The tax authority's register designation, printed on receipts."),
        text("company", "Company name."),
        text("companyid", "Company ID (organisation number)."),
        text("address", "Address line 1."),
        text("address2", "Address line 2."),
        text("zip", "Postal code."),
        text("city", "City."),
        text("state", "State."),
        text("countryid", "Country (ISO 3166-1 alpha-2)."),
        text("currencycode", "The register's currency (ISO 4217 alpha-3)."),
        text("receiptlanguagetag", "Language of the receipts (BCP 47)."),
        integer("storesettingid", "The store settings the register uses."),
        integer(
            "warehouseid",
            "The warehouse the register sells from; its store is the register's store: join "
            "warehouses on (site_id, warehouseid), then stores on (site_id, storeid).",
        ),
        integer("salestaxgroupid", "The sales tax group (NULL where VAT applies)."),
        timestamp("first_seen_at", "When a listing first showed the register (UTC). Ours."),
        timestamp("last_seen_at", "When a listing last showed the register (UTC). Ours."),
        timestamp(
            "missing_since",
            "Since when listings no longer show it (UTC); NULL while it is listed. Ours.",
        ),
        json_column(EXTRA, "Fields the vendor sent that no column declares, as JSON."),
    ),
    key=("registerid",),
    keep_on_update=("first_seen_at",),
)
TABLES: tuple[Table, ...] = (CASH_REGISTERS,)


def listed(record: Mapping[str, Any], context: Mapping[str, Any]) -> Mapping[str, Any]:
    """The register with what the listing implies: its site (the partition), and that it was
    seen now and so is not missing."""
    site = context.get("partition")
    now = context.get("now")
    seen = int(now.timestamp()) if now is not None else None
    return {
        **record,
        "site_id": int(site) if site else None,
        "first_seen_at": seen,
        "last_seen_at": seen,
        "missing_since": None,
    }


normalize_window = EntityNormalizer(stream=STREAM, parent=CASH_REGISTERS, prepare=listed)
