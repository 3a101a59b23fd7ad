"""Journals v3 (`/v3/journal-entries`): each register's event log, kept by the simulator.

Every closed z-report of a register yields that day's journal, generated deterministically
from the report: login, cash-start, cart events, one receipt per product group sold (refunds
too) with several items of the group's products in the register's site's catalogue (their
productid, sku and title, the group's name, quantity, some discounted; see
`catalog.pos_assortments`) and the payments the z-report counted for it
(`ZReport.receipt_payments`), drawer openings, petty cash and banking, printouts, an
X-report, sometimes a control-unit error,
cash-counted, the Z-report and logout: all 24 documented types. A day is uploaded together,
so its entries share one `dateadded` second. Some days carry a receipt in practice mode, and
some an entry of a type the docs do not list.

Fields the vendor documents are used as documented (JournalStaff, JournalCash, the receipt's
`additionaldata` keys, `decimalunitquantity`, `discounts[].discountname`): an item's
`decimalunitquantity` is its unit quantity, "0.000" for piece goods as in the vendor's
example, a weight ("0.350") for goods sold by weight. Item counts, receipt totals, item
prices and payments are not documented; the simulator writes them under the names
`quantity` (an int, as the vendor's order items count), `moneytotal`, `moneyrowprice`,
`moneydiscount` and `payments[].moneyamount`, which is what sitoo_sync assumes until the
live API shows otherwise. Like every amount on a refund receipt, `quantity` is positive
there (`isrefund` says it is a refund).

Entry `id`s count 1, 2, ... per register. Paging follows API_CONTRACT.md:
`{"items": [...], "next": "<opaque>"}`, with `next` absent at the end; a full page that
ends exactly at the end still carries one, to an empty page.
"""

from __future__ import annotations

import base64
import binascii
import json
import random
import threading
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sitoo_sync.simulator.chain import Register, ZReport, currency_of, time_zone_of
from sitoo_sync.simulator.config import SimConfig
from sitoo_sync.simulator.money import cents, money, receipt_payments, split_cents
from sitoo_sync.simulator.params import ApiProblem, integer, one
from sitoo_sync.simulator.rest_v2.catalog import Assortment, PosProduct, pos_assortments

MAX_NUM = 1000  # **assumed** maximum page size (API_CONTRACT.md)
UNKNOWN_TYPE = "loyalty-stamp"


class JournalSource(Protocol):
    """What a journal reads of its world (data.World): the knobs, the registers, and every
    closing, uploaded or not."""

    config: SimConfig
    registers: list[Register]
    #: The world's lock, which the journal shares (see `Journal`).
    lock: threading.RLock

    def all_reports(self) -> list[ZReport]: ...

    def withheld_reports(self) -> list[ZReport]: ...


@dataclass(frozen=True)
class PageQuery:
    """A `/journal-entries` query, parsed (journal_page): the date `field` it filters and
    sorts on, the order, the page size, the bounds on that date (inclusive), an entry type,
    and the `next` token it resumes at."""

    field: str
    descending: bool
    num: int
    lo: int | None
    hi: int | None
    kind: str | None
    token: str | None

    def admits(self, value: int, entry_type: str) -> bool:
        """Whether an entry whose `field` is `value`, of type `entry_type`, is asked for."""
        return (
            (self.lo is None or value >= self.lo)
            and (self.hi is None or value <= self.hi)
            and (self.kind is None or entry_type == self.kind)
        )


