"""Orders (REST v2 `/orders.json`, fact sheet section 2): an order → an `orders` row and its
items, the items' sales taxes, payments and reserved payments.

Signs are the vendor's: a refund is an order of its own whose quantities and money are
negative and whose `creditorderid` names the order it refunds; nothing is negated here.
Money is in the order's `currencycode`, copied onto every money child row.

Documented enums (section 2.3) get a readable companion column (`orderstateid_name` ...);
an undocumented code keeps its number and a NULL name. Personal data (the buyer's contact,
address, national id, phone, free-text comments, CRM ids and the `additionaldata` objects
that may hold them) is declared `personal` and stored as SITOO_PERSONAL_DATA says.

The store of an order: see `STORE_RULE`, the one place that decides it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sitoo_sync.errors import ContextUnavailable
from sitoo_sync.normalize.entity import ChildList, EntityNormalizer, Nested
from sitoo_sync.normalize.pos_z_reports import known_zone
from sitoo_sync.normalize.records import EXTRA
from sitoo_sync.normalize.tables import (
    Column,
    Table,
    day,
    decimal,
    integer,
    json_column,
    money,
    text,
    timestamp,
)
from sitoo_sync.normalize.values import local_day, to_int_or_none

STREAM = "orders"
EXTRA_DOC = "Fields the vendor sent that no column declares, as JSON (nothing is dropped)."

#: Documented enums (fact sheet 2.3, from the v2.8 docs; newer values may exist).
ORDER_STATES: Mapping[int, str] = {0: "Open", 10: "Closed", 20: "Cancelled", -1: "Abandoned"}
PAYMENT_STATES: Mapping[int, str] = {
    0: "None", 10: "Pending", 15: "Reserved", 20: "Successful", 30: "Cancelled", 40: "Failed",
}  # fmt: skip
ORDER_TYPES: Mapping[int, str] = {10: "Order", 100: "Booking", 110: "POSParked"}
ENUMS: Mapping[str, Mapping[int, str]] = {
    "orderstateid": ORDER_STATES,
    "paymentstateid": PAYMENT_STATES,
    "ordertypeid": ORDER_TYPES,
}

#: An order that can still change (fact sheet 2.9): open, its payment pending or reserved,
#: or parked at a register. **Assumed** final: every other documented state (closed,
#: cancelled, abandoned with a successful, cancelled, failed or no payment) and any code the
#: docs do not name (the trailing window of ids still re-reads it for a while).
OPEN_ORDER_STATES = frozenset({0})
OPEN_PAYMENT_STATES = frozenset({10, 15})
OPEN_ORDER_TYPES = frozenset({110})


def changeable(order: Mapping[str, Any]) -> bool:
    """True while the order can still change state (the sync reads it again every tick).

    A code is read as the integer column stores it ("0" is 0 Open): an order the
    warehouse shows open is one the sync goes on reading."""
    return (
        to_int_or_none(order.get("orderstateid")) in OPEN_ORDER_STATES
        or to_int_or_none(order.get("paymentstateid")) in OPEN_PAYMENT_STATES
        or to_int_or_none(order.get("ordertypeid")) in OPEN_ORDER_TYPES
    )


#: Which store sold an order. The order has no storeid (fact sheet 2.7, 10); the register's
#: own store is its warehouse's, so the register adds nothing the warehouse does not.
STORE_RULE = (
    "The store that sold the order: additionaldata `store-externalid`, which the POS writes "
    "at the sale (the stores' externalid, as z-reports' store_id). NULL when the order does "
    "not carry it (web orders, older POS builds): then the store is the order's warehouse's, "
    "a join: orders.warehouseid = warehouses.warehouseid, warehouses.storeid = "
    "stores.storeid, stores.externalid. The additionaldata key wins where both exist: it "
    "says where the sale was made, the warehouse join says where it is configured today. Ours."
)

#: Order-level additionaldata keys lifted into columns (fact sheet 2.7); none is personal.
ORDER_KEYS: Mapping[str, str] = {
    "store-externalid": "store_externalid",
    "store-externalgroupid": "store_externalgroupid",
    "store-name": "store_name",
    "pos-receiptid": "pos_receiptid",
    "pos-timezone": "pos_timezone",
    "pos-originalsales-orderid": "pos_originalsales_orderid",
    "refundreasoncode-reasoncode": "refundreasoncode",
}
#: Personal identifiers lifted from additionaldata (CRM customer and member numbers).
PERSONAL_KEYS: Mapping[str, str] = {
    "crm-customerid": "crm_customerid",
    "crm-membernumber": "crm_membernumber",
}
ITEM_KEYS: Mapping[str, str] = {
    "product-group-name": "product_group_name",
    "orderitem-moneyrowdiscount": "moneyrowdiscount_total",
    "reasoncode-manualdiscount": "reasoncode_manualdiscount",
    "reasoncode-manualprice": "reasoncode_manualprice",
    "reasoncode-return": "reasoncode_return",
    "pos-originalsales-orderitemid": "pos_originalsales_orderitemid",
    "return-warehouseid": "return_warehouseid",
    "pricelist-externalid": "pricelist_externalid",
}
PAYMENT_KEYS: Mapping[str, str] = {
    "payment-method": "payment_method",
    "virtual-payment": "virtual_payment",
}

SIGNS = "Negative on a refund (the vendor's sign, kept)."
#: A per-unit price: the vendor does not document its sign on a refund.
UNIT_SIGN = (
    "Per unit: its sign on a refund is not documented (quantity and the line totals are "
    "negative there), so sum moneyitemtotal_net/_vat, not price times quantity."
)
#: What a personal column holds (normalize/personal.py), NULL included.
PERSONAL = (
    "Personal data: NULL by default (SITOO_PERSONAL_DATA=drop), a keyed HMAC-SHA256 with "
    "hash, as sent with keep."
)
#: `extra` of a table with personal columns: kept only under keep (normalize/entity.py).
PERSONAL_EXTRA_DOC = (
    "Fields the vendor sent that no column declares, as JSON; only with "
    "SITOO_PERSONAL_DATA=keep, NULL otherwise (an undeclared field may be personal)."
)


def _pii(name: str, what: str) -> Column:
    return text(name, f"{what} {PERSONAL}", personal=True)


ORDER_KEY = integer("orderid", "Unique order ID (account-wide, given when stored).", nullable=False)
CURRENCY = text(
    "currencycode", "The order's currency (ISO 4217), copied from the order; all money here."
)
POSITION = integer("position", "0-based position in the order's list. Ours.", nullable=False)


def _amount(name: str, what: str) -> Column:
    return money(name, f"{what} In currencycode. {SIGNS}")


ORDERS = Table(
    name="orders",
    description=(
        "One row per order of the configured sites (POS receipts, web orders, bookings, "
        "parked orders). A refund is an order of its own with negative amounts and "
        "creditorderid set. Re-read while it can change (open, pending or reserved payment, "
        "parked), so states are current."
    ),
    columns=(
        ORDER_KEY,
        integer("site_id", "The site (eshop ID) whose listing showed the order. Ours."),
        integer("eshopid", "The site the order belongs to."),
        text("externalid", "External ID, unique per account; often NULL (POS orders)."),
        integer(
            "creditorderid",
            "On a refund: the orderid of the order it refunds; NULL on a sale.",
        ),
        timestamp(
            "orderdate",
            "When the sale happened (UTC); an offline register's order "
            "keeps it even when it reaches Sitoo hours later.",
            nullable=False,
        ),
        day(
            "business_date",
            "orderdate's local day: in pos_timezone (the register's, on POS orders), else in "
            "the site's time zone (settings.json `timezone`, web orders; a tick that fails "
            "to read it leaves those orders for the next); NULL when the site has none. Ours.",
        ),
        integer("orderstateid", "Order state: 0 Open, 10 Closed, 20 Cancelled, -1 Abandoned."),
        text("orderstateid_name", "orderstateid's documented name; NULL for other codes. Ours."),
        integer(
            "paymentstateid",
            "Payment state: 0 None, 10 Pending, 15 Reserved, 20 Successful, 30 Cancelled, "
            "40 Failed.",
        ),
        text("paymentstateid_name", "paymentstateid's documented name; NULL for others. Ours."),
        integer("ordertypeid", "Order type: 10 Order, 100 Booking, 110 POSParked."),
        text("ordertypeid_name", "ordertypeid's documented name; NULL for other codes. Ours."),
        timestamp("datereserved", "When the stock reservation expires (UTC); NULL: none."),
        CURRENCY,
        _amount("moneytotal_net", "Item total excl. VAT (no checkout or delivery cost)."),
        _amount("moneytotal_vat", "VAT of the items."),
        _amount("moneycheckout_net", "Checkout (payment) cost excl. VAT."),
        _amount("moneycheckout_vat", "VAT of the checkout cost."),
        _amount("moneytotal_gross_checkout", "Checkout cost incl. VAT."),
        _amount("moneydelivery_net", "Delivery cost excl. VAT."),
        _amount("moneydelivery_vat", "VAT of the delivery cost."),
        _amount("moneytotal_gross_delivery", "Delivery cost incl. VAT."),
        _amount("moneyfinal_net", "Items + checkout + delivery, excl. VAT."),
        _amount("moneyfinal_vat", "VAT of items + checkout + delivery."),
        _amount("moneyfinal_salestax", "Sales tax collected (US-style, not VAT)."),
        _amount("moneytotal_gross_roundoff", "Cash rounding."),
        _amount("moneytotal_gross_all", "Grand total to pay, incl. VAT and rounding."),
        text(
            "store_externalid",
            STORE_RULE,
        ),
        text("store_externalgroupid", "additionaldata `store-externalgroupid`."),
        text("store_name", "additionaldata `store-name`: the store's name at the sale."),
        integer("warehouseid", "The warehouse the order is registered to (→ warehouses)."),
        text("registerid", "The POS register (GUID); NULL for web orders (→ cash_registers)."),
        text("userid_staff", "The staff user credited with the sale (GUID, → users)."),
        text("pos_receiptid", "additionaldata `pos-receiptid`: the receipt's ID."),
        text("pos_timezone", "additionaldata `pos-timezone`: the register's IANA zone."),
        text(
            "pos_originalsales_orderid",
            "additionaldata `pos-originalsales-orderid`: on a POS refund, the sale's orderid.",
        ),
        text("refundreasoncode", "additionaldata `refundreasoncode-reasoncode`."),
        integer("checkouttypeid", "Checkout type (seen in examples, not in the schema)."),
        text("checkouttypename", "Checkout type's name, e.g. 'Sitoo POS - Card'."),
        integer("checkoutmethodid", "Checkout method (examples only; codes undocumented)."),
        integer("checkoutmethodsubid", "Checkout sub method (examples only; undocumented)."),
        integer("deliverytypeid", "Delivery type (examples only; codes undocumented)."),
        text("deliverytypename", "Delivery type's name, e.g. 'Home delivery'."),
        text("checkoutref", "The payment provider's reference."),
        _pii("customerref", "The customer's own reference (free text)."),
        _pii("email", "Buyer's email."),
        _pii("namefirst", "Buyer's first name."),
        _pii("namelast", "Buyer's last name."),
        _pii("personalid", "Buyer's personal or organisation number."),
        _pii("company", "Buyer's company."),
        _pii("phone", "Buyer's phone."),
        _pii("invoice_address", "Invoice address line 1."),
        _pii("invoice_address2", "Invoice address line 2."),
        _pii("invoice_zip", "Invoice postal code."),
        _pii("invoice_city", "Invoice city."),
        _pii("invoice_state", "Invoice state."),
        text("invoice_countryid", "Invoice country (ISO 3166-1 alpha-2); not personal alone."),
        _pii("delivery_address", "Delivery address line 1."),
        _pii("delivery_address2", "Delivery address line 2."),
        _pii("delivery_zip", "Delivery postal code."),
        _pii("delivery_city", "Delivery city."),
        _pii("delivery_state", "Delivery state."),
        text("delivery_countryid", "Delivery country (ISO 3166-1 alpha-2)."),
        _pii("comment", "The customer's comment (free text)."),
        _pii("commentinternal", "The staff's internal comment (free text)."),
        _pii("crm_customerid", "additionaldata `crm-customerid`: the CRM customer."),
        _pii("crm_membernumber", "additionaldata `crm-membernumber`."),
        json_column(
            "additionaldata",
            "The order's additionaldata object (string → string) as sent; its non-personal "
            "keys are also columns here. It may hold CRM ids, staff names, refund comments: "
            f"{PERSONAL}",
            personal=True,
        ),
        json_column(EXTRA, PERSONAL_EXTRA_DOC),
    ),
    key=("orderid",),
)

ORDER_ITEMS = Table(
    name="order_items",
    description=(
        "One row per order line (orderitems), keyed by the order and the line's position. "
        "Quantities and line totals are negative on refunds (per-unit prices: see each "
        "column). Discounts are the line's fields "
        "(moneyoriginalprice, moneydiscountedprice, moneydiscount, voucher*): the vendor "
        "sends no separate discount list."
    ),
    columns=(
        ORDER_KEY,
        CURRENCY,
        POSITION,
        integer("orderitemid", "The line's ID (the examples show its index in the order)."),
        integer("orderitemtype", "Line kind (10: product in the examples; enum undocumented)."),
        integer("productid", "The product (→ products; may since have been deleted)."),
        text("sku", "The SKU at the time of sale."),
        text("productname", "The product's title at the time of sale."),
        text("productattributes", "Variant text, e.g. 'Color: Red, Size: M'."),
        text("unitlabel", "Unit, e.g. 'kg'."),
        integer("quantity", f"Units. {SIGNS}"),
        decimal("decimalunitquantity", "Unit quantity (e.g. weight); NULL: none."),
        decimal("decimalquantitytotal", "quantity * unit quantity (extended field)."),
        money(
            "moneynetpriceperunit",
            f"Net unit price (after discount); in currencycode. {UNIT_SIGN}",
        ),
        money(
            "moneynetpriceperquantity",
            f"Net price per quantity (extended field); in currencycode. {UNIT_SIGN}",
        ),
        money("moneypriceorg", "Recommended retail price per unit; in currencycode."),
        decimal("vatvalue", "VAT rate in percent (25 = 25 %)."),
        _amount("moneyitemtotal_net", "Line total excl. VAT: net sales of the line."),
        _amount("moneyitemtotal_vat", "VAT of the line."),
        money("moneyoriginalprice", "Unit price before discount, incl. VAT; currencycode."),
        money("moneydiscountedprice", "Unit price after discount, incl. VAT; currencycode."),
        money("moneydiscount", "Discount per unit, incl. VAT; currencycode."),
        _amount("moneyrowdiscount_total", "additionaldata `orderitem-moneyrowdiscount`."),
        text("vouchercode", "Code of the voucher applied ('' : none)."),
        text("vouchername", "Name of the voucher applied."),
        text("vouchercomment", "The voucher's comment."),
        decimal("vouchervalue", "The voucher's value: a percent or a fixed amount."),
        integer("voucherid", "The voucher (examples only)."),
        text("product_group_name", "additionaldata `product-group-name`."),
        text("reasoncode_manualdiscount", "additionaldata `reasoncode-manualdiscount`."),
        text("reasoncode_manualprice", "additionaldata `reasoncode-manualprice`."),
        text("reasoncode_return", "additionaldata `reasoncode-return`."),
        text(
            "pos_originalsales_orderitemid",
            "additionaldata `pos-originalsales-orderitemid`: on a refund, the sold line.",
        ),
        text("return_warehouseid", "additionaldata `return-warehouseid`."),
        text("pricelist_externalid", "additionaldata `pricelist-externalid`."),
        _pii("externalinput", "Text the buyer entered for the line."),
        text("externalinputtitle", "The label of externalinput."),
        text("deliveryinfo", "Information after purchase (e.g. a tracking note)."),
        json_column(
            "additionaldata",
            "The line's additionaldata as sent. It may hold gift card numbers, CRM bonus "
            f"checks: {PERSONAL}",
            personal=True,
        ),
        json_column(EXTRA, PERSONAL_EXTRA_DOC),
    ),
    key=("orderid", "position"),
    parent_key=("orderid",),
)

ORDER_ITEM_SALES_TAXES = Table(
    name="order_item_sales_taxes",
    description="Sales taxes (US-style, not VAT) of an order line (orderitems[].salestaxes).",
    columns=(
        ORDER_KEY,
        CURRENCY,
        integer("item_position", "Position of the line in order_items.", nullable=False),
        POSITION,
        text("name", "The sales tax's name."),
        text("code", "The sales tax's code."),
        text("externalid", "External ID of the sales tax."),
        text("groupregion", "The region of the sales tax group."),
        _amount("moneytotal", "The amount the tax is calculated on."),
        _amount("moneytax", "The tax."),
        decimal("decimaltaxvalue", "The tax rate in percent."),
        json_column(EXTRA, EXTRA_DOC),
    ),
    key=("orderid", "item_position", "position"),
    parent_key=("orderid",),
)

ORDER_PAYMENTS = Table(
    name="order_payments",
    description="Payments of an order (payments), one row per payment, keyed by position.",
    columns=(
        ORDER_KEY,
        CURRENCY,
        POSITION,
        text("name", "Payment name, e.g. 'Card', 'Cash' (matches pos_payment_types.name)."),
        _amount("moneyamount", "The amount paid."),
        text("externalid", "Provider reference."),
        text("reftype", "Provider reference type, e.g. 'adyen'."),
        text("refid", "Provider reference ID."),
        text("cardissuer", "Card issuer, e.g. 'Mastercard'."),
        text("reservedpaymentid", "The reserved payment this captures, if any."),
        text("payment_method", "additionaldata `payment-method`."),
        text(
            "virtual_payment",
            "additionaldata `virtual-payment`: 'true' for an internal exchange between two "
            "orders, not money received.",
        ),
        json_column(
            "additionaldata",
            "The payment's additionaldata as sent. It may hold a payer's mobile number: "
            f"{PERSONAL}",
            personal=True,
        ),
        json_column(EXTRA, PERSONAL_EXTRA_DOC),
    ),
    key=("orderid", "position"),
    parent_key=("orderid",),
)

ORDER_RESERVED_PAYMENTS = Table(
    name="order_reserved_payments",
    description="Reserved (not yet captured) payments of an order (reservedpayments).",
    columns=(
        ORDER_KEY,
        CURRENCY,
        POSITION,
        text("id", "The reserved payment's ID."),
        text("name", "Payment name."),
        money("moneyreserved", "The amount reserved; in currencycode."),
        text("externalid", "Provider reference."),
        text("reftype", "Provider reference type."),
        text("refid", "Provider reference ID."),
        text("cardissuer", "Card issuer."),
        json_column(
            "additionaldata",
            f"additionaldata as sent. {PERSONAL}",
            personal=True,
        ),
        json_column(EXTRA, PERSONAL_EXTRA_DOC),
    ),
    key=("orderid", "position"),
    parent_key=("orderid",),
)

TABLES: tuple[Table, ...] = (
    ORDERS,
    ORDER_ITEMS,
    ORDER_ITEM_SALES_TAXES,
    ORDER_PAYMENTS,
    ORDER_RESERVED_PAYMENTS,
)

#: Columns of `orders` that are ours (not vendor fields to ask for).
OURS = frozenset(
    {"site_id", "business_date", EXTRA, *(f"{f}_name" for f in ENUMS),
     *ORDER_KEYS.values(), *PERSONAL_KEYS.values()}
)  # fmt: skip
#: The fields asked of `/orders.json`: every vendor field the tables read, and the lists
#: (the default set lacks creditorderid, the addresses and most money fields).
FIELDS: tuple[str, ...] = (
    *(c.name for c in ORDERS.columns if c.name not in OURS),
    "orderitems",
    "payments",
    "reservedpayments",
)


def _lift(obj: Mapping[str, Any], keys: Mapping[str, str]) -> dict[str, Any]:
    """`obj` with the additionaldata values of `keys` as fields of their own."""
    out = dict(obj)
    extra = obj.get("additionaldata")
    if isinstance(extra, Mapping):
        for key, column in keys.items():
            out[column] = extra.get(key)
    return out


def _lifted_list(value: Any, keys: Mapping[str, str]) -> Any:
    if type(value) is not list:
        return value  # the normalizer rejects it with the reason
    return [_lift(v, keys) if isinstance(v, Mapping) else v for v in value]


#: Normalizer context key: each site's time zone by eshopid (text), read once per tick.
SITE_ZONES = "site_zones"
#: Normalizer context key: the sites (eshopid text) whose time zone could not be read in
#: this tick though it may exist (a failure retries did not cure); `*`: none was read.
ZONES_UNREAD = "zones_unread"


def prepare(record: Mapping[str, Any], context: Mapping[str, Any]) -> Mapping[str, Any]:
    """The order with its site, enum names, lifted additionaldata keys and local day; an
    orderid sent as digits is the integer the keyset walk read it as (streams/orders.py
    steps past it either way, so a rejected one would never be read again)."""
    out = _lift(record, {**ORDER_KEYS, **PERSONAL_KEYS})
    if (orderid := to_int_or_none(record.get("orderid"))) is not None:
        out["orderid"] = orderid
    site = context.get("partition")
    out["site_id"] = int(site) if isinstance(site, str) and site.isdigit() else None
    for field, names in ENUMS.items():
        code = to_int_or_none(record.get(field))
        out[f"{field}_name"] = names.get(code) if code is not None else None
    eshop = str(record.get("eshopid") or site)
    # A pos-timezone that names no zone is no zone of its own: the site's, as z-reports do
    # (dated in UTC, the order would miss its z-report's business day near midnight).
    zone = known_zone(out.get("pos_timezone")) or (context.get(SITE_ZONES) or {}).get(eshop)
    unread = context.get(ZONES_UNREAD) or ()
    if not zone and ("*" in unread or eshop in unread):
        # Its local day would be missing, and a later tick would not read it again: wait.
        raise ContextUnavailable(
            f"the time zone of site {eshop} could not be read in this tick "
            "(/sites/{id}/settings.json failed): its orders without pos-timezone wait for "
            "the next tick rather than load without a business_date"
        )
    out["business_date"] = local_day(record.get("orderdate"), zone) if zone else None
    out["orderitems"] = _lifted_list(record.get("orderitems"), ITEM_KEYS)
    out["payments"] = _lifted_list(record.get("payments"), PAYMENT_KEYS)
    return out


normalize_window = EntityNormalizer(
    stream=STREAM,
    parent=ORDERS,
    lists=(
        ChildList("orderitems", ORDER_ITEMS),
        ChildList("payments", ORDER_PAYMENTS),
        ChildList("reservedpayments", ORDER_RESERVED_PAYMENTS),
    ),
    nested=(Nested("salestaxes", ORDER_ITEM_SALES_TAXES, ORDER_ITEMS, "item_position"),),
    prepare=prepare,
)
