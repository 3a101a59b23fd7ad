"""Checks of store z-reports against the POS z-reports they aggregate.

Which local day a POS z-report belongs to is decided by Sitoo's aggregation (the hour and time
zone of `/store-z-reports/config`), which the warehouse does not keep. So the membership rule
is zone-free: a listed POS z-report's store report's `day_created` must be from the day before
its UTC day to two days after it (no zone is more than 14 hours from UTC, and the aggregation
that lists it runs within a day), and an unlisted one is judged only once its store has store
reports from the day before it and from two days after it.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from sitoo_sync.normalize.tables import Kind
from sitoo_sync.normalize.z_reports import TOTALS
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

_FIGURES = list(TOTALS)


def store_where(scope: Scope, alias: str = "s") -> str:
    """The scope's condition on store z-report rows `alias` (params: `scope.params()`)."""
    parts = ["1 = 1"]
    if scope.since:
        parts.append(f"{alias}.day_created >= :since_day")
    if scope.store:
        parts.append(f"{alias}.store_id = :store")
    return " AND ".join(parts)


def store_figures(source: Source, scope: Scope) -> Iterator[Finding]:
    """Each store report's figures equal the sums of the POS z-reports it lists."""
    sums = ", ".join(
        (f"SUM({source.cents('p.' + c.name)})" if c.kind is Kind.MONEY else f"SUM(p.{c.name})")
        + f" AS f_{i}"
        for i, c in enumerate(_FIGURES)
    )
    lists = (
        f"SELECT r.store_zreport_id, COUNT(*) AS listed, COUNT(p.registerid) AS found, {sums} "
        f"FROM {{store_z_report_registers}} r LEFT JOIN {{pos_z_reports}} p "
        f"ON p.registerid = r.registerid AND p.zreportid = r.zreportid "
        f"GROUP BY r.store_zreport_id"
    )
    n = len(_FIGURES)
    summed_cols = ", ".join(f"a.f_{i}" for i in range(n))
    own = ", ".join(f"s.{c.name}" for c in _FIGURES)
    sql = (
        f"SELECT s.store_zreport_id, s.store_id, s.day_created, a.listed, a.found, "
        f"{summed_cols}, {own} FROM {{store_z_reports}} s LEFT JOIN ({lists}) a "
        f"ON a.store_zreport_id = s.store_zreport_id WHERE {store_where(scope)}"
    )
    differs = " OR ".join(
        (
            f"COALESCE(a.f_{i}, 0) <> {source.cents('s.' + c.name)}"
            if c.kind is Kind.MONEY
            else f"COALESCE(a.f_{i}, 0) <> s.{c.name}"
        )
        for i, c in enumerate(_FIGURES)
    )
    sql += f" AND ({differs})"
    for row in source.rows(sql, scope.params()):
        report_id, store, day = str(row[0]), str(row[1]), to_day(row[2])
        listed, found = int(row[3] or 0), int(row[4] or 0)
        if found < listed:
            continue  # store_unknown says which POS z-reports are missing
        summed = row[5 : 5 + n]
        stated = row[5 + n : 5 + 2 * n]
        wrong = []
        for col, total, value in zip(_FIGURES, summed, stated, strict=True):
            expected = cents_to_money(total) if col.kind is Kind.MONEY else Decimal(total or 0)
            actual = to_decimal(value)
            if actual is not None and actual != expected:
                wrong.append((col.name, expected, actual))
        if wrong:
            name, expected, actual = wrong[0]
            others = f"; also {', '.join(w[0] for w in wrong[1:])}" if wrong[1:] else ""
            yield Finding(
                "store_figures",
                Severity.ERROR,
                f"{name} is {actual}, the {listed} POS z-reports it lists sum to "
                f"{expected}{others}",
                store_id=store,
                day=day,
                store_zreport_id=report_id,
                expected=expected,
                actual=actual,
            )


def membership(source: Source, scope: Scope) -> Iterator[Finding]:
    """Every POS z-report in its store's report of its day; every listed one known."""
    yield from store_membership(source, scope)
    yield from store_unknown(source, scope)


def _first_numbers(source: Source) -> dict[str, int]:
    """Each register's lowest zreportid in the warehouse: where its history there begins."""
    sql = "SELECT registerid, MIN(zreportid) FROM {pos_z_reports} GROUP BY registerid"
    return {str(row[0]): int(row[1]) for row in source.rows(sql) if row[1] is not None}


