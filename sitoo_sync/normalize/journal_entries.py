"""Journal entries: every entry into `journal_entries`, and typed tables for what is known.

`journal_entries` keeps the envelope of every entry plus its whole `data` object as JSON, so
nothing is ever lost, whatever the type. From the same rows, in the same transaction:

| table                              | from                                   |
|------------------------------------|----------------------------------------|
| `journal_receipts`                 | `receipt` entries (sales and refunds)  |
| `journal_receipt_items`            | their `items[]`                        |
| `journal_receipt_item_discounts`   | the items' `discounts[]`               |
| `journal_receipt_payments`         | their `payments[]`                     |
| `journal_cash_events`              | cash-start, -bank, -bank-final, -counted, -petty |
| `journal_staff_events`             | login, logout, open-cash-drawer        |

Documented fields (FACTS sheet, section 1.6) are typed under their own names; the receipt's
`additionaldata` keys that identify store, receipt and time zone become columns. Receipt
totals, item prices and payments are **not documented**: the names below marked ASSUMED are
our reading until the live API shows them, each a one-line change here. Fields nobody
declared stay in `extra` (and in `journal_entries.data`).

A receipt's `business_date` is its creation time in the register's own time zone
(`pos-timezone`): the day a store manager would say the sale happened. A receipt that names
no zone this system knows is dated in its register's site's zone (`site_zone`), looked up
once per register and window from what the stream's tick read (streams/journal_entries.py);
when that zone could not be read, the receipt's window waits for a later tick rather than
load dated in UTC for good (its rows are immutable: nothing would date them again).

Staff names (`staff`, and any other field personal.py names) are dropped or hashed as
SITOO_STAFF_NAMES says in every entry before anything is read from it, so the typed tables,
`extra`, `data` and a rejected entry all hold the same minimized value.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import UTC, date, tzinfo
from decimal import Decimal
from typing import Any

import pyarrow as pa

from sitoo_sync.errors import ContextUnavailable, RecordRejected
from sitoo_sync.normalize.columns import Errors, empty_table
from sitoo_sync.normalize.personal import staff_names, without_names
from sitoo_sync.normalize.records import (
    EXTRA,
    NormalizedWindow,
    Reject,
    TableBuilder,
    reject_for,
    require_object,
)
from sitoo_sync.normalize.tables import (
    Column,
    Table,
    boolean,
    day,
    decimal,
    integer,
    json_column,
    money,
    text,
    timestamp,
)
from sitoo_sync.normalize.values import (
    INT64_MAX,
    INT64_MIN,
    NO_STORE,
    day_in,
    is_unix_time,
    local_day,
    to_money,
    zone_named,
)

STREAM = "journal_entries"

#: The 24 documented entry types (journals-v3.txt).
KNOWN_TYPES = frozenset(
    {
        "cart-clear",
        "cart-item-add",
        "cart-item-change",
        "cart-item-remove",
        "cart-payment-add",
        "cart-payment-retry",
        "cart-payment-cancel",
        "cart-payment-success",
        "cart-payment-remove",
        "cart-voucher-add",
        "cart-voucher-remove",
        "cash-bank",
        "cash-bank-final",
        "cash-counted",
        "cash-petty",
        "cash-start",
        "ctu-error",
        "login",
        "logout",
        "open-cash-drawer",
        "printout",
        "receipt",
        "report-x",
        "report-z",
    }
)
CASH_TYPES = frozenset({"cash-start", "cash-bank", "cash-bank-final", "cash-counted", "cash-petty"})
STAFF_TYPES = frozenset({"login", "logout", "open-cash-drawer"})

KEY = (
    text("registerid", "The register that produced the entry (GUID in braces).", nullable=False),
    integer("id", "The entry's ID, counting 1, 2, ... per register.", nullable=False),
)
KEY_NAMES = ("registerid", "id")
POSITION = integer("position", "0-based position in the receipt's list.", nullable=False)
EVENT = (
    text("type", "The journal entry type (see journal_entries.type)."),
    boolean("ispractice", "True for an entry made in practice (training) mode."),
    timestamp("datecreated", "When the register created the entry (UTC)."),
)
CURRENCY = text("currencycode", "Currency of the money columns (ISO 4217 alpha-3).")
#: Copied from the receipt onto its items and payments, so every money row has its currency.
RECEIPT_CURRENCY = text("currencycode", "Currency of the receipt (copied from the receipt).")
EXTRA_DOC = "Fields the vendor sent that no column declares, as JSON (nothing is dropped)."
#: A column holding a staff member's name, and the ids beside it (pseudonymous, kept).
STAFF_NAME = (
    "The staff's name, as SITOO_STAFF_NAMES says: as sent (keep, the default), a keyed "
    "HMAC-SHA256 (hash) or NULL (drop)."
)
STAFF_ID = "The staff's user ID: an id, kept whatever SITOO_STAFF_NAMES says."
ASSUMED = " Name ASSUMED: the vendor does not document it."
QUANTITY_ASSUMED = (
    " Name and meaning ASSUMED from the vendor's order items (their `quantity`, an integer "
    "count): the journal's example item is cut off before it."
)
TOTAL_ASSUMED = (
    " Name and meaning ASSUMED from the vendor's order items (an extended field there): the "
    "journal's example item is cut off before it."
)
SIGNED = (
    "Signed: negative on a refund receipt, so a plain SUM nets refunds off sales; a refund "
    "whose moneytotal is sent negative (signed by the vendor already, as its orders are) "
    "keeps every value as sent. Ours."
)


def _child(name: str, lead: tuple[Column, ...], body: tuple[Column, ...], desc: str) -> Table:
    names = tuple(c.name for c in lead)
    return Table(
        name,
        (*lead, *body, json_column(EXTRA, EXTRA_DOC)),
        key=names,
        parent_key=KEY_NAMES,
        description=desc,
    )


JOURNAL_ENTRIES = Table(
    name="journal_entries",
    description=(
        "Every journal entry of every register (the POS event log): the envelope and the "
        "whole data object as JSON. Typed views of known types are the journal_* tables."
    ),
    columns=(
        *KEY,
        text(
            "type",
            "Entry type, one of the vendor's 24 (receipt, login, cash-start, report-z ...).",
            nullable=False,
        ),
        timestamp("datecreated", "When the register created the entry (UTC)."),
        timestamp(
            "dateadded",
            "When the entry reached the vendor's journal backup (UTC); the sync's cursor.",
            nullable=False,
        ),
        boolean("ispractice", "True for an entry made in practice (training) mode."),
        text("registerkey", "Register key used by the tax authorities."),
        json_column(
            "data",
            "The entry's data object as sent, its shape depending on type; the staff's name in "
            "it (`staff`) as SITOO_STAFF_NAMES says, the rest byte for byte.",
        ),
        json_column(EXTRA, EXTRA_DOC),
    ),
    key=KEY_NAMES,
)

#: The receipt's additionaldata keys lifted into columns (documented example keys).
RECEIPT_KEYS = {
    "receipt_id": "pos-receiptid",
    "store_id": "store-externalid",
    "store_name": "store-name",
    "store_group": "store-externalgroupid",
    "staff_externalid": "pos-staff-externalid",
    "staff_userid": "pos-staff-userid",
    "timezone": "pos-timezone",
}
RECEIPT_DOCS = {
    "receipt_id": "The receipt's number on the POS (additionaldata pos-receiptid).",
    "store_id": (
        "The store's external ID (additionaldata store-externalid); 'NO_STORE' when the "
        "register has none, as in the z-report tables."
    ),
    "store_name": "The store's name (additionaldata store-name).",
    "store_group": "The store's external group ID (additionaldata store-externalgroupid).",
    "staff_externalid": (
        "The staff's external ID (additionaldata pos-staff-externalid): an id, kept whatever "
        "SITOO_STAFF_NAMES says."
    ),
    "staff_userid": (
        "The staff's user ID (additionaldata pos-staff-userid): an id, kept "
        "whatever SITOO_STAFF_NAMES says."
    ),
    "timezone": (
        "The time zone the receipt names (additionaldata pos-timezone), as sent: the "
        "register's IANA zone, and business_date's when this system knows it. When it is "
        "NULL, empty or unknown (misspelled), business_date is in the register's site's "
        "zone instead (see business_date)."
    ),
}
ITEM_KEYS = {
    "productid": "item-productid",
    "product_group": "product-group-name",
    "delivered": "item-delivered",
}
ITEM_DOCS = {
    "productid": "The product's ID in Sitoo (additionaldata item-productid).",
    "product_group": "The product group's name (additionaldata product-group-name).",
    "delivered": "Whether the item was handed over, as the vendor's text 'true'/'false' "
    "(additionaldata item-delivered); isdelivered holds it as a boolean.",
}

JOURNAL_RECEIPTS = _child(
    "journal_receipts",
    KEY,
    (
        *EVENT,
        day(
            "business_date",
            "The local day of the sale: datecreated in the register's own time zone "
            "(timezone, the POS's pos-timezone). A receipt that names no zone this system "
            "knows (none, empty, misspelled) takes its register's site's zone "
            "(cash_registers.site_id; /sites/{id}/settings.json timezone) or, before "
            "cash_registers lists the register, the zone all the account's sites share; UTC "
            "when that site has no zone. While that zone cannot be read (or the register's "
            "site is unknown and the sites' zones differ), such a receipt waits for a later "
            "tick rather than load dated in another zone. Fixed when the receipt is loaded. "
            "Ours.",
        ),
        CURRENCY,
        boolean("isrefund", "True for a refund (return) receipt, false for a sale."),
        text("comment", "The receipt's comment."),
        *(text(c, RECEIPT_DOCS[c]) for c in RECEIPT_KEYS),
        money(
            "moneytotal",
            "The receipt's total incl. VAT as sent, positive also on a refund (see isrefund)."
            + ASSUMED,
        ),
        json_column(
            "additionaldata",
            "The receipt's additionaldata object as sent; a staff name in it "
            "(pos-staffsales-name) as SITOO_STAFF_NAMES says.",
        ),
        money("moneytotal_signed", "moneytotal, negative on a refund. " + SIGNED),
    ),
    "One row per receipt entry (sales and refunds), with its store, receipt id and time zone.",
)
JOURNAL_RECEIPT_ITEMS = _child(
    "journal_receipt_items",
    (*KEY, POSITION),
    (
        *(text(c, ITEM_DOCS[c]) for c in ITEM_KEYS),
        text("sku", "The item's SKU." + ASSUMED),
        text("name", "The item's name." + ASSUMED),
        integer(
            "quantity",
            "The number of units (pieces; 1 for a weighed item), positive also on a refund "
            "(see isrefund)." + QUANTITY_ASSUMED,
        ),
        decimal(
            "decimalunitquantity",
            "The unit quantity as sent: the amount in one unit for goods sold by weight or "
            "measure (0.350 kg), 0.000 or NULL for piece goods (the vendor's example sends "
            "0.000 on an ordinary item); not the number of units (see quantity).",
        ),
        decimal(
            "decimalquantitytotal",
            "quantity x unit quantity (0.700 for two items of 0.350 kg), as sent." + TOTAL_ASSUMED,
        ),
        decimal("vatvalue", "VAT rate in percent (25 = 25 %)." + ASSUMED),
        money(
            "moneyrowprice",
            "The row's total incl. VAT after its discounts, positive." + ASSUMED,
        ),
        json_column("additionaldata", "The item's additionaldata object as sent."),
        boolean("isdelivered", "item-delivered as a boolean (NULL when not sent). Ours."),
        RECEIPT_CURRENCY,
        money("moneyrowprice_signed", "moneyrowprice, negative on a refund. " + SIGNED),
        decimal(
            "quantity_signed",
            "The units sold, negative on a refund: quantity when the item has it (not NULL), "
            "else decimalunitquantity (rows of registers or loads that sent no count, which "
            "read the unit quantity as one). " + SIGNED,
        ),
    ),
    "The items (rows) of each receipt.",
)
JOURNAL_RECEIPT_ITEM_DISCOUNTS = _child(
    "journal_receipt_item_discounts",
    (
        *KEY,
        integer("item_position", "Position of the item in the receipt.", nullable=False),
        POSITION,
    ),
    (
        text("discountname", "The discount's name (e.g. '3 FOR 2')."),
        money("moneydiscount", "The discount on the item incl. VAT, positive." + ASSUMED),
        RECEIPT_CURRENCY,
    ),
    "Discounts on each receipt item.",
)
JOURNAL_RECEIPT_PAYMENTS = _child(
    "journal_receipt_payments",
    (*KEY, POSITION),
    (
        text("name", "The payment's name (Cash, Card ...)." + ASSUMED),
        money("moneyamount", "The amount paid, positive also on a refund." + ASSUMED),
        RECEIPT_CURRENCY,
        money("moneyamount_signed", "moneyamount, negative on a refund. " + SIGNED),
    ),
    "Payments of each receipt.",
)
JOURNAL_CASH_EVENTS = _child(
    "journal_cash_events",
    KEY,
    (
        *EVENT,
        CURRENCY,
        money("moneycash", "The cash amount of the event, as the register sent it."),
        text("staff", STAFF_NAME),
        text("staffuserid", STAFF_ID),
    ),
    "Cash movements: cash-start, cash-bank, cash-bank-final, cash-counted, cash-petty.",
)
JOURNAL_STAFF_EVENTS = _child(
    "journal_staff_events",
    KEY,
    (*EVENT, text("staff", STAFF_NAME), text("staffuserid", STAFF_ID)),
    "Staff events: login, logout, open-cash-drawer.",
)

TABLES: tuple[Table, ...] = (
    JOURNAL_ENTRIES,
    JOURNAL_RECEIPTS,
    JOURNAL_RECEIPT_ITEMS,
    JOURNAL_RECEIPT_ITEM_DISCOUNTS,
    JOURNAL_RECEIPT_PAYMENTS,
    JOURNAL_CASH_EVENTS,
    JOURNAL_STAFF_EVENTS,
)

_entries = TableBuilder(JOURNAL_ENTRIES, prefix=())
_receipts = TableBuilder(
    JOURNAL_RECEIPTS, prefix=KEY_NAMES, ignore=("items", "payments", "data", "type")
)
_items = TableBuilder(JOURNAL_RECEIPT_ITEMS, prefix=(*KEY_NAMES, "position"), ignore=("discounts",))
_discounts = TableBuilder(
    JOURNAL_RECEIPT_ITEM_DISCOUNTS, prefix=(*KEY_NAMES, "item_position", "position")
)
_payments = TableBuilder(JOURNAL_RECEIPT_PAYMENTS, prefix=(*KEY_NAMES, "position"))
_cash = TableBuilder(JOURNAL_CASH_EVENTS, prefix=KEY_NAMES, ignore=("type", "ispractice"))
_staff = TableBuilder(JOURNAL_STAFF_EVENTS, prefix=KEY_NAMES, ignore=("type", "ispractice"))


def entry_key(record: Mapping[str, Any]) -> tuple[str, int]:
    """(registerid, id): the entry's key; `id` alone is not documented to be unique."""
    registerid, entry_id = record.get("registerid"), record.get("id")
    if not isinstance(registerid, str) or not registerid:
        raise RecordRejected("missing or empty key field", field="registerid")
    if type(entry_id) is not int:
        raise RecordRejected(f"missing or non-integer key field: {entry_id!r}", field="id")
    if not INT64_MIN <= entry_id <= INT64_MAX:
        raise RecordRejected(f"key field out of range for BIGINT: {entry_id!r}", field="id")
    if not isinstance(record.get("type"), str):
        raise RecordRejected("missing entry type", field="type")
    return registerid, entry_id


