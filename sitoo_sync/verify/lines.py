"""Checks of a z-report's lines against its totals: VAT groups, product groups, payments.

The same rules hold for a POS z-report and for a store z-report (whose `data` has the same
fields and lists): each check runs over both kinds of report, through `Parent`. The lines are
summed in SQL as exact cents; only reports whose sums differ leave the database, and their
figures are compared again in Decimal.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sitoo_sync.verify.findings import Finding, Severity
from sitoo_sync.verify.registers import Report
from sitoo_sync.verify.source import Scope, Source, cents_to_money, to_day, to_decimal
from sitoo_sync.verify.stores import store_where

_SECTIONS = {
    "sales": ("moneysalestotal", "moneysalestotalnet", "numsalesitems"),
    "refund": ("moneyrefundtotal", "moneyrefundtotalnet", "numrefunditems"),
    "salesnotdelivered": (
        "moneysalesnotdeliveredtotal",
        "moneysalesnotdeliveredtotalnet",
        "numsalesnotdelivereditems",
    ),
}


@dataclass(frozen=True)
class Parent:
    """A kind of z-report whose lines are checked: its table, key and child-table prefix."""

    table: str
    prefix: str
    key: tuple[str, ...]
    head: tuple[str, ...]  # the columns a finding names the report by, first in every row

    def child(self, kind: str) -> str:
        """The child table of `kind` (vat_groups, payments ...) of this kind of report."""
        return f"{self.prefix}_{kind}"

    def columns(self, alias: str) -> str:
        """The head columns of report rows `alias`."""
        return ", ".join(f"{alias}.{c}" for c in self.head)

    def keys(self, alias: str | None = None) -> str:
        """The key columns, of `alias` if given."""
        return ", ".join(f"{alias}.{k}" if alias else k for k in self.key)

    def joins(self, left: str, right: str) -> str:
        """A join condition on the key between `left` and `right`."""
        return " AND ".join(f"{left}.{k} = {right}.{k}" for k in self.key)

    def where(self, scope: Scope, alias: str) -> str:
        """The scope's condition on report rows `alias`."""
        return scope.where(alias)

    def finding(self, row: tuple[Any, ...], check: str, details: str, **kw: Any) -> Finding:
        """An error finding on the report whose head columns `row` starts with."""
        return Report.head(row).finding(check, Severity.ERROR, details, **kw)


class _StoreParent(Parent):
    def where(self, scope: Scope, alias: str) -> str:
        return store_where(scope, alias)

    def finding(self, row: tuple[Any, ...], check: str, details: str, **kw: Any) -> Finding:
        return Finding(
            check,
            Severity.ERROR,
            details,
            store_id=str(row[1]),
            day=to_day(row[2]),
            store_zreport_id=str(row[0]),
            **kw,
        )


POS = Parent(
    "pos_z_reports",
    "pos_z_report",
    ("registerid", "zreportid"),
    ("registerid", "zreportid", "datecreated", "store_id", "business_date"),
)
STORE = _StoreParent(
    "store_z_reports",
    "store_z_report",
    ("store_zreport_id",),
    ("store_zreport_id", "store_id", "day_created"),
)


def _parents(source: Source, *kinds: str) -> Iterator[Parent]:
    """POS z-reports, and store z-reports when the warehouse has them and their `kinds`."""
    yield POS
    if source.has(STORE.table, *(STORE.child(k) for k in kinds)):
        yield STORE


def group_sums(
    source: Source, scope: Scope, parent: Parent, kind: str, check: str, *, items: bool
) -> Iterator[Finding]:
    """The lines of `kind` (per section) sum to the report's gross, net (and item) totals."""
    child = parent.child(kind)
    count = "SUM(numtotal)" if items else "0"
    groups = (
        f"SELECT {parent.keys()}, section, SUM({{cents(moneytotal)}}) AS gross, "
        f"SUM({{cents(moneytotalnet)}}) AS net, {count} AS items FROM {{{child}}} "
        f"GROUP BY {parent.keys()}, section"
    )
    totals = ", ".join(f"p.{c}" for cols in _SECTIONS.values() for c in cols)
    sql = (
        f"SELECT {parent.columns('p')}, g.section, g.gross, g.net, g.items, {totals} "
        f"FROM {{{parent.table}}} p JOIN ({groups}) g ON {parent.joins('g', 'p')} "
        f"WHERE {parent.where(scope, 'p')}"
    )
    suspect = " OR ".join(
        f"(g.section = '{section}' AND (g.gross <> {{cents(p.{gross})}} "
        f"OR g.net <> {{cents(p.{net})}}{f' OR g.items <> p.{count}' if items else ''}))"
        for section, (gross, net, count) in _SECTIONS.items()
    )
    sql += f" AND ({suspect})"
    names = [c for cols in _SECTIONS.values() for c in cols]
    at = len(parent.head)
    for row in source.rows(sql, scope.params()):
        section = str(row[at])
        if section not in _SECTIONS:
            continue
        values = dict(zip(names, row[at + 4 :], strict=True))
        gross_f, net_f, items_f = _SECTIONS[section]
        sums = [(gross_f, cents_to_money(row[at + 1])), (net_f, cents_to_money(row[at + 2]))]
        if items:
            sums.append((items_f, to_decimal(row[at + 3]) or Decimal(0)))
        for field, total in sums:
            actual = to_decimal(values[field])
            if actual is not None and actual != total:
                yield parent.finding(
                    row,
                    check,
                    f"{section} lines of {child} sum to {total}, {field} says {actual}",
                    expected=total,
                    actual=actual,
                )
                break


