"""Orders of the simulated REST v2 world (fact sheet section 2): bodies and the list filters.

An order is kept as an `OrderSpec` (what happened) and rendered to the vendor's body, so a
state change re-renders the same `orderid` with new states and payments. Money is integer
cents inside and money strings outside. What the fact sheet leaves open, the simulator fixes
here (assumptions):
- `orderitemid` is the line's index within its order; `orderitemtype` is always 10 (product);
  discounts are the line fields `moneyoriginalprice`/`moneydiscountedprice`/`moneydiscount`
  (per unit, VAT included) plus the voucher fields, not separate discount lines;
  `salestaxes` is empty (Swedish and Norwegian VAT only).
- Line nets are computed from the VAT-inclusive line total and rounded half up;
  `moneytotal_net`/`_vat` sum the lines; web orders add a delivery cost; an order paid in
  cash is rounded to whole units in `moneytotal_gross_roundoff`; payments add up to
  `moneytotal_gross_all`. A refund mirrors its lines with negative quantities and amounts.
- A POS sale is its journal receipt (world.py): the order's lines are the receipt's rows,
  each line's total incl. VAT is the row's price exactly, and its per-unit prices are the
  row's divided by the quantity to the cent (so unit price x quantity may miss the line total
  by less than a cent per unit); its payments are the receipt's, with no cash rounding (the
  z-report carries the day's roundoff).
- `orderdateto` is inclusive; `sort` accepts only `orderid`/`-orderid` (default `-orderid`).
- Settling keeps the id: a completed parked order (type 110) becomes an ordinary order
  (type 10), a paid booking stays a booking (type 100); the payments appear when paid.
- The store of an order is its warehouse's `storeid`; POS orders also carry
  `store-externalid`/`store-name`/`store-externalgroupid`, except every Nth one (an older
  POS build, say), and the register's store is the same store.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sitoo_sync.simulator.money import cents, money, net_of
from sitoo_sync.simulator.params import one
from sitoo_sync.simulator.rest_v2.query import Body, Query, RestError, csv, csv_ints, integer

ORDER_STATES = {0: "Open", 10: "Closed", 20: "Cancelled", -1: "Abandoned"}
PAYMENT_STATES = {0: "None", 10: "Pending", 15: "Reserved", 20: "Successful", 30: "Cancelled",
                  40: "Failed"}  # fmt: skip
ORDER_TYPES = {10: "Order", 100: "Booking", 110: "POSParked"}
# kind -> (orderstateid, paymentstateid, ordertypeid)
STATES = {
    "sale": (10, 20, 10),
    "booking_paid": (10, 20, 100),  # a booking keeps its type once paid (assumption)
    "refund": (10, 20, 10),
    "parked": (0, 0, 110),
    "pending": (0, 10, 10),
    "booking": (0, 15, 100),
    "cancelled": (20, 30, 10),
    "abandoned": (-1, 40, 10),
}
OPEN_KINDS = ("parked", "pending", "booking")
PAID_KINDS = ("sale", "booking_paid", "refund")
DEFAULT_FIELDS = (
    "orderid", "eshopid", "email", "namefirst", "namelast", "company", "moneyfinal_net",
    "moneyfinal_vat", "moneytotal_gross_roundoff", "moneytotal_gross_all", "checkouttypename",
    "deliverytypename", "orderdate", "orderstateid", "paymentstateid", "ordertypeid",
    "registerid", "warehouseid", "datereserved", "currencycode", "additionaldata", "orderitems",
    "payments",
)  # fmt: skip
DELIVERY_GROSS, DELIVERY_VAT = 4900, 25
PII_FIELDS = ("email", "namefirst", "namelast", "personalid", "company", "phone")


@dataclass
class Line:
    """One product line: the product as sold, quantity (negative on refunds), discount %."""

    product: Body
    quantity: int
    discount_pct: int = 0
    group: str = ""  # the product group's name, for `product-group-name`
    # A line rung up on a register (a journal receipt's row): its price after discount and
    # its discount, cents for the whole row (positive on refunds too), and the discount's name.
    row_gross: int | None = None
    row_discount: int = 0
    discount_name: str = ""
    # Its receipt item's unit quantity (a weight, or "0.000" for piece goods); None: none.
    unit_quantity: str | None = None


def line_gross(line: Line) -> int:
    """The line's total incl. VAT in cents, after discount; negative on a refund."""
    if line.row_gross is not None:
        return line.row_gross if line.quantity >= 0 else -line.row_gross
    unit = cents(line.product["moneyprice"])
    return (unit - unit * line.discount_pct // 100) * line.quantity


def line_net(line: Line) -> int:
    """The line's total excl. VAT in cents (rounded half up); negative on a refund."""
    return _signed_net(line_gross(line), int(line.product["vatvalue"]))


@dataclass
class OrderSpec:
    """What happened: enough to render the vendor's order body at any state."""

    eshopid: int
    orderdate: int
    arrival: int  # when the backend stored it: ids follow this, not orderdate
    lines: list[Line]
    kind: str  # a key of STATES
    warehouse: Body
    currency: str
    timezone: str
    payment_names: list[str] = field(default_factory=list)
    settles_to: str = "sale"  # what a parked or pending order becomes when it settles
    registerid: str | None = None
    store: Body | None = None
    store_keys: bool = True
    staff: Body | None = None
    customer: Body | None = None
    credit: OrderSpec | None = None  # the sale a refund refunds
    orderid: int = 0
    receipt_seq: int = 0
    receipt_id: str = ""  # the journal receipt's `pos-receiptid` this order is
    paid: list[tuple[str, int]] | None = None  # the receipt's payments, cents, signed


def _signed_net(gross: int, vat: int) -> int:
    net = net_of(abs(gross), vat)
    return net if gross >= 0 else -net


def _cash_round(gross: int) -> int:
    """The roundoff that brings `gross` cents to whole units (half up, symmetric)."""
    rest = abs(gross) % 100
    off = (100 - rest) if rest >= 50 else -rest
    return off if gross >= 0 else -off


def render(spec: OrderSpec) -> Body:
    """The order as `/orders.json` serves it (every field; `fields` cuts it down)."""
    state, payment_state, order_type = STATES[spec.kind]
    items = []
    total_net = total_vat = 0
    for index, line in enumerate(spec.lines):
        item = _item(index, line, spec)
        items.append(item)
        total_net += cents(item["moneyitemtotal_net"])
        total_vat += cents(item["moneyitemtotal_vat"])
    delivery_gross = DELIVERY_GROSS if spec.registerid is None and spec.kind != "refund" else 0
    delivery_net = net_of(delivery_gross, DELIVERY_VAT)
    final_net, final_vat = total_net + delivery_net, total_vat + delivery_gross - delivery_net
    gross = final_net + final_vat
    paid = spec.kind in PAID_KINDS
    cash = paid and spec.paid is None and spec.payment_names == ["Cash"]
    roundoff = _cash_round(gross) if cash else 0  # a receipt's payments are what it took
    gross_all = gross + roundoff
    customer = spec.customer or {}
    additional: dict[str, str] = {"pos-timezone": spec.timezone} if spec.registerid else {}
    if spec.registerid:
        additional["pos-receiptid"] = (
            spec.receipt_id or f"SII{spec.eshopid:08d}{spec.receipt_seq:010d}"
        )
        if spec.staff is not None:
            additional["pos-staff-userid"] = spec.staff["userid"]
            additional["pos-staffsales-name"] = (
                f"{spec.staff['namefirst']} {spec.staff['namelast']}"
            )
    if spec.store is not None and spec.store_keys:
        additional["store-externalid"] = spec.store["externalid"]
        additional["store-externalgroupid"] = spec.store["externalgroupid"]
        additional["store-name"] = spec.store["name"]
    if customer:
        additional["crm-customerid"] = customer["customernumber"]
    if spec.credit is not None:
        additional["pos-originalsales-orderid"] = str(spec.credit.orderid)
    if spec.kind == "refund":
        additional["refundreasoncode-reasoncode"] = "RETURN"
    body: Body = {
        "orderid": spec.orderid,
        "eshopid": spec.eshopid,
        "externalid": None if spec.registerid else f"WEB-{spec.orderid}",
        "creditorderid": spec.credit.orderid if spec.credit is not None else None,
        **{f: customer.get(f, "") or "" for f in PII_FIELDS},
        **_addresses(customer, delivery=spec.registerid is None),
        "comment": "Leave at the door" if customer and spec.registerid is None else "",
        "commentinternal": "",
        "customerref": "",
        "checkoutref": "",
        "moneytotal_net": money(total_net),
        "moneytotal_vat": money(total_vat),
        "moneycheckout_net": "0.00",
        "moneycheckout_vat": "0.00",
        "moneytotal_gross_checkout": "0.00",
        "moneydelivery_net": money(delivery_net),
        "moneydelivery_vat": money(delivery_gross - delivery_net),
        "moneytotal_gross_delivery": money(delivery_gross),
        "moneyfinal_net": money(final_net),
        "moneyfinal_vat": money(final_vat),
        "moneyfinal_salestax": "0.00",
        "moneytotal_gross_roundoff": money(roundoff),
        "moneytotal_gross_all": money(gross_all),
        "orderdate": spec.orderdate,
        "orderstateid": state,
        "paymentstateid": payment_state,
        "ordertypeid": order_type,
        "datereserved": spec.orderdate + 7 * 86400 if spec.kind in ("pending", "booking") else None,
        "userid_staff": spec.staff["userid"] if spec.staff is not None else None,
        "registerid": spec.registerid,
        "warehouseid": spec.warehouse["warehouseid"],
        "currencycode": spec.currency,
        "checkouttypename": (
            f"Sitoo POS - {spec.payment_names[0]}"
            if spec.registerid and spec.payment_names
            else "Webshop checkout"
        ),
        "deliverytypename": "" if spec.registerid else "Home delivery",
        "additionaldata": additional,
        "orderitems": items,
        "payments": _payments(spec, gross_all) if paid else [],
        "reservedpayments": (
            [
                {
                    "id": f"R{spec.orderid}",
                    "name": "Klarna",
                    "moneyreserved": money(gross_all),
                    "externalid": None,
                    "reftype": "klarna",
                    "refid": f"K{spec.orderid}",
                    "cardissuer": "",
                    "additionaldata": {},
                }
            ]
            if spec.kind == "booking"
            else []
        ),
    }
    return body


def _addresses(customer: Body, *, delivery: bool) -> Body:
    out: Body = {}
    for prefix in ("invoice", "delivery"):
        use = bool(customer) and (prefix == "invoice" or delivery)
        out[f"{prefix}_address"] = customer.get("address", "") if use else ""
        out[f"{prefix}_address2"] = ""
        out[f"{prefix}_zip"] = customer.get("zip", "") if use else ""
        out[f"{prefix}_city"] = customer.get("city", "") if use else ""
        out[f"{prefix}_state"] = ""
        out[f"{prefix}_countryid"] = customer.get("countryid", "") if use else ""
    return out


def _per_unit(line: Line) -> tuple[int, int, int]:
    """(unit price, unit discount, row discount signed) in cents; a receipt row's unit
    prices are its row's divided by the quantity, to the cent (half up)."""
    if line.row_gross is None:
        unit = cents(line.product["moneyprice"])
        discount = unit * line.discount_pct // 100
        return unit, discount, discount * line.quantity
    units = max(abs(line.quantity), 1)
    paid = (2 * line.row_gross + units) // (2 * units)
    discount = (2 * line.row_discount + units) // (2 * units)
    sign = 1 if line.quantity >= 0 else -1
    return paid + discount, discount, sign * line.row_discount


def _item(index: int, line: Line, spec: OrderSpec) -> Body:
    product = line.product
    vat = int(product["vatvalue"])
    unit, discount, row_discount = _per_unit(line)
    unit_paid = unit - discount
    gross = line_gross(line)
    net = line_net(line)
    extra: dict[str, str] = {"product-group-name": line.group}
    if row_discount:
        extra["orderitem-moneyrowdiscount"] = money(row_discount)
    if spec.credit is not None:
        sold = [ln.product["productid"] for ln in spec.credit.lines]
        if product["productid"] in sold:  # the line of the sale it returns
            extra["pos-originalsales-orderitemid"] = str(sold.index(product["productid"]))
    if spec.kind == "refund":
        extra["reasoncode-return"] = "DEFECT"
    return {
        "orderitemid": index,
        "orderitemtype": 10,
        "productid": product["productid"],
        "productname": product["title"],
        "sku": product["sku"],
        "productattributes": "",
        "externalinput": "",
        "externalinputtitle": "",
        "unitlabel": product["unitlabel"],
        "deliveryinfo": "",
        "quantity": line.quantity,
        "decimalunitquantity": line.unit_quantity,
        "moneynetpriceperunit": money(net_of(unit_paid, vat)),
        "moneypriceorg": product["moneypriceorg"],
        "vatvalue": vat,
        "moneyitemtotal_net": money(net),
        "moneyitemtotal_vat": money(gross - net),
        "moneyoriginalprice": money(unit),
        "moneydiscountedprice": money(unit_paid),
        "moneydiscount": money(discount),
        **_voucher(line),
        "salestaxes": [],
        "additionaldata": extra,
    }


def _voucher(line: Line) -> Body:
    if line.discount_name:
        code = line.discount_name.replace(" ", "")
        return {"vouchercode": code, "vouchername": line.discount_name, "vouchercomment": "",
                "vouchervalue": 0}  # fmt: skip
    pct = line.discount_pct if line.row_gross is None else 0
    return {
        "vouchercode": f"SALE{pct}" if pct else "",
        "vouchername": f"Sale {pct}%" if pct else "",
        "vouchercomment": "",
        "vouchervalue": pct,
    }


def _payments(spec: OrderSpec, gross_all: int) -> list[Body]:
    if spec.paid is not None:
        paid = spec.paid
    else:
        names = spec.payment_names or ["Card"]
        first = gross_all if len(names) == 1 else gross_all * 30 // 100
        amounts = [first] + ([gross_all - first] if len(names) > 1 else [])
        paid = list(zip(names, amounts, strict=False))
    out = []
    for n, (name, amount) in enumerate(paid):
        card = name == "Card"
        extra: dict[str, str] = {"adyen-pspreference": f"PSP{spec.orderid}{n}"} if card else {}
        if name in ("Swish", "Vipps MobilePay"):  # the payer's phone: personal data
            payer = (spec.customer or {}).get("mobile")
            extra["mobile"] = payer or f"+46 70 555 {spec.orderid % 10000:04d}"
            key = "swish-paymentid" if name == "Swish" else "mobilepay-paymentid"
            extra[key] = f"M{spec.orderid}"
        out.append(
            {
                "name": name,
                "moneyamount": money(amount),
                "externalid": None,
                "reftype": "adyen" if card else "",
                "refid": f"PSP{spec.orderid}{n}" if card else "",
                "cardissuer": ("Visa", "Mastercard")[spec.orderid % 2] if card else "",
                "reservedpaymentid": None,
                "additionaldata": extra,
            }
        )
    return out


def list_orders(orders: dict[int, Body], query: Query) -> list[Body]:
    """The orders `/orders.json` matches, sorted as asked (before paging)."""
    rows = list(orders.values())
    tests: list[Callable[[Body], bool]] = []
    receipt = one(query, "receiptid")
    credit = integer(query, "creditorderid")
    ids = csv_ints(query, "orderid")
    if receipt is not None:  # overrides orderid ([dev])
        tests.append(lambda o: o["additionaldata"].get("pos-receiptid") == receipt)
    elif credit is not None:  # overrides orderid ([dev])
        tests.append(lambda o: o["creditorderid"] == credit)
    elif ids is not None:
        tests.append(lambda o: o["orderid"] in ids)
    _in(tests, csv_ints(query, "eshopid"), "eshopid")
    _in(tests, csv_ints(query, "orderstate"), "orderstateid")
    _in(tests, csv_ints(query, "paymentstate"), "paymentstateid")
    _in(tests, csv_ints(query, "ordertype"), "ordertypeid")
    _in(tests, csv_ints(query, "warehouseid"), "warehouseid")
    externalids = csv(query, "externalid")
    if externalids is not None:
        tests.append(lambda o: o["externalid"] in externalids)
    email = one(query, "email")
    if email is not None:
        tests.append(lambda o: o["email"] == email)
    _bound(tests, integer(query, "orderidfrom"), "orderid", lambda v, b: v >= b)
    _bound(tests, integer(query, "orderidto"), "orderid", lambda v, b: v < b)
    _bound(tests, integer(query, "orderdatefrom"), "orderdate", lambda v, b: v >= b)
    _bound(tests, integer(query, "orderdateto"), "orderdate", lambda v, b: v <= b)
    sort = one(query, "sort") or "-orderid"
    if sort not in ("orderid", "-orderid"):
        raise RestError(400, f"Invalid value for sort: {sort}")
    rows = [o for o in rows if all(t(o) for t in tests)]
    return sorted(rows, key=lambda o: int(o["orderid"]), reverse=sort.startswith("-"))


def _in(tests: list[Callable[[Body], bool]], wanted: set[int] | None, name: str) -> None:
    if wanted is not None:
        tests.append(lambda o: o[name] in wanted)


def _bound(
    tests: list[Callable[[Body], bool]],
    bound: int | None,
    name: str,
    ok: Callable[[Any, int], bool],
) -> None:
    if bound is not None:
        tests.append(lambda o: ok(o[name], bound))