business_date = local_day  # a receipt's local day in a zone it names; also used by tests

#: Normalizer context keys, filled once per tick by streams/journal_entries.py: each
#: register's site (registerid -> eshopid, as cash_registers lists it), each site's zone
#: (eshopid as text -> IANA name), the sites whose zone could not be read this tick
#: (`EVERY_SITE`: none could), and every site the account lists (eshopid as text).
REGISTER_SITES = "register_sites"
SITE_ZONES = "site_zones"
ZONES_UNREAD = "site_zones_unread"
LISTED_SITES = "listed_sites"
EVERY_SITE = "*"
#: Instead of the last three: a function that reads them when first called (the tick's
#: hook passes one, so a tick whose receipts all name their zone asks the API nothing).
READ_SITE_ZONES = "read_site_zones"


def site_zone(register: str, context: Mapping[str, Any]) -> str:
    """The zone a receipt of `register` that names none of its own is dated in: its site's,
    UTC when that site has none (or the account lists no site). A register whose site is
    not known (the cash_registers stream has not listed it yet) takes the zone all the
    listed sites share. Raises ContextUnavailable when that zone could not be read this
    tick, or the site is not known and the sites' zones differ: a later tick dates it.

    Without the tick's zones (`SITE_ZONES` absent: normalized outside a tick), UTC."""
    site = (context.get(REGISTER_SITES) or {}).get(register)
    read = context.get(READ_SITE_ZONES)
    if read is not None:
        context = read()
    if SITE_ZONES not in context:
        return "UTC"
    sites = (str(site),) if site is not None else tuple(context.get(LISTED_SITES) or ())
    unread = set(context.get(ZONES_UNREAD) or ())
    waits = f"the receipts of register {register} without a pos-timezone wait for a later tick"
    if EVERY_SITE in unread or not unread.isdisjoint(sites):
        if EVERY_SITE in unread:
            which = "the sites' time zones (/sites.json failed)"
        elif site is not None:
            which = f"the time zone of site {site} (/sites/{site}/settings.json failed)"
        else:
            which = "a site's time zone (/sites/{id}/settings.json failed)"
        raise ContextUnavailable(
            f"{which} could not be read in this tick: {waits} rather than load dated in UTC"
        )
    zones: Mapping[str, Any] = context.get(SITE_ZONES) or {}
    found = {_named_or_utc(zones.get(s)) for s in sites}
    if len(found) > 1:
        raise ContextUnavailable(
            "the register's site is not known until the cash_registers stream lists it, "
            f"and the sites' time zones differ: {waits} rather than load dated in another "
            "site's zone"
        )
    return found.pop() if found else "UTC"