def store_unknown(source: Source, scope: Scope) -> Iterator[Finding]:
    """A store report lists a POS z-report the warehouse does not hold.

    As numbering_gap, it does not judge history before a register's first z-report in the
    warehouse (POS z-reports backfilled from a later day than the store z-reports), unless
    the load rejected that one.
    """
    firsts = _first_numbers(source)
    rejected = rejected_reports(source)
    sql = (
        f"SELECT s.store_zreport_id, s.store_id, s.day_created, r.registerid, r.zreportid "
        f"FROM {{store_z_reports}} s JOIN {{store_z_report_registers}} r "
        f"ON r.store_zreport_id = s.store_zreport_id LEFT JOIN {{pos_z_reports}} p "
        f"ON p.registerid = r.registerid AND p.zreportid = r.zreportid "
        f"WHERE p.registerid IS NULL AND {store_where(scope)}"
    )
    for row in source.rows(sql, scope.params()):
        key = (str(row[3]), -1 if row[4] is None else int(row[4]))
        if key[1] < firsts.get(key[0], -1) and key not in rejected:
            continue  # before the register's history in the warehouse begins
        why = (
            "rejected at load, see rejects"
            if key in rejected
            else "not synced yet, or never uploaded"
        )
        yield Finding(
            "store_membership",
            Severity.ERROR,
            f"lists z-report {row[4]} of this register, which is not in pos_z_reports ({why})",
            registerid=str(row[3]),
            store_id=str(row[1]),
            day=to_day(row[2]),
            zreportid=None if row[4] is None else int(row[4]),
            store_zreport_id=str(row[0]),
        )


def store_membership(source: Source, scope: Scope) -> Iterator[Finding]:
    """Every POS z-report belongs to one store report: its own store's, made after it."""
    spans: dict[str, tuple[date, date]] = {}
    for row in source.rows(
        "SELECT store_id, MIN(day_created), MAX(day_created) FROM {store_z_reports} "
        "GROUP BY store_id"
    ):
        first, last = to_day(row[1]), to_day(row[2])
        if first and last:
            spans[str(row[0])] = (first, last)
    own = "COALESCE(NULLIF(p.store_id, ''), 'NO_STORE')"
    head = "p.registerid, p.zreportid, p.datecreated, p.store_id, p.business_date"
    listing = (
        "{store_z_report_registers} r ON r.registerid = p.registerid AND r.zreportid = p.zreportid"
    )
    where, params = scope.where("p"), scope.params()
    unlisted = (
        f"SELECT {head} FROM {{pos_z_reports}} p LEFT JOIN {listing} "
        f"WHERE {where} AND r.registerid IS NULL AND {own} IN "
        f"(SELECT store_id FROM {{store_z_reports}})"
    )
    for row in source.rows(unlisted, params):
        yield from _unlisted(row, spans)
    twice = (
        f"SELECT {head}, COUNT(*) FROM {{pos_z_reports}} p JOIN {listing} WHERE {where} "
        f"GROUP BY {head} HAVING COUNT(*) > 1"
    )
    for row in source.rows(twice, params):
        yield _found(row, f"listed by {row[5]} store z-reports", 1, int(row[5]))
    wrong = (
        f"SELECT {head}, s.store_id, s.day_created, s.date_created, s.store_zreport_id "
        f"FROM {{pos_z_reports}} p "
        f"JOIN {listing} JOIN {{store_z_reports}} s ON s.store_zreport_id = r.store_zreport_id "
        f"WHERE {where} AND (s.store_id <> {own} OR p.datecreated > s.date_created "
        f"OR s.day_created <> p.business_date)"  # only a day apart from its own: suspect
    )
    for row in source.rows(wrong, params):
        closed, day, made = to_utc(row[2]), to_day(row[6]), to_utc(row[7])
        if str(row[5]) != store_of(row[3]):
            yield _found(
                row,
                f"listed by store {row[5]}'s z-report of {day}",
                store_zreport_id=str(row[8]),
            )
        elif closed is not None and made is not None and closed > made:
            yield _found(
                row,
                f"closed after the store z-report of {day} that lists it was made "
                f"({made:%Y-%m-%d %H:%M}Z)",
                store_zreport_id=str(row[8]),
            )
        elif closed is not None and day is not None and not _its_day(day, closed.date()):
            yield _found(
                row,
                f"listed by the store z-report of {day}, not of the day it closed "
                f"({closed:%Y-%m-%d %H:%M}Z)",
                store_zreport_id=str(row[8]),
            )


def _its_day(day: date, utc_day: date) -> bool:
    """Whether a store z-report of `day` may aggregate a POS z-report closed on `utc_day`
    (UTC), whatever the aggregation's zone and hour: the closing's local day is at most a day
    from its UTC day, and the aggregation that lists it runs within a day of it."""
    return utc_day - timedelta(days=1) <= day <= utc_day + timedelta(days=2)


def _found(
    row: tuple[Any, ...],
    details: str,
    expected: int | None = None,
    actual: int | None = None,
    *,
    store_zreport_id: str | None = None,
) -> Finding:
    return Finding(
        "store_membership",
        Severity.ERROR,
        details,
        registerid=str(row[0]),
        store_id=store_of(row[3]),
        day=business_day(row[4], row[2]),
        zreportid=int(row[1]),
        expected=None if expected is None else Decimal(expected),
        actual=None if actual is None else Decimal(actual),
        store_zreport_id=store_zreport_id,
    )


def _unlisted(row: tuple[Any, ...], spans: dict[str, tuple[date, date]]) -> Iterator[Finding]:
    created = to_utc(row[2])
    span = spans.get(store_of(row[3]))
    if created is None or span is None:
        return
    day, one = created.date(), timedelta(days=1)
    if span[0] <= day - one and day + 2 * one <= span[1]:
        yield _found(
            row,
            f"in no store z-report, although store {store_of(row[3])} has store z-reports "
            f"from {span[0]} to {span[1]}",
            1,
            0,
        )
