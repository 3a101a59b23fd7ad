"""Journals against z-reports: receipts and cash events of each register's opening.

An entry belongs to the z-report that closes next after it (the first `datecreated` at or
after the entry's, same register), provided it is not older than that report's `dateopened`.
With no `dateopened` (legacy POS versions) the opening runs from the previous closing. This is
computed in SQL with one window function over the entries and the closings, so the work grows
with the number of entries, not entries times reports. Only reports whose opening the journal
covers are judged: the register's journal must reach back to the opening (or the previous
closing) and forward to the closing.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sitoo_sync.verify.findings import Finding, Severity, store_of
from sitoo_sync.verify.source import (
    Scope,
    Source,
    business_day,
    cents_to_money,
    to_decimal,
    to_utc,
)


def _attributed(table: str, names: tuple[str, ...], scope: Scope) -> tuple[str, str]:
    """(a WITH clause, a query of rows (registerid, zreportid, at, names...) of `table`).

    Entries and closings of a register are put in one time line; a running count of the
    closings numbers the openings, so an entry belongs to the closing numbered one more
    than the closings before it. A running count streams; no range join is needed.
    """
    columns = ", ".join(names)
    nulls = ", ".join("NULL" for _ in names)
    early = " AND datecreated >= :since_early" if scope.since else ""
    events = (
        f"SELECT registerid, datecreated AS at, 0 AS closing, NULL AS zreportid, "
        f"NULL AS dateopened, {columns} FROM {{{table}}} WHERE 1 = 1{early} UNION ALL "
        f"SELECT registerid, datecreated, 1, zreportid, dateopened, {nulls} "
        f"FROM {{pos_z_reports}} WHERE datecreated IS NOT NULL{early}"
    )
    numbered = (
        f"numbered AS (SELECT e.*, SUM(e.closing) OVER (PARTITION BY e.registerid "
        f"ORDER BY e.at, e.closing ROWS UNBOUNDED PRECEDING) AS n FROM ({events}) e)"
    )
    select = (
        f"SELECT c.registerid, c.zreportid, x.at, {', '.join('x.' + n for n in names)} "
        f"FROM numbered x JOIN numbered c ON c.registerid = x.registerid "
        f"AND c.n = x.n + 1 AND c.closing = 1 "
        f"WHERE x.closing = 0 AND (c.dateopened IS NULL OR x.at >= c.dateopened)"
    )
    return numbered, select


def _covered(scope: Scope, sums: str) -> str:
    """Reports whose opening the register's journal covers (`z`), with their `sums` (`a`)."""
    return (
        f"FROM {{pos_z_reports}} z LEFT JOIN {{pos_z_reports}} prev "
        f"ON prev.registerid = z.registerid AND prev.zreportid = z.zreportid - 1 "
        f"JOIN (SELECT registerid, MIN(datecreated) AS first_at, MAX(datecreated) AS last_at "
        f"FROM {{journal_entries}} GROUP BY registerid) j ON j.registerid = z.registerid "
        f"LEFT JOIN ({sums}) a ON a.registerid = z.registerid AND a.zreportid = z.zreportid "
        f"WHERE z.datecreated <= j.last_at "
        f"AND COALESCE(z.dateopened, prev.datecreated) >= j.first_at AND {scope.where('z')}"
    )


def _params(source: Source, scope: Scope) -> dict[str, Any]:
    params = {**scope.params(), "yes": True}
    since = scope.since_at()
    if since is not None:
        params["since_early"] = _earliest_opening(source, scope, since - timedelta(days=2))
    return params


def _earliest_opening(source: Source, scope: Scope, early: datetime) -> datetime:
    """Where the time line must begin for `scope`'s reports: at `early` (two days before
    `since`: a business day is never further from its UTC instants), or at the opening of
    an in-scope report that began before it (a register left open over days), so that no
    entry of a judged opening is cut off."""
    sql = (
        "SELECT MIN(COALESCE(z.dateopened, prev.datecreated)) FROM {pos_z_reports} z "
        "LEFT JOIN {pos_z_reports} prev ON prev.registerid = z.registerid "
        f"AND prev.zreportid = z.zreportid - 1 WHERE {scope.where('z')}"
    )
    rows = list(source.rows(sql, scope.params()))
    opened = to_utc(rows[0][0]) if rows else None
    return early if opened is None or opened >= early else opened


