"""Orders against z-reports: a POS sale is an order, so a register's closing adds up twice.

A z-report closes the register's sales since its previous z-report. So the closed POS orders
(`orders` with a registerid and orderstateid 10) made in that period (orderdate after the
previous closing's datecreated, up to this one's) are summed in SQL in exact cents, items
incl. VAT (moneytotal_net + moneytotal_vat: no delivery, checkout cost or cash rounding, as
a z-report's moneysalestotal has none). An order whose items come to a positive amount is a
sale; one that comes to a negative amount is a refund (its amount, positive). The period's
sums are compared with the z-report's moneysalestotal and moneyrefundtotal, in Decimal.
A day the register did not close, or a closing after local midnight, falls in one period
as it falls in one z-report. A z-report missing from the warehouse leaves its period to the
next one, which then names it (rejected at load, when it was).

What is judged, so that a partial sync is not a finding: a register's z-reports from its
second in the warehouse on (the first one's period began before anything loaded), once the
register's loaded POS orders begin before the period (a register with none: the table's) and
the loaded POS orders reach past its closing. A journal receipt is judged once its register
has orders loaded from before it and after it. Registers are matched as GUIDs, braces and
case aside.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sitoo_sync.verify.findings import Finding, Severity, store_of
from sitoo_sync.verify.registers import rejected_reports
from sitoo_sync.verify.source import (
    Scope,
    Source,
    business_day,
    cents_to_money,
    to_day,
    to_decimal,
    to_utc,
)

CHECK = "orders"
_SHOWN_RECEIPTS = 5  # receipt ids named in a finding's details
_GROSS = "({cents(moneytotal_net)} + {cents(moneytotal_vat)})"


def _guid(column: str) -> str:
    """A register id as a comparable key: braces and case aside (SQL on every target; the
    doubled braces are the query template's escapes)."""
    return "UPPER(REPLACE(REPLACE(" + column + ", '{{', ''), '}}', ''))"


@dataclass
class _Closing:
    """One z-report: what it states, its period (since the register's previous one), and
    what the period's orders come to."""

    registerid: str
    zreportid: int
    closed: datetime | None
    store: str | None
    day: date | None
    stated_sales: Decimal
    stated_refund: Decimal
    opened: datetime | None = None  # the previous closing's datecreated
    previous: int | None = None  # the previous closing's zreportid
    sales: Decimal = Decimal("0.00")
    refund: Decimal = Decimal("0.00")
    orders: int = 0


def _reach(source: Source) -> tuple[datetime | None, datetime | None]:
    """The earliest and latest orderdate of the loaded closed POS orders."""
    sql = (
        "SELECT MIN(orderdate), MAX(orderdate) FROM {orders} "
        "WHERE registerid IS NOT NULL AND orderstateid = 10"
    )
    row = next(iter(list(source.rows(sql))))
    return to_utc(row[0]), to_utc(row[1])


def _firsts(source: Source) -> dict[str, datetime]:
    """Each register's earliest orderdate among its loaded closed POS orders (`_key`s).

    Where a register's loaded orders begin, not where the whole table's do: an offline
    register's backlog keeps its old orderdate but is loaded with the newer orders (a higher
    orderid), so one late upload from before `SITOO_ORDERS_START` must not make every other
    register's periods back then look covered."""
    sql = (
        f"SELECT {_guid('registerid')}, MIN(orderdate) FROM {{orders}} "
        f"WHERE registerid IS NOT NULL AND orderstateid = 10 GROUP BY {_guid('registerid')}"
    )
    out: dict[str, datetime] = {}
    for row in source.rows(sql):
        at = to_utc(row[1])
        if at is not None:
            out[str(row[0])] = at
    return out


def _closings(source: Source, scope: Scope) -> list[_Closing]:
    """The POS z-reports `scope` holds, each with its register's previous one (whatever the
    scope: a period may begin before it), ordered by register and zreportid. The previous
    one is found in SQL (LAG over each register's closings by time, a tie by zreportid), so
    only the judged closings reach Python; one without a time has no period."""
    guid = _guid("z.registerid")
    sql = (
        "SELECT c.registerid, c.zreportid, c.datecreated, c.store_id, c.business_date, "
        "c.moneysalestotal, c.moneyrefundtotal, c.opened, c.previous FROM ("
        "SELECT z.registerid, z.zreportid, z.datecreated, z.store_id, z.business_date, "
        "z.moneysalestotal, z.moneyrefundtotal, "
        f"LAG(z.datecreated) OVER (PARTITION BY {guid} ORDER BY z.datecreated, z.zreportid) "
        "AS opened, "
        f"LAG(z.zreportid) OVER (PARTITION BY {guid} ORDER BY z.datecreated, z.zreportid) "
        f"AS previous, CASE WHEN {scope.where('z')} THEN 1 ELSE 0 END AS in_scope "
        "FROM {pos_z_reports} z WHERE z.datecreated IS NOT NULL) c WHERE c.in_scope = 1"
    )
    out = [
        _Closing(
            str(row[0]),
            int(row[1]),
            to_utc(row[2]),
            store_of(row[3]),
            business_day(row[4], row[2]),
            _money(row[5]),
            _money(row[6]),
            opened=to_utc(row[7]),
            previous=None if row[8] is None else int(row[8]),
        )
        for row in source.rows(sql, scope.params())
    ]
    return sorted(out, key=lambda c: (c.registerid, c.zreportid))


def _money(value: Any) -> Decimal:
    """A stated amount as Decimal; none stated is 0.00 (a zero keeps its two decimals)."""
    amount = to_decimal(value)
    return Decimal("0.00") if amount is None else amount


def _period_sums(source: Source, closings: list[_Closing]) -> None:
    """Each z-report's period's closed POS orders, summed in SQL in one statement.

    The orders and the closings of each register go into one stream ordered by time (an
    order before a closing of the same second, closings of one second by zreportid), and a
    running count of the closings numbers the periods: an order falls in the period of the
    closing numbered one more than the closings before it. So the work is one sort and one
    pass over the rows, not orders x closings as a range join's would be (a year of a chain:
    millions of orders, a closing a day per register). Only the time the judged periods
    span is read: orders after the earliest judged period's opening, closings from it on."""
    openings = [c.opened for c in closings if c.opened is not None]
    after = min(openings) if openings else None
    if after is None:
        return
    guid = _guid("registerid")
    sql = (
        "WITH e AS (SELECT u.reg, u.kind, u.gross, u.zid, SUM(u.kind) OVER (PARTITION BY "
        "u.reg ORDER BY u.t, u.kind, u.zid ROWS UNBOUNDED PRECEDING) AS n "
        f"FROM (SELECT {guid} AS reg, orderdate AS t, 0 AS kind, {_GROSS} AS gross, "
        "CASE WHEN 1 = 0 THEN 0 END AS zid FROM {orders} "
        "WHERE registerid IS NOT NULL AND orderstateid = 10 AND orderdate > :after "
        f"UNION ALL SELECT {guid}, datecreated, 1, 0, zreportid FROM {{pos_z_reports}} "
        "WHERE datecreated >= :after) u) "
        "SELECT c.reg, c.zid, o.sales, o.refund, o.orders FROM (SELECT reg, n, "
        "SUM(CASE WHEN gross > 0 THEN gross ELSE 0 END) AS sales, "
        "SUM(CASE WHEN gross < 0 THEN -gross ELSE 0 END) AS refund, COUNT(*) AS orders "
        "FROM e WHERE kind = 0 GROUP BY reg, n) o "
        "JOIN e c ON c.kind = 1 AND c.reg = o.reg AND c.n = o.n + 1"
    )
    periods = {(_key(c.registerid), c.zreportid): c for c in closings}
    for row in source.rows(sql, {"after": after}):
        period = periods.get((str(row[0]), int(row[1])))
        if period is not None:
            period.sales, period.refund = cents_to_money(row[2]), cents_to_money(row[3])
            period.orders = int(row[4])


def _key(registerid: Any) -> str:
    return str(registerid).replace("{", "").replace("}", "").upper()


def against_z_reports(source: Source, scope: Scope) -> Iterator[Finding]:
    """Each z-report's sales and refunds are its period's closed POS orders'; journal
    receipts (when synced) each have an order."""
    first, last = _reach(source)
    if first is None or last is None:
        return  # no POS order loaded: nothing to hold the z-reports against
    firsts = _firsts(source)
    judged = _closings(source, scope)
    _period_sums(source, judged)
    rejected = _rejected_numbers(source)
    for closing in judged:
        opened, closed = closing.opened, closing.closed
        begins = firsts.get(_key(closing.registerid), first)  # none of its own: the table's
        if opened is None or closed is None or not begins < opened or last < closed:
            continue  # its period is not wholly within the loaded orders
        assert closing.previous is not None
        lost = sorted(
            n
            for n in rejected.get(_key(closing.registerid), ())
            if closing.previous < n < closing.zreportid
        )
        yield from _compare(closing, lost)
    if source.has("journal_receipts"):
        yield from _receipts_without_order(source, scope)


def _compare(closing: _Closing, rejected: list[int]) -> Iterator[Finding]:
    figures = [
        ("moneysalestotal", closing.stated_sales, closing.sales, "sales"),
        ("moneyrefundtotal", closing.stated_refund, closing.refund, "refunds"),
    ]
    wrong = [f for f in figures if f[1] != f[2]]
    if not wrong:
        return
    field_, stated, orders, what = wrong[0]
    others = f"; also {wrong[1][0]} {wrong[1][1]} against {wrong[1][2]}" if wrong[1:] else ""
    skipped = ""
    assert closing.previous is not None
    if rejected:
        skipped = (
            f"; z-report {', '.join(map(str, rejected))} between them was rejected at load "
            "(see rejects)"
        )
    elif closing.zreportid == closing.previous + 2:
        skipped = f"; z-report {closing.previous + 1} between them is missing"
    elif closing.zreportid > closing.previous + 2:
        skipped = (
            f"; z-reports {closing.previous + 1}-{closing.zreportid - 1} between them are missing"
        )
    yield Finding(
        CHECK,
        Severity.ERROR,
        f"the register's {closing.orders} closed POS orders since z-report {closing.previous} "
        f"come to {orders} in {what}, its z-report {closing.zreportid} states {field_} "
        f"{stated}{others}{skipped}",
        registerid=closing.registerid,
        store_id=closing.store,
        day=closing.day,
        zreportid=closing.zreportid,
        expected=orders,
        actual=stated,
    )


def _rejected_numbers(source: Source) -> dict[str, set[int]]:
    """The zreportids of each register's rejected POS z-reports (registers as `_key`)."""
    out: dict[str, set[int]] = defaultdict(set)
    for registerid, zreportid in rejected_reports(source):
        out[_key(registerid)].add(zreportid)
    return out


def _receipts_without_order(source: Source, scope: Scope) -> Iterator[Finding]:
    """Non-practice journal receipts with no order of their register and receipt id, per
    register and day; judged once the register has POS orders loaded from before the receipt
    and after it (journals kept from before `SITOO_ORDERS_START` are not findings)."""
    parts = ["(r.ispractice IS NULL OR r.ispractice = :no)", "r.receipt_id IS NOT NULL"]
    if scope.since:
        parts.append("r.business_date >= :since_day")
    if scope.store:
        parts.append("COALESCE(NULLIF(r.store_id, ''), 'NO_STORE') = :store")
    sql = (
        f"SELECT r.registerid, r.business_date, r.store_id, r.receipt_id, r.isrefund, "
        f"{{cents(r.moneytotal)}} FROM {{journal_receipts}} r "
        f"JOIN (SELECT {_guid('registerid')} AS register, MIN(orderdate) AS first_at, "
        f"MAX(orderdate) AS last_at "
        f"FROM {{orders}} WHERE registerid IS NOT NULL GROUP BY {_guid('registerid')}) o "
        f"ON o.register = {_guid('r.registerid')} "
        f"LEFT JOIN (SELECT {_guid('registerid')} AS register, pos_receiptid FROM {{orders}} "
        f"WHERE registerid IS NOT NULL AND pos_receiptid IS NOT NULL) x "
        f"ON x.register = o.register AND x.pos_receiptid = r.receipt_id "
        f"WHERE x.register IS NULL AND r.datecreated < o.last_at "
        f"AND r.datecreated >= o.first_at AND {' AND '.join(parts)}"
    )
    params = {**scope.params(), "no": False}
    missing: dict[tuple[str, date | None, str], list[tuple[str, int]]] = defaultdict(list)
    for row in source.rows(sql, params):
        sign = -1 if row[4] else 1
        key = (str(row[0]), to_day(row[1]), store_of(row[2]))
        missing[key].append((str(row[3]), sign * int(row[5] or 0)))
    for (registerid, day, store), receipts in sorted(missing.items(), key=_by_place):
        ids = ", ".join(r for r, _ in sorted(receipts)[:_SHOWN_RECEIPTS])
        more = (
            f" and {len(receipts) - _SHOWN_RECEIPTS} more"
            if len(receipts) > _SHOWN_RECEIPTS
            else ""
        )
        yield Finding(
            CHECK,
            Severity.ERROR,
            f"{len(receipts)} journal receipt(s) of {day} have no order ({ids}{more}), "
            f"together {cents_to_money(sum(c for _, c in receipts))} (refunds negative), though "
            f"the register's later orders are loaded",
            registerid=registerid,
            store_id=store,
            day=day,
            expected=Decimal(len(receipts)),
            actual=Decimal(0),
        )


def _by_place(item: tuple[tuple[str, date | None, str], Any]) -> tuple[str, str]:
    (registerid, day, _store), _ = item
    return registerid, day.isoformat() if day else ""
