"""POS payment types (`GET /sites/{siteid}/pospaymenttypes.json`, fact sheet 7.1).

A bare array, no paging, listed in full per site. `paymentmethodid` is the documented
POSPaymentMethod enum: `paymentmethod_name` spells it out; a code the fact sheet does not
list leaves the name NULL. Order payments name their type by `name` only (no id).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sitoo_sync.normalize.entity import EntityNormalizer
from sitoo_sync.normalize.records import EXTRA
from sitoo_sync.normalize.site_listing import seen_columns, site_column, site_listed
from sitoo_sync.normalize.tables import Table, integer, json_column, text
from sitoo_sync.normalize.values import to_int_or_none

STREAM = "pos_payment_types"

#: POSPaymentMethod (fact sheet 7.1, from developer.sitoo.com).
PAYMENT_METHODS: Mapping[int, str] = {
    100: "Cash",
    110: "Credit Note",
    200: "Card (Verifone AirPay)",
    210: "Card (Verifone LPP)",
    220: "Card (Host2T)",
    300: "Card (External)",
    400: "Custom Method 5",
    500: "Gift Card",
    510: "Credit Note (as gift card)",
    600: "Invoice",
    610: "Cash on Delivery",
    700: "Klarna (legacy v2)",
    705: "Klarna",
    710: "Swish",
    711: "Swish with QR",
    720: "MobilePay",
    730: "Vipps",
    800: "Vipps MobilePay",
    1000: "Custom Method 1",
    1100: "Custom Method 2",
    1200: "Custom Method 3",
    1300: "Custom Method 4",
    1400: "Custom Invoice",
    2000: "Custom Payment API",
    2100: "Card (Adyen SDK)",
    2110: "Card (Adyen Terminal API)",
    2200: "Card (Nets)",
    2300: "Card (Coiney)",
    2400: "Card (iZettle)",
    2500: "Softpay",
    3000: "Foreign Currency",
}

POS_PAYMENT_TYPES = Table(
    name="pos_payment_types",
    description=(
        "The POS payment types of every configured site. Order payments name their type by "
        "`name` (they carry no id). A type no longer listed is kept, with missing_since set."
    ),
    columns=(
        site_column("payment type"),
        integer("paymenttypeid", "The payment type's ID.", nullable=False),
        integer("paymentmethodid", "The payment method (the vendor's POSPaymentMethod code)."),
        text(
            "paymentmethod_name",
            "paymentmethodid spelled out as the vendor documents it; NULL for a code it does "
            "not list. Ours.",
        ),
        text("name", "Display name, e.g. Card or Cash; order payments carry this name."),
        integer("sortorder", "Position in the POS (ascending)."),
        text("externalid", "External key."),
        *seen_columns("payment type"),
        json_column(EXTRA, "Fields the vendor sent that no column declares, as JSON."),
    ),
    key=("site_id", "paymenttypeid"),
    keep_on_update=("first_seen_at",),
)
TABLES: tuple[Table, ...] = (POS_PAYMENT_TYPES,)


def listed(record: Mapping[str, Any], context: Mapping[str, Any]) -> Mapping[str, Any]:
    """The type with its site, seen now, and its method's name."""
    method = to_int_or_none(record.get("paymentmethodid"))  # "710" is 710, as its column reads it
    name = PAYMENT_METHODS.get(method) if method is not None else None
    return {**site_listed(record, context), "paymentmethod_name": name}


normalize_window = EntityNormalizer(stream=STREAM, parent=POS_PAYMENT_TYPES, prepare=listed)