def receipts(source: Source, scope: Scope) -> Iterator[Finding]:
    """Receipts of an opening sum to its sales and refunds and count to its receipts."""
    practice = "e.ispractice = :yes"
    refund = "e.isrefund = :yes"
    amount = "{cents(e.moneytotal)}"
    numbered, entries = _attributed(
        "journal_receipts", ("ispractice", "isrefund", "moneytotal"), scope
    )
    sums = (
        f"SELECT e.registerid, e.zreportid, "
        f"SUM(CASE WHEN {practice} OR {refund} THEN 0 ELSE 1 END) AS n_sales, "
        f"SUM(CASE WHEN {practice} OR {refund} THEN 0 ELSE {amount} END) AS sales, "
        f"SUM(CASE WHEN {practice} THEN 0 WHEN {refund} THEN 1 ELSE 0 END) AS n_refund, "
        f"SUM(CASE WHEN {practice} THEN 0 WHEN {refund} THEN ABS({amount}) ELSE 0 END) "
        f"AS refund, SUM(CASE WHEN {practice} THEN 1 ELSE 0 END) AS n_practice, "
        f"SUM(CASE WHEN {practice} THEN {amount} ELSE 0 END) AS practice "
        f"FROM ({entries}) e GROUP BY e.registerid, e.zreportid"
    )
    sql = (
        f"WITH {numbered} "
        f"SELECT z.registerid, z.zreportid, z.datecreated, z.store_id, z.moneysalestotal, "
        f"z.moneyrefundtotal, z.numreceipts, z.numpractice, z.moneypractice, a.n_sales, "
        f"a.sales, a.n_refund, a.refund, a.n_practice, a.practice, z.business_date "
        f"{_covered(scope, sums)} "
        f"AND (COALESCE(a.sales, 0) <> {{cents(z.moneysalestotal)}} "
        f"OR COALESCE(a.refund, 0) <> {{cents(z.moneyrefundtotal)}} "
        f"OR COALESCE(a.n_sales, 0) + COALESCE(a.n_refund, 0) <> z.numreceipts "
        f"OR COALESCE(a.n_practice, 0) <> z.numpractice "
        f"OR COALESCE(a.practice, 0) <> {{cents(z.moneypractice)}})"
    )
    for row in source.rows(sql, _params(source, scope)):
        figures = [
            ("moneysalestotal", to_decimal(row[4]), cents_to_money(row[10]), "sales receipts"),
            ("moneyrefundtotal", to_decimal(row[5]), cents_to_money(row[12]), "refund receipts"),
            (
                "numreceipts",
                to_decimal(row[6]),
                Decimal(int(row[9] or 0) + int(row[11] or 0)),
                "receipts (practice excluded)",
            ),
            ("numpractice", to_decimal(row[7]), Decimal(int(row[13] or 0)), "practice receipts"),
            ("moneypractice", to_decimal(row[8]), cents_to_money(row[14]), "practice receipts"),
        ]
        yield from _compare("journal_receipts", row, figures)


_CASH = (
    ("cash-start", "moneycash_in"),
    ("cash-petty", "moneycash_petty"),
    ("cash-bank", "moneycash_bank"),
    ("cash-counted", "moneycash_counted"),
    ("cash-bank-final", "moneycash_bankfinal"),
)


def cash_events(source: Source, scope: Scope) -> Iterator[Finding]:
    """Cash events of an opening sum to its cash figures, type by type."""
    numbered, entries = _attributed(
        "journal_cash_events", ("type", "ispractice", "moneycash"), scope
    )
    sums = ", ".join(
        f"SUM(CASE WHEN e.ispractice = :yes THEN 0 WHEN e.type = '{kind}' "
        f"THEN {{cents(e.moneycash)}} ELSE 0 END) AS c_{i}"
        for i, (kind, _) in enumerate(_CASH)
    )
    grouped = (
        f"SELECT e.registerid, e.zreportid, {sums} FROM ({entries}) e "
        f"GROUP BY e.registerid, e.zreportid"
    )
    figures = ", ".join(f"z.{f}" for _, f in _CASH)
    sums_cols = ", ".join(f"a.c_{i}" for i in range(len(_CASH)))
    sql = (
        f"WITH {numbered} "
        f"SELECT z.registerid, z.zreportid, z.datecreated, z.store_id, {figures}, {sums_cols}, "
        f"z.business_date "
        f"{_covered(scope, grouped)} AND ("
        + " OR ".join(
            f"COALESCE(a.c_{i}, 0) <> {{cents(z.{field})}}" for i, (_, field) in enumerate(_CASH)
        )
        + ")"
    )
    n = len(_CASH)
    for row in source.rows(sql, _params(source, scope)):
        figures_ = [
            (field, to_decimal(row[4 + i]), cents_to_money(row[4 + n + i]), f"{kind} events")
            for i, (kind, field) in enumerate(_CASH)
        ]
        yield from _compare("journal_cash", row, figures_)


def _compare(
    check: str, row: tuple[Any, ...], figures: list[tuple[str, Decimal | None, Decimal, str]]
) -> Iterator[Finding]:
    wrong = [(f, z, j, what) for f, z, j, what in figures if z is not None and z != j]
    if not wrong:
        return
    field, stated, journal, what = wrong[0]
    others = f"; also {', '.join(w[0] for w in wrong[1:])}" if wrong[1:] else ""
    yield Finding(
        check,
        Severity.ERROR,
        f"the journal's {what} of this opening come to {journal}, {field} is {stated}{others}",
        registerid=str(row[0]),
        store_id=store_of(row[3]),
        day=business_day(row[-1], row[2]),  # every query ends with z.business_date
        zreportid=int(row[1]),
        expected=journal,
        actual=stated,
    )