class Journal:
    """Per-register journals, extended lazily as the register's z-reports appear."""

    def __init__(self, world: JournalSource) -> None:
        self.world = world
        # The world's own lock, not one of its own: a journal page reads the world's
        # closings (journal lock, then world lock) while the REST v2 world makes orders of
        # the receipts (world lock, then journal lock). Two locks taken in both orders
        # deadlocked a journal request against an orders request.
        self.lock = world.lock
        self._entries: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self._journaled: set[tuple[str, int]] = set()
        # receipts a register made that never reached its journal (`inject_missing_receipt`)
        self._lost: dict[str, list[dict[str, Any]]] = defaultdict(list)

    def entries(self, registerid: str) -> list[dict[str, Any]]:
        """Every entry of the register so far (catching up with new z-reports first)."""
        with self.lock:
            self._catch_up(registerid)
            return self._entries[registerid]

    def receipts(self, registerid: str) -> list[dict[str, Any]]:
        """Every sale and refund the register rang up, as receipt entries, by `datecreated`:
        its journal's non-practice receipts and those lost before reaching the journal (the
        sale happened all the same; rest_v2 makes an order of each)."""
        with self.lock:
            made = [e for e in self.entries(registerid) if e["type"] == "receipt"]
            made += self._lost[registerid]
            made = [e for e in made if not e["ispractice"]]
            return sorted(made, key=lambda e: (e["datecreated"], e["data"]["additionaldata"]
                                               ["pos-receiptid"]))  # fmt: skip

    def page(self, registerid: str, query: PageQuery) -> dict[str, Any] | bytes:
        """One page of `/journal-entries`: the register's entries the query admits, sorted
        on its date field, `num` from where its token resumes. A full page carries a `next`
        token even when it ends exactly where the entries do, as an API that does not count
        ahead would: the page it leads to is empty, without one (the contract says only that
        no token ends the query)."""
        selected = [e for e in self.entries(registerid) if query.admits(e[query.field], e["type"])]
        selected.sort(key=lambda e: (e[query.field], e["id"]), reverse=query.descending)
        start = token_offset(query.token) if query.token else 0
        end = start + query.num
        answer: dict[str, Any] = {"items": selected[start:end]}
        if end <= len(selected):
            answer["next"] = next_token(end)
        return answer

    def _catch_up(self, registerid: str) -> None:
        # A closing that was never uploaded, or whose upload was corrupted, still happened:
        # its day is in the journal.
        new = [
            r
            for r in (*self.world.all_reports(), *self.world.withheld_reports())
            if r.closing.get("registerid") == registerid
            and (registerid, r.closing["zreportid"]) not in self._journaled
        ]
        for report in sorted(new, key=lambda r: (r.dateadded, r.closing["zreportid"])):
            self._journaled.add((registerid, report.closing["zreportid"]))
            self._append(registerid, self._day(report.closing, report.receipt_payments))

    def assortment(self, eshopid: int) -> Assortment:
        """What the registers of site `eshopid` sell: the site's catalogue (a site the
        catalogue does not know sells the first site's)."""
        sites = pos_assortments(self.world.config.seed, self.world.config.rest)
        return sites.get(eshopid) or sites[min(sites)]

    def _append(self, registerid: str, day: list[dict[str, Any]]) -> None:
        entries = self._entries[registerid]
        for entry in day:
            entry["id"] = len(entries) + 1
            entries.append(entry)

    def offline_burst(self, registerid: str, count: int, at: int, *, hours_old: int = 5) -> None:
        """A register back online uploads `count` receipts in the one second `at`."""
        with self.lock:
            self._catch_up(registerid)
            reg = next(r for r in self.world.registers if r.registerid == registerid)
            rng = random.Random(f"{registerid}/burst/{at}")
            products = self.assortment(reg.eshopid).products
            day = [
                self._receipt(
                    reg.registerkey,
                    reg.store_id,
                    created=at - hours_old * 3600 + i,
                    number=i,
                    products=products,
                    quantity=1,
                    total=rng.randint(100, 99999),
                    refund=False,
                    practice=False,
                    currency=currency_of(reg.store_id),
                    timezone=time_zone_of(reg.eshopid),
                )
                for i in range(count)
            ]
            for entry in day:
                entry.update(dateadded=at, registerid=registerid, registerkey=reg.registerkey)
            self._append(registerid, day)

    # ---- one day ------------------------------------------------------------------------

    def _day(  # noqa: PLR0912, PLR0915  # a day's script reads best top to bottom
        self, z: Mapping[str, Any], paid: list[list[tuple[str, int]]] | None = None
    ) -> list[dict[str, Any]]:
        """The day a z-report closes; `paid` holds each receipt's payments as the z-report
        counted them (sales receipts, then refunds), so the two agree payment by payment."""
        rng = random.Random(f"{z['registerid']}/{z['zreportid']}")
        closed = int(z["datecreated"])
        opened = int(z["dateopened"] or closed - 8 * 3600)
        staff = {"staff": z["staff"], "staffuserid": z["staffuserid"]}
        cur = z["currencycode"]
        zone = time_zone_of(int(z["eshopid"]))
        assortment = self.assortment(int(z["eshopid"]))

        def cash(amount: str) -> dict[str, Any]:
            return {"currencycode": cur, "moneycash": amount, **staff}

        t = opened - 60
        # cash-start "indicates the opening of the POS": it is at dateopened.
        out: list[tuple[int, str, dict[str, Any], bool]] = [
            (t, "login", dict(staff), False),
            (opened, "cash-start", cash(z["moneycash_in"]), False),
        ]
        t += 60
        first = self.world.registers[0].registerid if self.world.registers else None
        drop_receipt = (
            self.world.config.inject_missing_receipt
            and z["registerid"] == first
            and z["zreportid"] == 4
        )
        groups = [("sales", g) for g in z["productgroupssales"]]
        groups += [("refund", g) for g in z["productgroupsrefund"]]
        for n, (section, g) in enumerate(groups):
            t += 300
            # The receipt comes of its own random stream: made first, its first item is what
            # the cart events show.
            receipt = self._receipt(
                z["registerkey"],
                z["store_id"],
                created=t + 30,
                number=z["zreportid"] * 100 + n,
                products=assortment.of_group(g["name"]),
                quantity=g["numtotal"],
                total=cents(g["moneytotal"]),
                refund=section == "refund",
                practice=False,
                currency=cur,
                timezone=zone,
                paid=paid[n] if paid and n < len(paid) else None,
            )
            first = receipt["data"]["items"][0]
            item = {"sku": first["sku"], "name": first["name"], "moneyrowprice": g["moneytotal"]}
            out.append((t, "cart-item-add", item, False))
            if rng.random() < 0.2:
                out.append((t + 1, "cart-item-change", item, False))
            if rng.random() < 0.1:
                out.append((t + 2, "cart-item-remove", item, False))
                out.append((t + 3, "cart-item-add", item, False))
            if rng.random() < 0.1:
                out.append((t + 4, "cart-voucher-add", {"vouchercode": "3FOR2"}, False))
                out.append((t + 5, "cart-voucher-remove", {"vouchercode": "3FOR2"}, False))
            pay = {"name": "Card", "moneyamount": g["moneytotal"]}
            out.append((t + 10, "cart-payment-add", pay, False))
            if rng.random() < 0.1:
                out.append((t + 11, "cart-payment-retry", pay, False))
            if rng.random() < 0.05:
                out.append((t + 12, "cart-payment-cancel", pay, False))
                out.append((t + 13, "cart-payment-add", pay, False))
            out.append((t + 20, "cart-payment-success", pay, False))
            if rng.random() < 0.03:
                out.append((t + 21, "cart-payment-remove", pay, False))
                out.append((t + 22, "cart-payment-success", pay, False))
            if not (drop_receipt and n == 0):  # else it never reached the journal backup
                out.append((t + 30, "receipt", receipt["data"], False))
            else:
                lost = {**receipt, "dateadded": z["dateadded"], "registerid": z["registerid"]}
                self._lost[z["registerid"]].append({**lost, "registerkey": z["registerkey"]})
            if rng.random() < 0.1:
                out.append((t + 40, "cart-clear", {}, False))
        if z["numpractice"]:  # a training receipt: ispractice, counted in moneypractice only
            practice = self._receipt(
                z["registerkey"],
                z["store_id"],
                created=t + 100,
                number=z["zreportid"] * 100 + 99,
                products=assortment.products,
                quantity=1,
                total=cents(z["moneypractice"]),
                refund=False,
                practice=True,
                currency=cur,
                timezone=zone,
            )
            out.append((t + 100, "receipt", practice["data"], True))
        for k in range(int(z["numopendrawer"])):
            out.append((t + 200 + k, "open-cash-drawer", dict(staff), False))
        if z["moneycash_petty"] != "0.00":
            out.append((t + 300, "cash-petty", cash(z["moneycash_petty"]), False))
        if z["moneycash_bank"] != "0.00":
            out.append((t + 310, "cash-bank", cash(z["moneycash_bank"]), False))
        out.append((t + 400, "printout", {"printouttype": "receipt-copy", **staff}, False))
        out.append((t + 500, "report-x", {"moneysalestotal": z["moneysalestotal"]}, False))
        if rng.random() < 0.05:
            out.append((t + 510, "ctu-error", {"errorcode": "CTU-17", "message": "timeout"}, False))
        if rng.random() < 0.1:
            out.append((t + 520, UNKNOWN_TYPE, {"points": rng.randint(1, 9)}, False))
        out.append((closed - 60, "cash-counted", cash(z["moneycash_counted"]), False))
        if z["moneycash_bankfinal"] != "0.00":
            out.append((closed - 30, "cash-bank-final", cash(z["moneycash_bankfinal"]), False))
        out.append((closed, "report-z", {"zreportid": z["zreportid"]}, False))
        out.append((closed + 5, "logout", dict(staff), False))
        return [
            {
                "data": data,
                "dateadded": z["dateadded"],
                "datecreated": created,
                "ispractice": practice,
                "registerid": z["registerid"],
                "registerkey": z["registerkey"],
                "type": kind,
            }
            for created, kind, data, practice in out
        ]

    @staticmethod
    def _receipt(
        registerkey: str,
        store_id: str | None,
        *,
        created: int,
        number: int,
        products: Sequence[PosProduct],
        quantity: int,
        total: int,
        refund: bool,
        practice: bool,
        currency: str,
        timezone: str,
        paid: list[tuple[str, int]] | None = None,
    ) -> dict[str, Any]:
        """One receipt of `quantity` items of `products` (a site's, see `Assortment`) for
        `total` cents.

        Realistic but exact: the items become rows of products drawn from `products`, each
        row naming its product's productid, sku, title, product group and VAT (a product
        bought twice is one row of quantity 2), the rows' prices add up to the total, some
        rows carry a discount (the row price is after it), and it is paid
        by `paid` ((name, cents) adding up to the total: the payments its z-report counted),
        else by payments drawn as `receipt_payments` draws them. The receipt's own random
        stream keeps the rest of the day's script unchanged.
        """
        own = random.Random(f"{registerkey}/{number}/{created}")
        scale = random.Random(f"{registerkey}/{number}/{created}/kg")  # (own's draws unchanged)
        rows: list[int] = []
        left = max(quantity, 1)
        while left:
            take = min(left, own.choice((1, 1, 1, 2, 3)))
            rows.append(take)
            left -= take
        prices = split_cents(own, total, len(rows))
        items = []
        for qty, price in zip(rows, prices, strict=True):
            product = products[own.randrange(len(products))]
            discount = price // 5 if own.random() < 0.25 and price > 100 else 0
            items.append(
                {
                    "additionaldata": {
                        "item-delivered": "true" if own.random() < 0.97 else "false",
                        "item-productid": product.productid,
                        "product-group-name": product.group,
                    },
                    "quantity": qty,
                    "decimalunitquantity": unit_quantity(scale, product),
                    "discounts": (
                        [{"discountname": "3 FOR 2", "moneydiscount": money(discount)}]
                        if discount
                        else []
                    ),
                    "moneyrowprice": money(price),
                    "name": product.name,
                    "sku": product.sku,
                    "vatvalue": product.vatvalue,
                }
            )
        if paid is None:  # drawn last: the rest of the receipt is the same either way
            paid = receipt_payments(own, total, refund=refund)
        payments = [{"name": kind, "moneyamount": money(part)} for kind, part in paid]
        return {
            "datecreated": created,
            "ispractice": practice,
            "type": "receipt",
            "data": {
                "additionaldata": {
                    "pos-receiptid": f"{registerkey}{number:06d}",
                    "pos-staff-externalid": "PS",
                    "pos-timezone": timezone,
                    "store-externalid": store_id or "",
                    "store-name": "",
                },
                "comment": "",
                "currencycode": currency,
                "isrefund": refund,
                "items": items,
                "moneytotal": money(total),
                "payments": payments,
            },
        }

    # ---- the simulator's own truth, for tests -------------------------------------------

    def all_entries(self) -> list[dict[str, Any]]:
        """Every entry of every register."""
        with self.lock:
            return [e for reg in self.world.registers for e in self.entries(reg.registerid)]

    def entries_per_type(self) -> Counter[str]:
        """How many entries of each type exist."""
        return Counter(e["type"] for e in self.all_entries())

    def receipt_totals_per_store(self) -> dict[str, str]:
        """Sum of non-practice sales receipts' totals per store (refunds subtract)."""
        totals: dict[str, int] = defaultdict(int)
        for e in self.all_entries():
            if e["type"] != "receipt" or e["ispractice"]:
                continue
            data = e["data"]
            sign = -1 if data["isrefund"] else 1
            totals[data["additionaldata"]["store-externalid"]] += sign * cents(data["moneytotal"])
        return {k: money(v) for k, v in totals.items()}

    def cash_moved_per_register(self) -> dict[str, str]:
        """Sum of `moneycash` of every cash event per register."""
        totals: dict[str, int] = defaultdict(int)
        for e in self.all_entries():
            if e["type"].startswith("cash-"):
                totals[e["registerid"]] += cents(e["data"]["moneycash"])
        return {k: money(v) for k, v in totals.items()}