def _named_or_utc(name: Any) -> str:
    return name if zone_named(name) is not None else "UTC"


class ReceiptDays:
    """The business_date of a window's receipts: datecreated in the receipt's own zone when
    it names one this system knows, else in its register's site's (`site_zone`, found once
    per register: a window's receipts share it). `context` is the window's normalizer
    context; `registers` gives each register's where windows are normalized together."""

    def __init__(
        self,
        context: Mapping[str, Any] | None = None,
        registers: Mapping[str, Mapping[str, Any] | None] | None = None,
    ) -> None:
        self._context = context or {}
        self._registers = registers or {}
        self._sites: dict[str, tzinfo] = {}

    def __call__(self, created: Any, zone: Any, register: str) -> date | None:
        """The local day of a receipt of `register` created at `created` naming `zone`;
        None when `created` is not Unix seconds (no day: no zone is looked up)."""
        if not is_unix_time(created):
            return None
        own: tzinfo | None = zone_named(zone)
        if own is None:
            own = self._sites.get(register) or self._site_zone(register)
        return day_in(created, own)  # None past 9999-12-31

    def _site_zone(self, register: str) -> tzinfo:
        context = self._registers.get(register) or self._context
        zone = self._sites[register] = zone_named(site_zone(register, context)) or UTC
        return zone


