"""Journals at a chain's scale: millions of entries made per page, never held in memory.

With `SimConfig.lazy_journal_size = N`, the registers' journals hold N entries between them
(spread evenly), not the days of their z-reports. An entry is a pure function of the seed,
its register and its position: a register's history is a run of days, each day's length
drawn from the register's own random stream (the only thing kept: one integer per day, where
it starts), and a day's entries are generated from (register, day) when a page needs them.
A few recently generated days are kept, encoded, so the next page does not make them again.

A day reads like a day at a till: login and cash-start, then customers (cart events, up to
three payments, the receipt, of products of the register's site's catalogue, some refunds, a
practice receipt now and then, drawer openings, petty cash, printouts, an X-report,
sometimes a control-unit error or an entry of a type the docs do not list), then
cash-counted, the Z-report and logout. It is uploaded at once, so its entries share one
`dateadded` second; one day in twenty is uploaded six hours late (a register that was
offline). With `journal_malformed_every = k`, every k-th entry of a register is malformed (a
non-integer id or a datecreated that is not a time), the way a bad record arrives; with
`journal_unknown_field_every = k`, every k-th entry that is a receipt carries a field in its
data the docs do not name. `offline_burst` appends entries after the history, as the other
journal does.

Positions, dates and ids are monotone together (an entry's `id` is its position + 1, and both
dates never go down along a register's history), so a date filter is a binary search over
the days and a page is a slice: any page can be made without the pages before it. The `next`
token holds the position to resume at.
"""

from __future__ import annotations

import json
import random
from array import array
from bisect import bisect_right
from collections import OrderedDict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sitoo_sync.simulator.chain import PRODUCT_GROUPS, STAFF, Register, currency_of, time_zone_of
from sitoo_sync.simulator.journal import (
    UNKNOWN_TYPE,
    Journal,
    JournalSource,
    PageQuery,
    next_token,
    token_offset,
)
from sitoo_sync.simulator.money import money

if TYPE_CHECKING:
    from sitoo_sync.simulator.rest_v2.catalog import Assortment

CACHED_DAYS = 512  # encoded days kept for the next pages (a few pages per register in flight)
LATE_UPLOAD = 6 * 3600  # an offline register's day reaches the backup this much later
MIN_DAY = 12  # the fixed start and end of a day need room for at least one customer

CUSTOMERS = 64  # a register's distinct customers (encoded once, drawn per day)

# One encoded entry: (dateadded, datecreated, type, JSON bytes).
Encoded = tuple[int, int, str, bytes]
# One entry's type and JSON with `%d` for its dateadded, datecreated and id.
Template = tuple[str, str]


class Day:
    """One register's day: its times and its place in the register's history."""

    __slots__ = ("added", "closed", "index", "opened", "start", "stop")

    def __init__(self, index: int, start: int, stop: int, closed: int, added: int) -> None:
        self.index = index
        self.start = start  # position of its first entry
        self.stop = stop  # position after its last
        self.closed = closed
        self.opened = closed - 8 * 3600
        self.added = added

    def first(self, field: str) -> int:
        """The smallest value of `dateadded`/`datecreated` among its entries."""
        return self.added if field == "dateadded" else self.opened - 60

    def last(self, field: str) -> int:
        """The largest value of `dateadded`/`datecreated` among its entries."""
        return self.added if field == "dateadded" else self.closed + 5


