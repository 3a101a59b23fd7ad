"""Orders against z-reports: a POS sale is an order, so a register's day adds up twice.

Per register and local business day, the closed POS orders (`orders` with a registerid and
orderstateid 10) are summed in SQL in exact cents, items incl. VAT (moneytotal_net +
moneytotal_vat: no delivery, checkout cost or cash rounding, as a z-report's
moneysalestotal has none): an order whose items come to a positive amount is a sale, one
that comes to a negative amount a refund (its amount, positive). The day's POS z-reports
(`business_date`) are summed in Python, in Decimal, and the two compared.

What is judged, so that a partial sync is not a finding: a day whose orders the loaded
orders surround (the account's earliest POS order is of an earlier day, its latest is later
than the day's closing); a day with orders but no z-report once the register has z-reports
of an earlier and a later day (its history before its first z-report is not judged). A
journal receipt is judged once its register has a later order loaded.
Registers are matched as GUIDs, braces and case aside.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
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


def _guid(column: str) -> str:
    """A register id as a comparable key: braces and case aside (SQL on every target; the
    doubled braces are the query template's escapes)."""
    return "UPPER(REPLACE(REPLACE(" + column + ", '{{', ''), '}}', ''))"


@dataclass
class _Day:
    """One register's business day: its z-reports' figures and its orders' sums."""

    registerid: str = ""
    store: str | None = None
    reports: list[int] = field(default_factory=list)
    closed_at: datetime | None = None  # the day's last closing
    stated_sales: Decimal = Decimal("0.00")
    stated_refund: Decimal = Decimal("0.00")
    sales: Decimal = Decimal("0.00")
    refund: Decimal = Decimal("0.00")
    orders: int = 0


@dataclass
class _Orders:
    """The loaded POS orders' reach: first business day and latest orderdate."""

    first_day: date | None = None
    last_at: datetime | None = None


def _reach(source: Source) -> _Orders:
    sql = (
        "SELECT MIN(business_date), MAX(orderdate) FROM {orders} "
        "WHERE registerid IS NOT NULL AND orderstateid = 10"
    )
    row = next(iter(list(source.rows(sql))))
    return _Orders(to_day(row[0]), to_utc(row[1]))


def _reports(source: Source, scope: Scope, days: dict[tuple[str, date], _Day]) -> None:
    sql = (
        f"SELECT z.registerid, z.zreportid, z.datecreated, z.store_id, z.business_date, "
        f"z.moneysalestotal, z.moneyrefundtotal FROM {{pos_z_reports}} z "
        f"WHERE {scope.where('z')}"
    )
    for row in source.rows(sql, scope.params()):
        day = business_day(row[4], row[2])
        if day is None:
            continue
        entry = days[(_key(row[0]), day)]
        entry.registerid, entry.store = str(row[0]), store_of(row[3])
        entry.reports.append(int(row[1]))
        closed = to_utc(row[2])
        if closed is not None and (entry.closed_at is None or closed > entry.closed_at):
            entry.closed_at = closed
        entry.stated_sales += to_decimal(row[5]) or Decimal(0)
        entry.stated_refund += to_decimal(row[6]) or Decimal(0)


def _order_sums(source: Source, scope: Scope, days: dict[tuple[str, date], _Day]) -> None:
    gross = "({cents(moneytotal_net)} + {cents(moneytotal_vat)})"
    since = " AND business_date >= :since_day" if scope.since else ""
    sql = (
        f"SELECT o.registerid, o.business_date, "
        f"SUM(CASE WHEN o.gross > 0 THEN o.gross ELSE 0 END), "
        f"SUM(CASE WHEN o.gross < 0 THEN -o.gross ELSE 0 END), COUNT(*) "
        f"FROM (SELECT {_guid('registerid')} AS registerid, business_date, {gross} AS gross "
        f"FROM {{orders}} WHERE registerid IS NOT NULL AND orderstateid = 10 "
        f"AND business_date IS NOT NULL{since}) o GROUP BY o.registerid, o.business_date"
    )
    for row in source.rows(sql, scope.params()):
        day = to_day(row[1])
        assert day is not None
        entry = days[(str(row[0]), day)]
        entry.sales, entry.refund = cents_to_money(row[2]), cents_to_money(row[3])
        entry.orders = int(row[4])


def _key(registerid: Any) -> str:
    return str(registerid).replace("{", "").replace("}", "").upper()


def against_z_reports(source: Source, scope: Scope) -> Iterator[Finding]:
    """Closed POS orders per register and day sum to the day's z-reports' sales and refunds;
    journal receipts (when synced) each have an order."""
    reach = _reach(source)
    if reach.first_day is None or reach.last_at is None:
        return  # no POS order loaded: nothing to hold the z-reports against
    days: dict[tuple[str, date], _Day] = defaultdict(_Day)
    _reports(source, scope, days)
    _order_sums(source, scope, days)
    first: dict[str, date] = {}  # each register's first and latest day with a z-report
    last: dict[str, tuple[date, _Day]] = {}
    for (register, day), entry in sorted(days.items()):
        if entry.reports:
            first.setdefault(register, day)
            last[register] = (day, entry)
    rejected = _rejected_numbers(source)
    before: dict[str, int] = {}  # the highest zreportid of a register's days so far
    for (register, day), entry in sorted(days.items()):
        if entry.reports:
            before[register] = max(entry.reports)
            covered = reach.first_day < day and (
                entry.closed_at is None or reach.last_at >= entry.closed_at
            )
            if covered:
                yield from _compare(day, entry)
        elif register in last and first[register] < day < last[register][0]:
            after = _next_report(days, register, day)
            lost = sorted(n for n in rejected.get(register, ()) if before[register] < n < after)
            yield _unclosed(day, entry, last[register][1], lost)
    if source.has("journal_receipts"):
        yield from _receipts_without_order(source, scope)


def _compare(day: date, entry: _Day) -> Iterator[Finding]:
    figures = [
        ("moneysalestotal", entry.stated_sales, entry.sales, "sales"),
        ("moneyrefundtotal", entry.stated_refund, entry.refund, "refunds"),
    ]
    wrong = [f for f in figures if f[1] != f[2]]
    if not wrong:
        return
    field_, stated, orders, what = wrong[0]
    others = f"; also {wrong[1][0]} {wrong[1][1]} against {wrong[1][2]}" if wrong[1:] else ""
    reports = ", ".join(str(z) for z in sorted(entry.reports))
    yield Finding(
        CHECK,
        Severity.ERROR,
        f"the register's {entry.orders} closed POS orders of {day} come to {orders} in "
        f"{what}, its z-report{'s' if len(entry.reports) > 1 else ''} {reports} of the day "
        f"state{'' if len(entry.reports) > 1 else 's'} {field_} {stated}{others}",
        registerid=entry.registerid,
        store_id=entry.store,
        day=day,
        zreportid=entry.reports[0] if len(entry.reports) == 1 else None,
        expected=orders,
        actual=stated,
    )


def _rejected_numbers(source: Source) -> dict[str, set[int]]:
    """The zreportids of each register's rejected POS z-reports (registers as `_key`)."""
    out: dict[str, set[int]] = defaultdict(set)
    for registerid, zreportid in rejected_reports(source):
        out[_key(registerid)].add(zreportid)
    return out


def _next_report(days: dict[tuple[str, date], _Day], register: str, day: date) -> int:
    """The lowest zreportid of the register's first day with z-reports after `day`."""
    later = sorted((d, e) for (r, d), e in days.items() if r == register and d > day and e.reports)
    return min(later[0][1].reports)


def _unclosed(day: date, entry: _Day, later: _Day, rejected: list[int]) -> Finding:
    why = (
        f"; its z-report {', '.join(map(str, rejected))} between them was rejected at load "
        "(see rejects)"
        if rejected
        else ""
    )
    return Finding(
        CHECK,
        Severity.ERROR,
        f"no z-report of {day}, yet the register's {entry.orders} closed POS orders of the day "
        f"come to {entry.sales} in sales and {entry.refund} in refunds, though it closed the "
        f"days before and after{why}",
        registerid=later.registerid,  # as its z-reports name it
        store_id=later.store,
        day=day,
        expected=entry.sales,
    )


def _receipts_without_order(source: Source, scope: Scope) -> Iterator[Finding]:
    """Non-practice journal receipts with no order of their register and receipt id, per
    register and day; judged once the register has a later POS order loaded."""
    parts = ["(r.ispractice IS NULL OR r.ispractice = :no)", "r.receipt_id IS NOT NULL"]
    if scope.since:
        parts.append("r.business_date >= :since_day")
    if scope.store:
        parts.append("COALESCE(NULLIF(r.store_id, ''), 'NO_STORE') = :store")
    sql = (
        f"SELECT r.registerid, r.business_date, r.store_id, r.receipt_id, r.isrefund, "
        f"{{cents(r.moneytotal)}} FROM {{journal_receipts}} r "
        f"JOIN (SELECT {_guid('registerid')} AS register, MAX(orderdate) AS last_at "
        f"FROM {{orders}} WHERE registerid IS NOT NULL GROUP BY {_guid('registerid')}) o "
        f"ON o.register = {_guid('r.registerid')} "
        f"LEFT JOIN (SELECT {_guid('registerid')} AS register, pos_receiptid FROM {{orders}} "
        f"WHERE registerid IS NOT NULL AND pos_receiptid IS NOT NULL) x "
        f"ON x.register = o.register AND x.pos_receiptid = r.receipt_id "
        f"WHERE x.register IS NULL AND r.datecreated < o.last_at AND {' AND '.join(parts)}"
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