class _Rows:
    """Objects for one typed table, their prefix values and the entry each came from."""

    def __init__(self, width: int) -> None:
        self.objs: list[Mapping[str, Any]] = []
        self.prefix: list[list[Any]] = [[] for _ in range(width)]
        self.owners: list[int] = []

    def add(self, owner: int, obj: Mapping[str, Any], *prefix: Any) -> None:
        self.objs.append(obj)
        self.owners.append(owner)
        for i, value in enumerate(prefix):
            self.prefix[i].append(value)

    def build(self, builder: TableBuilder, types: list[Any], errors: Errors) -> pa.Table:
        if not self.objs:
            return empty_table(builder.table)
        arrays = [pa.array(values, t) for values, t in zip(self.prefix, types, strict=True)]
        own: Errors = {}
        table = builder.build(self.objs, arrays, own)
        for i, reason in own.items():
            errors.setdefault(self.owners[i], reason)
        return table


def _objects(value: Any, what: str) -> list[Mapping[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise RecordRejected(f"expected a list, got {type(value).__name__}", field=what)
    for i, item in enumerate(value):
        if type(item) is not dict:
            require_object(item, f"{what}[{i}]")
    return value


def negated(value: Any, refund: bool) -> Any:
    """`value` with its sign flipped on a refund, exactly (a money string stays a string, so
    it keeps the fast path); a value that is not a number is left for the converter to reject.
    White space around a string goes first: a decimal column reads " 2.000" as 2, and
    "- 2.000" as nothing at all."""
    if not refund or value is None:
        return value
    if type(value) is str:
        value = value.strip()
        return value[1:] if value.startswith("-") else "-" + value.removeprefix("+")
    if isinstance(value, Decimal):
        return value.copy_negate()  # `-value` rounds to 28 digits, overflows on 1E+999999999
    if isinstance(value, int) and not isinstance(value, bool):
        return -value
    return value


def flips_signs(data: Mapping[str, Any]) -> bool:
    """Whether a receipt's `*_signed` values are its values negated: on a refund, unless its
    total is sent negative (the vendor signs it, as it signs its orders: the journal does not
    say), when every value is kept as sent rather than turned into a sale."""
    if data.get("isrefund") is not True:
        return False
    try:
        total = to_money(data.get("moneytotal"))
    except RecordRejected:  # (the receipt is rejected for it)
        return True
    return total is None or total >= 0


def units(item: Mapping[str, Any]) -> Any:
    """The units an item sold, as sent: its `quantity` (the count) when it has one, else its
    `decimalunitquantity`, which registers that send no count (and our reading before the
    live API showed `quantity`) take as the count."""
    count = item.get("quantity")
    return item.get("decimalunitquantity") if count is None else count


def as_bool(value: Any) -> bool | None:
    """The vendor's "true"/"false" text (or a JSON boolean) as a boolean; None otherwise."""
    if type(value) is bool:
        return value
    if isinstance(value, str):
        return {"true": True, "false": False}.get(value.strip().lower())
    return None


def _receipt_rows(
    index: int,
    entry: Mapping[str, Any],
    rows: dict[str, _Rows],
    key: tuple[str, int],
    days: ReceiptDays,
) -> None:
    data = require_object(entry.get("data") or {}, "data")
    extra_data = require_object(data.get("additionaldata") or {}, "data.additionaldata")
    refund = flips_signs(data)
    currency = data.get("currencycode")
    items = _objects(data.get("items"), "data.items")
    payments = _objects(data.get("payments"), "data.payments")
    discounts = [
        _objects(item.get("discounts"), f"data.items[{i}].discounts")
        for i, item in enumerate(items)
    ]
    receipt = dict(data)
    for column, name in RECEIPT_KEYS.items():
        receipt[column] = extra_data.get(name)
    created = entry.get("datecreated")
    receipt["type"] = entry.get("type")
    receipt["ispractice"] = entry.get("ispractice")
    receipt["datecreated"] = created
    receipt["business_date"] = days(created, extra_data.get("pos-timezone"), key[0])
    receipt["moneytotal_signed"] = negated(data.get("moneytotal"), refund)
    if receipt["store_id"] is None or receipt["store_id"] == "":
        receipt["store_id"] = NO_STORE
    registerid, entry_id = key
    rows["receipts"].add(index, receipt, registerid, entry_id)
    item_rows, discount_rows = rows["items"], rows["discounts"]
    for pos, item in enumerate(items):
        item_extra = require_object(item.get("additionaldata") or {}, "item.additionaldata")
        lifted = dict(item)
        for column, name in ITEM_KEYS.items():
            lifted[column] = item_extra.get(name)
        lifted["isdelivered"] = as_bool(item_extra.get("item-delivered"))
        lifted["currencycode"] = currency
        lifted["moneyrowprice_signed"] = negated(item.get("moneyrowprice"), refund)
        lifted["quantity_signed"] = negated(units(item), refund)
        item_rows.add(index, lifted, registerid, entry_id, pos)
        for d_pos, discount in enumerate(discounts[pos]):
            discount_rows.add(
                index, {**discount, "currencycode": currency}, registerid, entry_id, pos, d_pos
            )
    for pos, payment in enumerate(payments):
        signed = negated(payment.get("moneyamount"), refund)
        rows["payments"].add(
            index,
            {**payment, "currencycode": currency, "moneyamount_signed": signed},
            registerid,
            entry_id,
            pos,
        )


def normalize_window(
    records: Iterable[Any],
    context: Mapping[str, Any] | None = None,
    *,
    days: ReceiptDays | None = None,
) -> NormalizedWindow:
    """Normalize one window of journal entries; a key seen twice keeps its last version.
    `days` dates the receipts (by default as `context` says)."""
    rejects: list[Reject] = []
    latest: dict[tuple[str, int], Mapping[str, Any]] = {}
    names = staff_names(context)
    for record in records:
        if names is not None:  # a rejected entry keeps no name either
            record = without_names(record, names)  # noqa: PLW2901
        try:
            obj = require_object(record, "record")
            key = entry_key(obj)
        except RecordRejected as exc:
            shown = (
                f"{record.get('registerid')}/{record.get('id')}"
                if isinstance(record, Mapping)
                else None
            )
            rejects.append(reject_for(STREAM, record, exc.reason, shown))
            continue
        latest.pop(key, None)
        latest[key] = obj
    entries = list(latest.values())
    keys = list(latest)
    errors: Errors = {}
    notes: Counter[str] = Counter()
    days = days or ReceiptDays(context)
    rows = {
        "receipts": _Rows(2),
        "items": _Rows(3),
        "discounts": _Rows(4),
        "payments": _Rows(3),
        "cash": _Rows(2),
        "staff": _Rows(2),
    }
    for index, (entry, key) in enumerate(zip(entries, keys, strict=True)):
        kind = entry["type"]
        if kind not in KNOWN_TYPES:
            notes[f"unknown entry type {kind}"] += 1
        try:
            if kind == "receipt":
                _receipt_rows(index, entry, rows, key, days)
            elif kind in CASH_TYPES or kind in STAFF_TYPES:
                data = require_object(entry.get("data") or {}, "data")
                event = {
                    **data,
                    "type": kind,
                    "ispractice": entry.get("ispractice"),
                    "datecreated": entry.get("datecreated"),
                }
                rows["cash" if kind in CASH_TYPES else "staff"].add(index, event, *key)
        except RecordRejected as exc:
            errors.setdefault(index, exc.reason)
    text_t, int_t = pa.string(), pa.int64()
    tables = {
        JOURNAL_ENTRIES.name: _entries.build(entries, [], errors),
        JOURNAL_RECEIPTS.name: rows["receipts"].build(_receipts, [text_t, int_t], errors),
        JOURNAL_RECEIPT_ITEMS.name: rows["items"].build(_items, [text_t, int_t, int_t], errors),
        JOURNAL_RECEIPT_ITEM_DISCOUNTS.name: rows["discounts"].build(
            _discounts, [text_t, int_t, int_t, int_t], errors
        ),
        JOURNAL_RECEIPT_PAYMENTS.name: rows["payments"].build(
            _payments, [text_t, int_t, int_t], errors
        ),
        JOURNAL_CASH_EVENTS.name: rows["cash"].build(_cash, [text_t, int_t], errors),
        JOURNAL_STAFF_EVENTS.name: rows["staff"].build(_staff, [text_t, int_t], errors),
    }
    if errors:
        for index, reason in sorted(errors.items()):
            entry = entries[index]
            rejects.append(
                reject_for(STREAM, entry, reason, f"{entry.get('registerid')}/{entry.get('id')}")
            )
        owners = {
            JOURNAL_ENTRIES.name: list(range(len(entries))),
            JOURNAL_RECEIPTS.name: rows["receipts"].owners,
            JOURNAL_RECEIPT_ITEMS.name: rows["items"].owners,
            JOURNAL_RECEIPT_ITEM_DISCOUNTS.name: rows["discounts"].owners,
            JOURNAL_RECEIPT_PAYMENTS.name: rows["payments"].owners,
            JOURNAL_CASH_EVENTS.name: rows["cash"].owners,
            JOURNAL_STAFF_EVENTS.name: rows["staff"].owners,
        }
        tables = {
            name: data.filter(pa.array([o not in errors for o in owners[name]], pa.bool_()))
            for name, data in tables.items()
        }
    parent_keys = tables[JOURNAL_ENTRIES.name].select(list(KEY_NAMES))
    return NormalizedWindow(tables=tables, parent_keys=parent_keys, rejects=rejects, notes=notes)