class LazyJournal(Journal):
    """Per-register journals of `config.lazy_journal_size` entries, generated per page.

    The day journal's truths for tests (entries per type, receipt totals, cash moved) come
    from `all_entries`, so they hold here too, for journals small enough to decode whole."""

    def __init__(self, world: JournalSource) -> None:
        super().__init__(world)
        config = world.config
        self.seed = config.seed
        self.mean_day = max(MIN_DAY * 2, config.journal_day_entries)
        self.malformed_every = config.journal_malformed_every
        self.unknown_field_every = config.journal_unknown_field_every
        self.end = config.now - 3600
        total, registers = config.lazy_journal_size, world.registers
        self._starts: dict[str, array[int]] = {}
        self._first_day: dict[str, datetime] = {}
        for n, reg in enumerate(registers):
            count = total // len(registers) + (1 if n < total % len(registers) else 0)
            self._plan(reg.registerid, count)
        self._extra: dict[str, list[dict[str, Any]]] = {}
        self._pools: dict[str, list[list[Template]]] = {}
        self._cache: OrderedDict[tuple[str, int], list[Encoded]] = OrderedDict()

    # ---- the plan: where each day starts --------------------------------------------------

    def _plan(self, registerid: str, count: int) -> None:
        rng = random.Random(f"{self.seed}/{registerid}/days")
        starts = array("q", [0])
        while starts[-1] < count:
            length = rng.randint(self.mean_day // 2, self.mean_day * 3 // 2)
            left = count - starts[-1]
            starts.append(starts[-1] + (left if left < length + MIN_DAY else length))
        self._starts[registerid] = starts
        days = len(starts) - 1
        today = datetime.fromtimestamp(self.end, UTC).replace(hour=0, minute=0, second=0)
        self._first_day[registerid] = today - timedelta(days=days)

    def size(self, registerid: str) -> int:
        """How many entries the register's history holds (bursts not counted)."""
        starts = self._starts.get(registerid)
        return starts[-1] if starts else 0

    def _days(self, registerid: str) -> int:
        starts = self._starts.get(registerid)
        return len(starts) - 1 if starts is not None else 0

    def day(self, registerid: str, index: int) -> Day:
        """Day `index` of the register's history (its times only, no entries)."""
        starts = self._starts[registerid]
        rng = random.Random(f"{self.seed}/{registerid}/{index}/times")
        midnight = self._first_day[registerid] + timedelta(days=index)
        closed = int(midnight.timestamp()) + 19 * 3600 + rng.randint(0, 7200)
        late = rng.random() < 0.05  # one day in twenty
        added = closed + (LATE_UPLOAD if late else rng.randint(10, 70))
        now = self.world.config.now
        return Day(index, starts[index], starts[index + 1], min(closed, self.end), min(added, now))

    # ---- a day's entries ----------------------------------------------------------------

    def _register(self, registerid: str) -> Register:
        return next(r for r in self.world.registers if r.registerid == registerid)

    def _day_entries(self, registerid: str, day: Day) -> list[Encoded]:
        """The day's entries as the API sends them, encoded, in position order."""
        reg = self._register(registerid)
        rng = random.Random(f"{self.seed}/{registerid}/{day.index}")
        staff_name = rng.choice(STAFF)
        staff = {"staff": staff_name, "staffuserid": f"u{STAFF.index(staff_name) + 1}"}
        currency = _currency(reg)
        middle = day.stop - day.start - 5
        start_cash = rng.randint(0, 3000) * 100

        def cash(amount: int) -> dict[str, Any]:
            return {"currencycode": currency, "moneycash": money(amount), **staff}

        head = [("login", dict(staff)), ("cash-start", cash(start_cash))]
        tail = [
            ("cash-counted", cash(start_cash + rng.randint(0, 50000))),
            ("report-z", {"zreportid": day.index + 1}),
            ("logout", dict(staff)),
        ]
        customers = self._customers(reg)
        body: list[Template] = []
        while len(body) < middle:
            body.extend(customers[rng.randrange(len(customers))])
        del body[middle:]
        step = max(1, (day.closed - 120 - day.opened) // max(1, middle))
        times = [day.opened - 60, day.opened]
        times += [day.opened + 60 + i * step for i in range(middle)]
        times += [day.closed - 60, day.closed, day.closed + 5]
        templates = [_template(reg, kind, data, False) for kind, data in head]
        templates += body
        templates += [_template(reg, kind, data, False) for kind, data in tail]
        made: list[Encoded] = []
        for n, ((kind, fmt), created) in enumerate(zip(templates, times, strict=True)):
            position = day.start + n
            raw = (fmt % (day.added, created, position + 1)).encode()
            if self.malformed_every and (position + 1) % self.malformed_every == 0:
                raw = _malformed(raw, (position + 1) // self.malformed_every)
            every = self.unknown_field_every
            if every and kind == "receipt" and (position + 1) % every == 0:
                raw = _undocumented(raw, position + 1)
            made.append((day.added, created, kind, raw))
        return made

    def _customers(self, reg: Register) -> list[list[Template]]:
        """The register's customers, encoded once: a day is a run of them drawn at random."""
        with self.lock:
            pool = self._pools.get(reg.registerid)
            if pool is None:
                rng = random.Random(f"{self.seed}/{reg.registerid}/customers")
                staff = {"staff": STAFF[0], "staffuserid": "u1"}
                assortment = self.assortment(reg.eshopid)
                pool = [
                    [
                        _template(reg, kind, data, practice)
                        for kind, data, practice in self._customer(
                            rng, reg, n, _currency(reg), staff, assortment=assortment
                        )
                    ]
                    for n in range(CUSTOMERS)
                ]
                self._pools[reg.registerid] = pool
            return pool

    @staticmethod
    def _customer(
        rng: random.Random,
        reg: Register,
        customer: int,
        currency: str,
        staff: dict[str, Any],
        *,
        assortment: Assortment,
    ) -> list[tuple[str, dict[str, Any], bool]]:
        """One customer at the till: the cart, the payments, the receipt (of the products of
        a product group of the site's catalogue), and what may follow."""
        group, _vat = PRODUCT_GROUPS[rng.randrange(len(PRODUCT_GROUPS))]
        quantity = rng.randint(1, 4)
        total = rng.randint(2000, 200000)
        refund = rng.random() < 0.05
        practice = rng.random() < 0.01
        receipt = Journal._receipt(  # the same receipt maker as the day journal
            reg.registerkey,
            reg.store_id,
            created=customer,
            number=customer,
            products=assortment.of_group(group),
            quantity=quantity,
            total=total,
            refund=refund,
            practice=practice,
            currency=currency,
            timezone=time_zone_of(reg.eshopid),
        )
        first = receipt["data"]["items"][0]  # what the cart shows
        item = {"sku": first["sku"], "name": first["name"], "moneyrowprice": money(total)}
        out: list[tuple[str, dict[str, Any], bool]] = [("cart-item-add", item, practice)]
        if rng.random() < 0.2:
            out.append(("cart-item-change", item, practice))
        if rng.random() < 0.05:
            out.append(("cart-voucher-add", {"vouchercode": "3FOR2"}, practice))
        pay = {"name": "Card", "moneyamount": money(total)}
        out.append(("cart-payment-add", pay, practice))
        if rng.random() < 0.05:
            out.append(("cart-payment-retry", pay, practice))
        out.append(("cart-payment-success", pay, practice))
        out.append(("receipt", receipt["data"], practice))
        roll = rng.random()
        if roll < 0.05:
            out.append(("open-cash-drawer", dict(staff), False))
        elif roll < 0.07:
            petty = {"currencycode": currency, "moneycash": money(-rng.randint(1, 50) * 100)}
            out.append(("cash-petty", {**petty, **staff}, False))
        elif roll < 0.09:
            out.append(("printout", {"printouttype": "receipt-copy", **staff}, False))
        elif roll < 0.10:
            out.append(("report-x", {"moneysalestotal": money(total)}, False))
        elif roll < 0.105:
            out.append(("ctu-error", {"errorcode": "CTU-17", "message": "timeout"}, False))
        elif roll < 0.115:
            out.append((UNKNOWN_TYPE, {"points": rng.randint(1, 9)}, False))
        elif roll < 0.13:
            out.append(("cart-clear", {}, False))
        return out

    def _encoded(self, registerid: str, index: int) -> list[Encoded]:
        """Day `index`'s entries, encoded (the history's days from a small cache)."""
        days = self._days(registerid)
        if index >= days:  # the bursts after the history
            return [
                (e["dateadded"], e["datecreated"], e["type"], json.dumps(e).encode())
                for e in self._extra.get(registerid, [])
            ]
        with self.lock:
            cached = self._cache.get((registerid, index))
            if cached is not None:
                self._cache.move_to_end((registerid, index))
                return cached
        made = self._day_entries(registerid, self.day(registerid, index))
        with self.lock:
            self._cache[registerid, index] = made
            while len(self._cache) > CACHED_DAYS:
                self._cache.popitem(last=False)
        return made

    # ---- what the server and the tests ask ----------------------------------------------

    def entries(self, registerid: str) -> list[dict[str, Any]]:
        """Every entry of the register, decoded (for tests over small journals)."""
        return [
            json.loads(raw)
            for index in range(self._days(registerid) + 1)
            for *_, raw in self._encoded(registerid, index)
        ]

    def offline_burst(self, registerid: str, count: int, at: int, *, hours_old: int = 5) -> None:
        """A register back online uploads `count` receipts in the one second `at`, after
        everything in its history."""
        with self.lock:
            days = self._days(registerid)
            extra = self._extra.setdefault(registerid, [])
            newest = extra[-1]["dateadded"] if extra else None
            if newest is None and days:
                newest = self.day(registerid, days - 1).added
            if newest is not None and at < newest:
                raise ValueError("a burst lands after the register's newest upload")
            reg = self._register(registerid)
            rng = random.Random(f"{registerid}/burst/{at}")
            products = self.assortment(reg.eshopid).products
            first = self.size(registerid) + len(extra) + 1
            for i in range(count):
                receipt = Journal._receipt(  # the same receipt maker
                    reg.registerkey,
                    reg.store_id,
                    created=at - hours_old * 3600 + i,
                    number=i,
                    products=products,
                    quantity=1,
                    total=rng.randint(100, 99999),
                    refund=False,
                    practice=False,
                    currency=_currency(reg),
                    timezone=time_zone_of(reg.eshopid),
                )
                receipt.update(
                    dateadded=at, registerid=registerid, registerkey=reg.registerkey, id=first + i
                )
                extra.append(receipt)

    def page(self, registerid: str, query: PageQuery) -> bytes:
        """One page of `/journal-entries`, encoded; `next` resumes at a position."""
        field, descending = query.field, query.descending
        resume = token_offset(query.token) if query.token else None
        items: list[bytes] = []
        more = False
        for position, (added, created, entry_type, raw) in self._walk(
            registerid, field, descending, (query.lo, query.hi), resume
        ):
            if resume is not None and (position > resume if descending else position < resume):
                continue
            if not query.admits(added if field == "dateadded" else created, entry_type):
                continue
            if len(items) == query.num:
                more = True
                resume = position
                break
            items.append(raw)
        body = b'{"items":[' + b",".join(items) + b"]"
        if more and resume is not None:
            body += b',"next":"' + next_token(resume).encode() + b'"'
        return body + b"}"

    def _walk(
        self,
        registerid: str,
        field: str,
        descending: bool,
        bounds: tuple[int | None, int | None],
        resume: int | None,
    ) -> Iterator[tuple[int, Encoded]]:
        """(position, entry) of the days that may hold entries between the bounds, from the
        day of `resume` on (in the walk's direction)."""
        lo, hi = bounds
        days = self._days(registerid)
        first = 0 if lo is None else self._bisect(registerid, days, lambda d: d.last(field) < lo)
        stop = (
            days if hi is None else self._bisect(registerid, days, lambda d: d.first(field) <= hi)
        )
        starts = self._starts.get(registerid)
        if resume is not None and starts is not None:  # skip the days wholly passed
            if descending:
                stop = min(stop, bisect_right(starts, resume, 0, days))
            else:
                first = max(first, bisect_right(starts, resume, 0, days + 1) - 1)
        indexes = list(range(first, stop))
        if self._extra.get(registerid):
            indexes.append(days)
        for index in reversed(indexes) if descending else indexes:
            base = starts[index] if starts is not None and index < days else self.size(registerid)
            encoded = self._encoded(registerid, index)
            pairs = list(enumerate(encoded, base))
            yield from reversed(pairs) if descending else pairs

    def _bisect(self, registerid: str, days: int, before: Any) -> int:
        """The first day for which `before(day)` is false (it is true, then false, along days)."""
        low, high = 0, days
        while low < high:
            mid = (low + high) // 2
            if before(self.day(registerid, mid)):
                low = mid + 1
            else:
                high = mid
        return low


def _currency(reg: Register) -> str:
    return currency_of(reg.store_id)


def _template(reg: Register, kind: str, data: dict[str, Any], practice: bool) -> Template:
    """The entry's JSON, the vendor's field order, with its dates and id left to fill in."""
    fields = json.dumps(data).replace("%", "%%")
    rest = json.dumps(
        {"ispractice": practice, "registerid": reg.registerid, "registerkey": reg.registerkey}
    )
    return kind, (
        f'{{"data": {fields}, "dateadded": %d, "datecreated": %d, "id": %d, '
        f'{rest[1:-1].replace("%", "%%")}, "type": {json.dumps(kind)}}}'
    )


def _undocumented(raw: bytes, n: int) -> bytes:
    """The receipt with a field in its data that the docs do not name."""
    entry = json.loads(raw)
    entry["data"]["receiptnumber"] = f"R-{n}"
    return json.dumps(entry).encode()


def _malformed(raw: bytes, n: int) -> bytes:
    """The entry with a non-integer id (odd `n`) or a datecreated that is not a time."""
    entry = json.loads(raw)
    if n % 2:
        entry["id"] = str(entry["id"])
    else:
        entry["datecreated"] = "yesterday"
    return json.dumps(entry).encode()
