"""Stock levels (`warehouseitems`) and warehouse transactions (fact sheet sections 5.2, 6).

Every change of `decimaltotal` is a transaction: the item's `datelastmodified` moves to the
transaction's time and the item log line records the level after it, so each item's total
equals the sum of its logged quantities. Reservations (open web orders, bookings, or
`reserve`) move `decimalreserved`/`decimalavailable` WITHOUT a transaction and without
touching `datelastmodified`, as the fact sheet warns. Quantities are whole units written with
three decimals; `moneytotal` is the level times the product's `moneypricein`.
Transaction types as the fact sheet infers them: 10 Move In, 30 Sales, 40 Refund,
50 StockTaking.

A row can be removed (`remove`: its product deleted, or the row cleared out): it is no
longer listed, and no modified feed shows that it went. The docs say nothing of what a
transaction or a reservation on a removed row's sku does (**assumed**: the row comes back
as it was, same id, its level moved), so the levels stay the sum of their logged quantities.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sitoo_sync.simulator.money import money
from sitoo_sync.simulator.rest_v2.query import Body

MOVE_IN, SALES, REFUND, STOCKTAKING = 10, 30, 40, 50
DESCRIPTIONS = {
    MOVE_IN: "Move In",
    SALES: "Sales",
    REFUND: "Refund",
    STOCKTAKING: "Stocktaking has been completed!",
}


def decimal3(units: int) -> str:
    """Whole units as the vendor's decimal string, e.g. -2 -> "-2.000"."""
    return f"{units}.000" if units >= 0 else f"-{-units}.000"


@dataclass
class _Item:
    warehouseitemid: int
    warehouseid: int
    sku: str
    cost: int  # cents per unit (moneypricein)
    total: int = 0
    reserved: int = 0
    threshold: int = 5
    datelastmodified: int = 0
    datelaststocktaking: int | None = None

    def body(self) -> Body:
        return {
            "warehouseitemid": self.warehouseitemid,
            "warehouseid": self.warehouseid,
            "sku": self.sku,
            "binlocation": f"A{self.warehouseitemid % 20:02d}",
            "decimalthreshold": decimal3(self.threshold),
            "decimaltotal": decimal3(self.total),
            "decimalreserved": decimal3(self.reserved),
            "decimalavailable": decimal3(self.total - self.reserved),
            "moneytotal": money(self.total * self.cost),
            "datelastmodified": self.datelastmodified,
            "datelaststocktaking": self.datelaststocktaking,
        }


@dataclass
class Stock:
    """Every warehouse's items and the transaction log that made them."""

    items: dict[tuple[int, str], _Item] = field(default_factory=dict)
    removed: dict[tuple[int, str], _Item] = field(default_factory=dict)  # not listed
    transactions: list[Body] = field(default_factory=list)  # ascending id
    transaction_site: dict[int, int] = field(default_factory=dict)  # id -> eshopid
    next_item_id: int = 1
    next_transaction_id: int = 5001
    next_log_id: int = 90001
    #: Transactions made but not yet committed: id -> listing answers until it is listed.
    uncommitted: dict[int, int] = field(default_factory=dict)
    _late_every: int = 0  # every Nth transaction from `late_commits` on commits late
    _late_requests: int = 0
    _late_span: int = 0
    _made_since: int = 0

    def late_commits(self, every: int, requests: int, span: int) -> None:
        """From now on, every `every`th transaction is listed only after `requests` more
        answers of a transactions listing or `span` later transactions, whichever comes
        first (0: each is listed at once)."""
        self._late_every, self._late_requests, self._late_span = every, requests, span
        self._made_since = 0

    def listed_transactions(self) -> list[Body]:
        """The transactions a listing can see (ascending id): those committed."""
        if not self.uncommitted:
            return self.transactions
        return [t for t in self.transactions if t["warehousetransactionid"] not in self.uncommitted]

    def transactions_answered(self) -> None:
        """A transactions listing answered: the late ones come one answer nearer."""
        for tid in list(self.uncommitted):
            self.uncommitted[tid] -= 1
            if self.uncommitted[tid] <= 0:
                del self.uncommitted[tid]

    def add_item(self, warehouseid: int, sku: str, cost: int) -> None:
        """A stock row with nothing on hand yet; a removed one comes back as it was."""
        key = (warehouseid, sku)
        if key in self.items:
            return
        back = self.removed.pop(key, None)
        if back is None:
            back = _Item(self.next_item_id, warehouseid, sku, cost)
            self.next_item_id += 1
        self.items[key] = back

    def remove(self, warehouseid: int, sku: str) -> bool:
        """The row is removed: no listing shows it any more. Whether there was one."""
        item = self.items.pop((warehouseid, sku), None)
        if item is not None:
            self.removed[(warehouseid, sku)] = item
        return item is not None

    def transact(
        self,
        eshopid: int,
        warehouseid: int,
        kind: int,
        lines: list[tuple[str, int]],
        at: int,
        *,
        orderdeliveryid: int | None = None,
    ) -> Body:
        """Apply signed quantity changes per sku as one transaction, logged with its lines."""
        tid = self.next_transaction_id
        self.next_transaction_id += 1
        logged = []
        for sku, quantity in lines:
            self.add_item(warehouseid, sku, 0)
            item = self.items[(warehouseid, sku)]
            item.total += quantity
            item.datelastmodified = at
            if kind == STOCKTAKING:
                item.datelaststocktaking = at
            logged.append(
                {
                    "warehouseitemlogid": self.next_log_id,
                    "warehouseitemid": item.warehouseitemid,
                    "warehousetransactionid": tid,
                    "sku": sku,
                    "decimalquantity": decimal3(quantity),
                    "decimaltotal": decimal3(item.total),
                    "moneypricein": money(item.cost),
                    "moneytotal": money(item.total * item.cost),
                    "moneyvalue": money(quantity * item.cost),
                }
            )
            self.next_log_id += 1
        body = {
            "warehousetransactionid": tid,
            "warehouseid": warehouseid,
            "datecreated": at,
            "transactiontype": kind,
            "description": DESCRIPTIONS[kind],
            "orderdeliveryid": orderdeliveryid,
            "shipmentid": None,
            "externalid": None,
            "reasoncode": None,
            "items": logged,
        }
        self.transactions.append(body)
        self.transaction_site[tid] = eshopid
        if self._late_every:
            for held in [i for i in self.uncommitted if tid - i >= self._late_span]:
                del self.uncommitted[held]  # overtaken by `span` ids: it has committed
            self._made_since += 1
            if self._made_since % self._late_every == 0:
                self.uncommitted[tid] = self._late_requests
        return body

    def reserve(self, warehouseid: int, sku: str, quantity: int) -> None:
        """Reserve (or release, when negative) units: `datelastmodified` does not move."""
        self.add_item(warehouseid, sku, 0)
        self.items[(warehouseid, sku)].reserved += quantity

    def item_bodies(self, warehouseid: int) -> list[Body]:
        """A warehouse's items by warehouseitemid (no sort is documented; assumption)."""
        rows = [i for (w, _sku), i in self.items.items() if w == warehouseid]
        return [i.body() for i in sorted(rows, key=lambda i: i.warehouseitemid)]
