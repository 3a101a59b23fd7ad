"""Checks of a z-report's lines against its totals: VAT groups, product groups, payments.

The lines are summed in SQL as exact cents; only reports whose sums differ leave the
database, and their figures are compared again in Decimal.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

from sitoo_sync.verify.findings import Finding, Severity
from sitoo_sync.verify.registers import Report
from sitoo_sync.verify.source import Scope, Source, cents_to_money, to_decimal

_SECTIONS = {
    "sales": ("moneysalestotal", "moneysalestotalnet", "numsalesitems"),
    "refund": ("moneyrefundtotal", "moneyrefundtotalnet", "numrefunditems"),
    "salesnotdelivered": (
        "moneysalesnotdeliveredtotal",
        "moneysalesnotdeliveredtotalnet",
        "numsalesnotdelivereditems",
    ),
}


def group_sums(
    source: Source, scope: Scope, child: str, check: str, *, items: bool
) -> Iterator[Finding]:
    """The lines of `child` (per section) sum to the report's gross, net (and item) totals."""
    count = "SUM(numtotal)" if items else "0"
    groups = (
        f"SELECT registerid, zreportid, section, SUM({{cents(moneytotal)}}) AS gross, "
        f"SUM({{cents(moneytotalnet)}}) AS net, {count} AS items FROM {{{child}}} "
        f"GROUP BY registerid, zreportid, section"
    )
    totals = ", ".join(f"p.{c}" for cols in _SECTIONS.values() for c in cols)
    sql = (
        f"SELECT p.registerid, p.zreportid, p.datecreated, p.store_id, g.section, g.gross, "
        f"g.net, g.items, {totals} FROM {{pos_z_reports}} p JOIN ({groups}) g "
        f"ON g.registerid = p.registerid AND g.zreportid = p.zreportid WHERE {scope.where('p')}"
    )
    suspect = " OR ".join(
        f"(g.section = '{section}' AND (g.gross <> {{cents(p.{gross})}} "
        f"OR g.net <> {{cents(p.{net})}}{f' OR g.items <> p.{count}' if items else ''}))"
        for section, (gross, net, count) in _SECTIONS.items()
    )
    sql += f" AND ({suspect})"
    names = [c for cols in _SECTIONS.values() for c in cols]
    for row in source.rows(sql, scope.params()):
        report = Report.head(row)
        section = str(row[4])
        if section not in _SECTIONS:
            continue
        values = dict(zip(names, row[8:], strict=True))
        gross_f, net_f, items_f = _SECTIONS[section]
        sums = [(gross_f, cents_to_money(row[5])), (net_f, cents_to_money(row[6]))]
        if items:
            sums.append((items_f, to_decimal(row[7]) or Decimal(0)))
        for field, total in sums:
            actual = to_decimal(values[field])
            if actual is not None and actual != total:
                yield report.finding(
                    check,
                    Severity.ERROR,
                    f"{section} lines of {child} sum to {total}, {field} says {actual}",
                    expected=total,
                    actual=actual,
                )
                break


def vat_groups(source: Source, scope: Scope) -> Iterator[Finding]:
    """VAT groups per section sum to the section's gross and net totals."""
    yield from group_sums(source, scope, "pos_z_report_vat_groups", "vat_groups", items=False)


def product_groups(source: Source, scope: Scope) -> Iterator[Finding]:
    """Product groups per section sum to the section's gross, net and item totals."""
    yield from group_sums(
        source, scope, "pos_z_report_product_groups", "product_groups", items=True
    )


def payments(source: Source, scope: Scope) -> Iterator[Finding]:
    """Sales payments minus refund payments equal moneysummarytotal; sub-payments their payment."""
    paid = (
        "SELECT registerid, zreportid, SUM(CASE WHEN section = 'refund' "
        "THEN -{cents(moneytotal)} ELSE {cents(moneytotal)} END) AS net "
        "FROM {pos_z_report_payments} GROUP BY registerid, zreportid"
    )
    sql = (
        f"SELECT p.registerid, p.zreportid, p.datecreated, p.store_id, p.moneysummarytotal, "
        f"g.net FROM {{pos_z_reports}} p LEFT JOIN ({paid}) g "
        f"ON g.registerid = p.registerid AND g.zreportid = p.zreportid "
        f"WHERE {scope.where('p')} AND COALESCE(g.net, 0) <> {{cents(p.moneysummarytotal)}}"
    )
    for row in source.rows(sql, scope.params()):
        report = Report.head(row)
        total, net = to_decimal(row[4]), cents_to_money(row[5])
        if total is not None and total != net:
            yield report.finding(
                "payments",
                Severity.ERROR,
                f"sales payments minus refund payments come to {net}, moneysummarytotal is {total}",
                expected=total,
                actual=net,
            )
    yield from _subpayments(source, scope)


def _subpayments(source: Source, scope: Scope) -> Iterator[Finding]:
    subs = (
        "SELECT registerid, zreportid, section, payment_position, "
        "SUM({cents(moneysubtotal)}) AS total FROM {pos_z_report_subpayments} "
        "GROUP BY registerid, zreportid, section, payment_position"
    )
    sql = (
        f"SELECT p.registerid, p.zreportid, p.datecreated, p.store_id, y.name, y.moneytotal, "
        f"s.total FROM {{pos_z_reports}} p JOIN {{pos_z_report_payments}} y "
        f"ON y.registerid = p.registerid AND y.zreportid = p.zreportid JOIN ({subs}) s "
        f"ON s.registerid = y.registerid AND s.zreportid = y.zreportid "
        f"AND s.section = y.section AND s.payment_position = y.position "
        f"WHERE {scope.where('p')} AND s.total <> {{cents(y.moneytotal)}}"
    )
    for row in source.rows(sql, scope.params()):
        report = Report.head(row)
        payment, subtotal = to_decimal(row[5]), cents_to_money(row[6])
        if payment is not None and payment != subtotal:
            yield report.finding(
                "payments",
                Severity.ERROR,
                f"sub-payments of {row[4]} sum to {subtotal}, the payment is {payment}",
                expected=payment,
                actual=subtotal,
            )