def vat_groups(source: Source, scope: Scope) -> Iterator[Finding]:
    """VAT groups per section sum to the section's gross and net totals."""
    for parent in _parents(source, "vat_groups"):
        yield from group_sums(source, scope, parent, "vat_groups", "vat_groups", items=False)


def product_groups(source: Source, scope: Scope) -> Iterator[Finding]:
    """Product groups per section sum to the section's gross, net and item totals."""
    for parent in _parents(source, "product_groups"):
        yield from group_sums(source, scope, parent, "product_groups", "product_groups", items=True)


def payments(source: Source, scope: Scope) -> Iterator[Finding]:
    """Sales payments minus refund payments equal moneysummarytotal; sub-payments their payment.

    A report with no payment lines at all counts as paying 0.00: one whose total is not zero
    is flagged, for the list is what a lost or renamed `paymentssales` looks like once loaded
    (the loader reads lists leniently). Unlike VAT and product groups, every report with
    takings has payments.
    """
    for parent in _parents(source, "payments", "subpayments"):
        yield from _payments(source, scope, parent)
        yield from _subpayments(source, scope, parent)


def _payments(source: Source, scope: Scope, parent: Parent) -> Iterator[Finding]:
    paid = (
        f"SELECT {parent.keys()}, SUM(CASE WHEN section = 'refund' "
        f"THEN -{{cents(moneytotal)}} ELSE {{cents(moneytotal)}} END) AS net "
        f"FROM {{{parent.child('payments')}}} GROUP BY {parent.keys()}"
    )
    sql = (
        f"SELECT {parent.columns('p')}, p.moneysummarytotal, g.net FROM {{{parent.table}}} p "
        f"LEFT JOIN ({paid}) g ON {parent.joins('g', 'p')} "
        f"WHERE {parent.where(scope, 'p')} "
        f"AND COALESCE(g.net, 0) <> {{cents(p.moneysummarytotal)}}"
    )
    at = len(parent.head)
    for row in source.rows(sql, scope.params()):
        total, net = to_decimal(row[at]), cents_to_money(row[at + 1])
        if total is not None and total != net:
            paid_text = (
                "it lists no payments"
                if row[at + 1] is None
                else f"sales payments minus refund payments come to {net}"
            )
            yield parent.finding(
                row,
                "payments",
                f"{paid_text}, moneysummarytotal is {total}",
                expected=net,
                actual=total,
            )


def _subpayments(source: Source, scope: Scope, parent: Parent) -> Iterator[Finding]:
    subs = (
        f"SELECT {parent.keys()}, section, payment_position, "
        f"SUM({{cents(moneysubtotal)}}) AS total FROM {{{parent.child('subpayments')}}} "
        f"GROUP BY {parent.keys()}, section, payment_position"
    )
    sql = (
        f"SELECT {parent.columns('p')}, y.name, y.moneytotal, s.total FROM {{{parent.table}}} p "
        f"JOIN {{{parent.child('payments')}}} y ON {parent.joins('y', 'p')} JOIN ({subs}) s "
        f"ON {parent.joins('s', 'y')} AND s.section = y.section "
        f"AND s.payment_position = y.position "
        f"WHERE {parent.where(scope, 'p')} AND s.total <> {{cents(y.moneytotal)}}"
    )
    at = len(parent.head)
    for row in source.rows(sql, scope.params()):
        payment, subtotal = to_decimal(row[at + 1]), cents_to_money(row[at + 2])
        if payment is not None and payment != subtotal:
            yield parent.finding(
                row,
                "payments",
                f"sub-payments of {row[at]} sum to {subtotal}, the payment is {payment}",
                expected=subtotal,
                actual=payment,
            )
