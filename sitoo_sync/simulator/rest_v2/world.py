"""`RestWorld`: the REST v2 state of a simulated account, built from the seed on first use.

History: a POS sale IS an order. Every receipt a register rang up (its journal's
non-practice receipts, plus one lost before reaching the journal: journal.py `receipts`)
is one order of that register: same time, rows, amounts, payments and `pos-receiptid`; a
refund receipt a refund order with negative amounts, naming (ours: the journal does not)
the register's latest earlier sale of the same product group, else of any group (a refund
always points back, rest-v2-catalogue.md). So closed POS orders per
register and local day add up to that day's z-reports, as in the real backend. Orders get
ids in the order the backend stores them, so an offline register's orders arrive hours
late with an old `orderdate` and a new `orderid`; receipts of closings added later become
orders on the next look (`catch_up`). Besides them: carts cancelled before a sale, carts
parked since a register's last closing (still open; they settle, without a new id, into
sales no z-report holds yet), and site 1's web orders (pending, booked, abandoned, paid).
Closed sales and refunds move stock through warehouse transactions; open web orders and
bookings reserve stock without one. A few sold products are deleted at the end
(`catalog.discontinued`: the registers' journals never sell them), and their stock rows with
them (**assumed**: the fact sheet does not say what a deletion does to stock; a row that is
gone is the case a sync must notice). Randomness comes from
its own generator seeded from `SimConfig.seed`, so building it never disturbs the z-report
world, and it is built on first use only (tests that never ask for REST v2 data pay
nothing).

Mutators for tests (all under the world's lock, all at the world's `now`): `add_orders`,
`add_late_order`, `add_refund`, `settle`, `advance`, `delete_product`, `touch_product`,
`move_stock`, `reserve`, `remove_item`, `commit_all`. With `RestConfig.late_commit_every`,
some orders and warehouse transactions made after the history are listed only a few
requests after the ids above them (`listed_orders`, `Stock.listed_transactions`).

What it should add up to (net sales per store and day, the best sellers, stock values) is
totals.py's, computed from the specs rather than from the served JSON.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sitoo_sync.simulator.journal import Journal
from sitoo_sync.simulator.money import cents
from sitoo_sync.simulator.rest_v2.catalog import (
    CURRENCY,
    GROUPS,
    POS_TIME_ZONE,
    Catalog,
    build_catalog,
    discontinued,
    rest_random,
)
from sitoo_sync.simulator.rest_v2.orders import OPEN_KINDS, PAID_KINDS, Line, OrderSpec, render
from sitoo_sync.simulator.rest_v2.query import Body
from sitoo_sync.simulator.rest_v2.stock import MOVE_IN, REFUND, SALES, STOCKTAKING, Stock
from sitoo_sync.simulator.rest_v2.users import build_users

if TYPE_CHECKING:
    from sitoo_sync.simulator.chain import Register
    from sitoo_sync.simulator.data import World

FIRST_ORDER_ID = 100001


class RestWorld:
    """Catalogue, stock, orders and users of the simulated account; thread-safe via the
    world's lock."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.config = world.config.rest
        self.lock = world.lock
        self.rng = rest_random(world.config.seed)
        now = world.config.now
        first_day = datetime.fromtimestamp(now - 3600, UTC).date() - timedelta(
            days=world.config.days
        )
        self.start = int(datetime(first_day.year, first_day.month, first_day.day, tzinfo=UTC)
                         .timestamp())  # fmt: skip
        self.catalog: Catalog = build_catalog(self.rng, self.config, self.start)
        self.users: list[Body] = build_users(
            self.rng,
            self.config.customers,
            [w["warehouseid"] for w in self.catalog.warehouses],
            self.start,
        )
        self.stock = Stock()
        self.specs: dict[int, OrderSpec] = {}
        self.orders: dict[int, Body] = {}  # rendered, by orderid
        self.next_orderid = FIRST_ORDER_ID
        self._receipts = 0
        self._line_count = 0
        # What the registers rang up: the journal, or with journals made lazily at scale
        # (lazy_journal.py) the journals the z-reports imply.
        self.receipt_source = Journal(world) if world.config.lazy_journal_size else world.journal
        self._rung: set[tuple[str, str]] = set()  # (registerid, pos-receiptid) with an order
        # by register and group ("": any group)
        self._last_sale: dict[tuple[str, str], OrderSpec] = {}
        # Orders stored but not yet committed (`late_commit_every`): orderid -> how many more
        # `/orders.json` answers until it is listed.
        self.uncommitted: dict[int, int] = {}
        self._live_orders = 0  # orders stored after the history
        self.edits = 0  # products edited by `RestConfig.edits_per_request`
        self._history_built = False
        self._stock_up()
        self._build_history(now)
        self._delete_sold_products(now - 7200)
        self._history_built = True
        self.stock.late_commits(
            self.config.late_commit_every,
            self.config.late_commit_requests,
            self.config.late_commit_span,
        )

    # ---- construction -----------------------------------------------------------------

    @property
    def now(self) -> int:
        """The world's clock."""
        return self.world.config.now

    def _stock_up(self) -> None:
        cat = self.catalog
        for w in cat.warehouses:
            lines = []
            for product in cat.site_products(w["eshopid"], include_inactive=True):
                self.stock.add_item(w["warehouseid"], product["sku"], _cents(product))
                units = self.rng.randint(0, 3) if not w["sellable"] else self.rng.randint(30, 80)
                lines.append((product["sku"], units))
            self.stock.transact(w["eshopid"], w["warehouseid"], MOVE_IN, lines, self.start - 86400)
        for w in cat.warehouses:  # a stocktaking finds two units missing on day 0
            if w["sellable"]:
                skus = sorted(sku for (wid, sku) in self.stock.items if wid == w["warehouseid"])
                lines = [(sku, -1) for sku in skus[:2]]
                self.stock.transact(w["eshopid"], w["warehouseid"], STOCKTAKING, lines,
                                    self.start - 3600)  # fmt: skip

    def _build_history(self, now: int) -> None:
        specs = self._receipt_specs(now, arrive_now=False)
        specs += self._open_pos_specs(now)
        days = self.world.config.days
        for d in range(days + 1):
            day_start = self.start + d * 86400
            for _ in range(self.config.web_orders_per_day):
                orderdate = day_start + self.rng.randint(0, 86399)
                if orderdate > now - 120:
                    continue
                spec = self._web_spec(orderdate, orderdate + self.rng.randint(1, 5))
                self._settle_if_due(spec, now)
                specs.append(spec)
        specs.sort(key=lambda s: (s.arrival, s.orderdate))
        for spec in specs:
            self._store(spec)

    def _receipt_specs(self, now: int, *, arrive_now: bool) -> list[OrderSpec]:
        """An order for every receipt the registers rang up that has none yet: the sale or
        refund itself, arriving seconds later (or, offline, hours later; `arrive_now`:
        now), and now and then a cart cancelled before it."""
        out: list[OrderSpec] = []
        for reg in self.world.registers:
            for entry in self.receipt_source.receipts(reg.registerid):
                receipt_id = entry["data"]["additionaldata"]["pos-receiptid"]
                if (reg.registerid, receipt_id) in self._rung:
                    continue
                self._rung.add((reg.registerid, receipt_id))
                n = len(self._rung)
                created = int(entry["datecreated"])
                offline = self.config.offline_every and n % self.config.offline_every == 0
                delay = self.rng.randint(3, 30) * 3600 if offline else self.rng.randint(2, 90)
                arrival = now if arrive_now else min(created + delay, now - 60)
                spec = self._receipt_spec(reg, entry, arrival, n)
                out.append(spec)
                every = self.config.cancelled_every
                if every and n % every == 0:
                    cart = self._pos_spec(reg, created - 90, min(created - 88, arrival), n)
                    cart.kind = "cancelled"
                    out.append(cart)
        return out

    def _open_pos_specs(self, now: int) -> list[OrderSpec]:
        """Carts parked at a register since its last closing, still open (none at a register
        dark for days)."""
        closed: dict[str, int] = {}
        for report in (*self.world.all_reports(), *self.world.withheld_reports()):
            rid = report.body.get("registerid")
            if isinstance(rid, str):
                closed[rid] = max(closed.get(rid, 0), int(report.body["datecreated"]))
        out = []
        for reg in self.world.registers:
            last = closed.get(reg.registerid, self.start)
            if now - last > 2 * 86400 or last + 600 >= now - 120:
                continue
            for _ in range(self.config.parked_per_register):
                orderdate = self.rng.randint(last + 600, now - 120)
                spec = self._pos_spec(reg, orderdate, min(orderdate + 30, now - 60), 1)
                spec.kind = "parked"
                self._settle_if_due(spec, now)
                out.append(spec)
        return out

    def _settle_if_due(self, spec: OrderSpec, now: int) -> None:
        if spec.kind in OPEN_KINDS and spec.orderdate + self.config.settle_after <= now:
            spec.kind = _settled(spec)

    def _delete_sold_products(self, at: int) -> None:
        # The discontinued products, once sold: the registers' journals never sell them
        # (catalog.pos_assortments), so no receipt names a product the listing lost.
        sold = {line.product["productid"] for s in self.specs.values() for line in s.lines}
        for pid in discontinued(self.catalog, self.config.deleted_products_per_site):
            if pid in sold:
                self.delete_product(pid, at=at)

    def _lines(self, eshopid: int, count: int, sign: int = 1) -> list[Line]:
        products = self.catalog.site_products(eshopid, include_inactive=False)
        lines = []
        for product in self.rng.sample(products, min(count, len(products))):
            self._line_count += 1
            every = self.config.discount_every
            pct = self.rng.choice((10, 20, 30)) if every and self._line_count % every == 0 else 0
            group = next(g[0] for i, g in enumerate(GROUPS) if i + 2 == product["vatid"])
            lines.append(Line(dict(product), sign * self.rng.randint(1, 3), pct, group))
        return lines

    def _staff_and_customer(self) -> tuple[Body, Body | None]:
        staff = [u for u in self.users if u["role"] is not None]
        customers = [u for u in self.users if u["role"] is None]
        return self.rng.choice(staff), (
            self.rng.choice(customers) if self.rng.random() < 0.25 else None
        )

    def _pos_spec(self, reg: Register, orderdate: int, arrival: int, n: int) -> OrderSpec:
        """A sale at `reg` of products drawn from the catalogue (a cart, or a sale the
        journal does not hold yet: its day is not closed)."""
        store = self.catalog.store_by_externalid(reg.store_id)
        every = self.config.no_store_keys_every
        pay = self.rng.choice((["Card"], ["Card"], ["Cash"], ["Gift Card", "Card"]))
        if self.rng.random() < 0.15:
            pay = ["Swish"] if reg.eshopid == 1 else ["Vipps MobilePay"]
        staff, customer = self._staff_and_customer()
        self._receipts += 1
        return OrderSpec(
            eshopid=reg.eshopid,
            orderdate=orderdate,
            arrival=arrival,
            lines=self._lines(reg.eshopid, self.rng.randint(1, 4)),
            kind="sale",
            warehouse=self.catalog.sales_warehouse(reg.eshopid, reg.store_id),
            currency=CURRENCY[reg.eshopid],
            timezone=POS_TIME_ZONE[reg.eshopid],
            payment_names=pay,
            registerid=reg.registerid,
            store=store,
            store_keys=not (every and n % every == 0),
            staff=staff,
            customer=customer,
            receipt_seq=self._receipts,
            receipt_id=f"{reg.registerkey}{990000 + self._receipts:06d}",
        )

    def _receipt_spec(
        self, reg: Register, entry: dict[str, Any], arrival: int, n: int
    ) -> OrderSpec:
        """The order a journal receipt is: same register, time, rows, amounts, payments and
        `pos-receiptid`; a refund receipt a refund order with negative amounts."""
        data = entry["data"]
        extra = data["additionaldata"]
        sign = -1 if data["isrefund"] else 1
        lines = [self._receipt_line(item, sign) for item in data["items"]]
        paid = [(p["name"], sign * cents(p["moneyamount"])) for p in data["payments"]]
        every = self.config.no_store_keys_every
        staff, customer = self._staff_and_customer()
        spec = OrderSpec(
            eshopid=reg.eshopid,
            orderdate=int(entry["datecreated"]),
            arrival=arrival,
            lines=lines,
            kind="refund" if sign < 0 else "sale",
            warehouse=self.catalog.sales_warehouse(reg.eshopid, reg.store_id),
            currency=str(data["currencycode"]),
            timezone=str(extra["pos-timezone"]),
            payment_names=[name for name, _ in paid],
            registerid=reg.registerid,
            store=self.catalog.store_by_externalid(reg.store_id),
            store_keys=not (every and n % every == 0),
            staff=staff,
            customer=customer,
            receipt_id=str(extra["pos-receiptid"]),
            paid=paid,
        )
        group = lines[0].group if lines else ""
        if sign > 0:
            self._last_sale[(reg.registerid, group)] = spec
            self._last_sale[(reg.registerid, "")] = spec
        else:
            # The journal names no sale: ours is the latest of the group at the register,
            # else its latest of any group (a refund always points back, rest-v2-catalogue
            # 2.x: "point back via creditorderid"; a register's day sells before it refunds).
            sale = self._last_sale.get((reg.registerid, group))
            if sale is None or sale.orderdate > spec.orderdate:
                sale = self._last_sale.get((reg.registerid, ""))
            if sale is not None and sale.orderdate <= spec.orderdate:
                spec.credit = sale
                spec.arrival = max(spec.arrival, sale.arrival + 1)
        return spec

    def _receipt_line(self, item: dict[str, Any], sign: int) -> Line:
        pid = int(item["additionaldata"]["item-productid"])
        product = self.catalog.products.get(pid) or self.catalog.deleted[pid]
        discounts = item.get("discounts") or []
        return Line(
            dict(product),
            sign * int(item["quantity"]),  # the count; decimalunitquantity is per unit
            0,
            str(item["additionaldata"]["product-group-name"]),
            row_gross=cents(item["moneyrowprice"]),
            row_discount=sum(cents(d["moneydiscount"]) for d in discounts),
            discount_name=str(discounts[0]["discountname"]) if discounts else "",
            unit_quantity=item.get("decimalunitquantity"),
        )

    def _web_spec(self, orderdate: int, arrival: int) -> OrderSpec:
        r = self.rng.random()
        kind = ("pending" if r < 0.25 else "booking" if r < 0.4 else "abandoned" if r < 0.45
                else "sale")  # fmt: skip
        return OrderSpec(
            eshopid=1,
            orderdate=orderdate,
            arrival=arrival,
            lines=self._lines(1, self.rng.randint(1, 3)),
            kind=kind,
            warehouse=self.catalog.sales_warehouse(1, None),
            currency=CURRENCY[1],
            timezone=POS_TIME_ZONE[1],
            payment_names=[self.rng.choice(("Card", "Klarna", "Swish"))],
            settles_to="cancelled" if self.rng.random() < 0.25 else "sale",
            customer=self.rng.choice([u for u in self.users if u["role"] is None]),
        )

    def _refund_spec(self, sale: OrderSpec, when: int) -> OrderSpec:
        lines = [replace(ln, quantity=-ln.quantity) for ln in sale.lines]
        self._receipts += 1
        return OrderSpec(
            eshopid=sale.eshopid,
            orderdate=when,
            # Never before the sale it refunds: an offline register uploads in order.
            arrival=max(when + 30, sale.arrival + 1),
            lines=lines[:1] if len(lines) > 1 and when % 2 else lines,
            kind="refund",
            warehouse=sale.warehouse,
            currency=sale.currency,
            timezone=sale.timezone,
            payment_names=sale.payment_names[-1:],
            registerid=sale.registerid,
            store=sale.store,
            store_keys=sale.store_keys,
            staff=sale.staff,
            customer=sale.customer,
            credit=sale,
            receipt_seq=self._receipts,
        )

    def _store(self, spec: OrderSpec) -> Body:
        """Give `spec` the next id, apply its stock effect and render it (listed at once,
        or, every `late_commit_every`th order after the history, once it commits)."""
        spec.orderid = self.next_orderid
        self.next_orderid += 1
        self.specs[spec.orderid] = spec
        every = self.config.late_commit_every
        if self._history_built and every:
            span = self.config.late_commit_span
            for held in [i for i in self.uncommitted if spec.orderid - i >= span]:
                del self.uncommitted[held]  # overtaken by `span` ids: it has committed
            self._live_orders += 1
            if self._live_orders % every == 0:
                self.uncommitted[spec.orderid] = self.config.late_commit_requests
        self._stock_effect(spec, None, spec.kind, spec.arrival)
        body = self.orders[spec.orderid] = render(spec)
        return body

    def _stock_effect(self, spec: OrderSpec, old: str | None, new: str, at: int) -> None:
        wid = spec.warehouse["warehouseid"]
        lines = [(ln.product["sku"], ln.quantity) for ln in spec.lines]
        if old in ("pending", "booking"):  # the reservation ends either way
            for sku, qty in lines:
                self.stock.reserve(wid, sku, -qty)
        if new in ("pending", "booking"):
            for sku, qty in lines:
                self.stock.reserve(wid, sku, qty)
        elif new in PAID_KINDS:
            kind = REFUND if new == "refund" else SALES
            moved = [(sku, -qty) for sku, qty in lines]
            self.stock.transact(spec.eshopid, wid, kind, moved, at,
                                orderdeliveryid=500000 + spec.orderid)  # fmt: skip

    # ---- changes between ticks --------------------------------------------------------

    def add_orders(self, count: int, kind: str = "sale") -> list[Body]:
        """`count` orders made and stored now: POS orders round the registers that have a
        store (`sale`, `parked`, `cancelled`), web orders for `pending`/`booking`/`abandoned`."""
        with self.lock:
            registers = [r for r in self.world.registers if r.store_id is not None]
            out = []
            for i in range(count):
                if kind in ("pending", "booking", "abandoned"):
                    spec = self._web_spec(self.now, self.now)
                else:
                    reg = registers[(len(self.specs) + i) % len(registers)]
                    spec = self._pos_spec(reg, self.now, self.now, len(self.specs))
                spec.kind = kind
                out.append(self._store(spec))
            return out

    def catch_up(self) -> list[Body]:
        """Orders for receipts rung up since the last look (z-reports added to the world
        bring their days' receipts; a register back online its burst): stored now."""
        with self.lock:
            specs = self._receipt_specs(self.now, arrive_now=True)
            specs.sort(key=lambda s: (s.arrival, s.orderdate))
            return [self._store(spec) for spec in specs]

    def add_late_order(self, orderdate: int) -> Body:
        """An offline register's sale made at `orderdate` that reaches the backend only now."""
        with self.lock:
            reg = next(r for r in self.world.registers if r.store_id is not None)
            spec = self._pos_spec(reg, orderdate, self.now, 1)
            spec.kind = "sale"
            return self._store(spec)

    def add_refund(self, orderid: int) -> Body:
        """A refund of closed sale `orderid`, made now: a new order with negative amounts."""
        with self.lock:
            sale = self.specs[orderid]
            if sale.kind not in PAID_KINDS or sale.credit is not None:
                raise ValueError(f"order {orderid} is not a closed sale")
            return self._store(self._refund_spec(sale, self.now))

    def open_orders(self) -> list[int]:
        """Ids of orders that can still change (open, parked, pending or reserved payment)."""
        with self.lock:
            return sorted(i for i, s in self.specs.items() if s.kind in OPEN_KINDS)

    def settle(self, orderid: int, to: str | None = None) -> Body:
        """An open order settles now (parked -> completed, pending -> paid or cancelled,
        booking -> paid); same id, new states."""
        with self.lock:
            spec = self.specs[orderid]
            if spec.kind not in OPEN_KINDS:
                raise ValueError(f"order {orderid} is not open")
            new = to or _settled(spec)
            self._stock_effect(spec, spec.kind, new, self.now)
            spec.kind = new
            body = self.orders[orderid] = render(spec)
            return body

    def advance(self, seconds: int) -> list[int]:
        """Move the clock; every open order now due settles. Returns the settled ids."""
        with self.lock:
            self.world.advance_clock(seconds)
            due = [
                i for i in self.open_orders()
                if self.specs[i].orderdate + self.config.settle_after <= self.now
            ]  # fmt: skip
            for orderid in due:
                self.settle(orderid)
            return due

    def delete_product(self, productid: int, *, at: int | None = None) -> None:
        """The product is deleted: gone from listings, its stock rows too (unless another
        live product of its site has its sku); old orders still name it."""
        with self.lock:
            cat = self.catalog
            product = cat.products.pop(productid)
            product["datemodified"] = self.now if at is None else at
            cat.deleted[productid] = product
            site = cat.product_site[productid]
            if any(
                p["sku"] == product["sku"] for p in cat.site_products(site, include_inactive=True)
            ):
                return
            for w in cat.warehouses:
                if w["eshopid"] == site:
                    self.stock.remove(w["warehouseid"], product["sku"])

    def remove_item(self, warehouseid: int, sku: str) -> bool:
        """A stock row is removed (cleared out of the warehouse): no longer listed, its
        product still is. Whether there was one."""
        with self.lock:
            return self.stock.remove(warehouseid, sku)

    def touch_product(self, productid: int, *, at: int | None = None, **changes: object) -> Body:
        """Edit a product now (e.g. a new `title`): `datemodified` moves to now, or to `at`
        (an edit stamped when its transaction began, seen only once it committed: a
        modified feed already past `at` must read back far enough to find it)."""
        with self.lock:
            product = self.catalog.products[productid]
            product.update(changes)
            product["datemodified"] = self.now if at is None else at
            return product

    def move_stock(
        self, warehouseid: int, sku: str, quantity: int, *, at: int | None = None
    ) -> Body:
        """Stock moves by `quantity` units (Move In when positive, a stocktaking when not)
        in one warehouse transaction stamped now, or `at` (late, as `touch_product`'s)."""
        with self.lock:
            warehouse = self.catalog.warehouse(warehouseid)
            assert warehouse is not None, f"no warehouse {warehouseid}"
            kind = MOVE_IN if quantity > 0 else STOCKTAKING
            when = self.now if at is None else at
            return self.stock.transact(warehouse["eshopid"], warehouseid, kind,
                                       [(sku, quantity)], when)  # fmt: skip

    def reserve(self, warehouseid: int, sku: str, quantity: int) -> None:
        """Reserve units (an order placed elsewhere): no transaction, no `datelastmodified`."""
        with self.lock:
            self.stock.reserve(warehouseid, sku, quantity)

    def listed_orders(self) -> dict[int, Body]:
        """The orders `/orders.json` can see: every stored order that has committed."""
        with self.lock:
            if not self.uncommitted:
                return self.orders
            return {i: o for i, o in self.orders.items() if i not in self.uncommitted}

    def orders_answered(self) -> None:
        """An `/orders.json` answer went out: the orders committing late come one nearer."""
        with self.lock:
            for orderid in list(self.uncommitted):
                self.uncommitted[orderid] -= 1
                if self.uncommitted[orderid] <= 0:
                    del self.uncommitted[orderid]

    def commit_all(self) -> None:
        """Every order and warehouse transaction still committing commits now (the world
        goes quiet, so what a sync has loaded can be compared with all of it)."""
        with self.lock:
            self.uncommitted.clear()
            self.stock.uncommitted.clear()

    # ---- lookups ----------------------------------------------------------------------

    def order(self, orderid: int) -> Body:
        """One order as served."""
        with self.lock:
            return self.orders[orderid]

    def store_of_order(self, order: Body) -> Body | None:
        """The order's store by its warehouse's `storeid` (the truth the other links match)."""
        warehouse = self.catalog.warehouse(int(order["warehouseid"]))
        return self.catalog.store_by_id(warehouse["storeid"]) if warehouse else None


def _settled(spec: OrderSpec) -> str:
    """What an open order becomes: a parked POS order an ordinary closed order, a booking a
    paid booking, a pending web order paid or (every fourth or so) cancelled."""
    return "booking_paid" if spec.kind == "booking" else spec.settles_to


def _cents(product: Body) -> int:
    return cents(product["moneypricein"])