def unit_quantity(rng: random.Random, product: PosProduct) -> str:
    """A receipt item's `decimalunitquantity`: "0.000" for piece goods, as the vendor's
    example item sends it; the weight of one unit (50 g to 2.5 kg) for a product sold by
    weight. (A weighed row of quantity 2 is two packs of that weight.)"""
    if not product.weighed:
        return "0.000"
    grams = rng.randint(50, 2500)
    return f"{grams // 1000}.{grams % 1000:03d}"


def next_token(offset: int) -> str:
    """The opaque `next` token that resumes a query at `offset`."""
    return base64.urlsafe_b64encode(json.dumps({"o": offset}).encode()).decode()


def token_offset(token: str) -> int:
    """The offset a `next` token resumes at; a 400 when it is not one of ours."""
    try:
        value = json.loads(base64.urlsafe_b64decode(token.encode()))["o"]
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise ApiProblem(400, "Invalid next cursor") from None
    if not isinstance(value, int) or value < 0:
        raise ApiProblem(400, "Invalid next cursor")
    return value


def journal_page(journal: Journal, query: Mapping[str, list[str]]) -> dict[str, Any] | bytes:
    """One page of `/journal-entries` for the query."""
    register = one(query, "register_id")
    if not register:
        raise ApiProblem(400, "register_id is required")
    date_type = one(query, "date_type") or "created"
    if date_type not in ("created", "added"):
        raise ApiProblem(400, f"Invalid value for date_type: {date_type}")
    order = one(query, "sort_order") or "asc"
    if order not in ("asc", "desc"):
        raise ApiProblem(400, f"Invalid value for sort_order: {order}")
    return journal.page(
        register,
        PageQuery(
            field="date" + date_type,
            descending=order == "desc",
            num=max(1, min(integer(query, "num", 10) or 10, MAX_NUM)),
            lo=integer(query, "date_from"),
            hi=integer(query, "date_to"),
            kind=one(query, "type"),
            token=one(query, "next"),
        ),
    )
