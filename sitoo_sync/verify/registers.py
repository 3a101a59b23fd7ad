"""Checks of each register's own z-reports: numbering, grand totals, arithmetic, cash.

Each function reads what it needs through `Source` and yields findings. A z-report's day is
its business day: `business_date`, the local day it closed (as in the README's queries).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sitoo_sync.verify.findings import Finding, Severity, store_of
from sitoo_sync.verify.source import Scope, Source, business_day, to_decimal, to_utc

#: A cash difference at least this large (in the report's currency) is an error.
LARGE_CASH_DIFFERENCE = Decimal("100.00")

_SEQUENCE_COLUMNS = (
    "registerid, zreportid, datecreated, store_id, business_date, moneysummarysales, "
    "moneysummaryrefund, "
    "moneygrandtotalsales, moneygrandtotalrefund"
)


@dataclass(frozen=True)
class Report:
    registerid: str
    zreportid: int
    created: datetime | None
    store: str
    day: date | None  # the business day
    sales: Decimal | None
    refund: Decimal | None
    grand_sales: Decimal | None
    grand_refund: Decimal | None

    @classmethod
    def of(cls, row: tuple[Any, ...]) -> Report:
        return cls(
            str(row[0]),
            int(row[1]),
            to_utc(row[2]),
            store_of(row[3]),
            business_day(row[4], row[2]),
            *(to_decimal(v) for v in row[5:9]),
        )

    @classmethod
    def head(cls, row: tuple[Any, ...]) -> Report:
        """Where a row is (registerid, zreportid, datecreated, store_id, business_date),
        without figures."""
        return cls.of((*row[:5], None, None, None, None))

    def finding(self, check: str, severity: Severity, details: str, **kw: Any) -> Finding:
        return Finding(
            check,
            severity,
            details,
            registerid=self.registerid,
            store_id=self.store,
            day=self.day,
            zreportid=self.zreportid,
            **kw,
        )


def _sequence(source: Source, scope: Scope, suspect: str) -> Iterator[tuple[Report | None, Report]]:
    """(previous, report) per register where `suspect` holds of `c` (its `prev_*` columns).

    The previous report comes from a window function over the whole table, so a report
    just after `since` is still compared with the one before it. Only suspects leave the
    database; Python then applies the rule exactly, in Decimal.
    """
    over = "OVER (PARTITION BY p.registerid ORDER BY p.zreportid)"
    lagged = ", ".join(
        f"LAG(p.{c}) {over} AS prev_{c}"
        for c in ("zreportid", "datecreated", "moneygrandtotalsales", "moneygrandtotalrefund")
    )
    columns = ", ".join(f"c.{c.strip()}" for c in _SEQUENCE_COLUMNS.split(","))
    sql = (
        f"SELECT {columns}, c.prev_zreportid, c.prev_datecreated, c.prev_moneygrandtotalsales, "
        f"c.prev_moneygrandtotalrefund FROM (SELECT p.*, {lagged} FROM {{pos_z_reports}} p) c "
        f"WHERE {scope.where('c')} AND ({suspect})"
    )
    for row in source.rows(sql, scope.params()):
        report = Report.of(row)
        prev = None
        if row[9] is not None:
            prev = Report(
                report.registerid,
                int(row[9]),
                to_utc(row[10]),
                report.store,
                None,
                None,
                None,
                to_decimal(row[11]),
                to_decimal(row[12]),
            )
        yield prev, report


def _json(raw: Any) -> dict[str, Any]:
    """A reject's raw record as a dict (targets return JSON as text or as objects)."""
    if isinstance(raw, (str, bytes)):
        try:
            raw = json.loads(raw)
        except ValueError:
            return {}
    return raw if isinstance(raw, dict) else {}


def rejected_reports(source: Source) -> set[tuple[str, int]]:
    """(registerid, zreportid) of every rejected POS z-report whose register can be told.

    A reject keyed `registerid/zreportid` names both. One without a registerid
    (`registerid=<missing>/zreportid=18`) is matched by the register's other identifiers in
    its raw record, `manufacturerid` and `registerkey`, against the z-reports the warehouse
    holds; only when they point at one register together (see `_by_identifiers`).
    """
    if not source.has("rejects"):
        return set()
    out: set[tuple[str, int]] = set()
    unnamed: list[tuple[dict[str, Any], int]] = []
    for key, raw in list(
        source.rows(
            "SELECT record_key, raw FROM {rejects} WHERE stream = :stream",
            {"stream": "pos_z_reports"},
        )
    ):
        register, _, number = str(key or "").rpartition("/")
        if number.isdigit() and register and "=" not in register:
            out.add((register, int(number)))
        record = _json(raw)
        zreportid, registerid = record.get("zreportid"), record.get("registerid")
        if not isinstance(zreportid, int) or isinstance(zreportid, bool):
            continue
        if isinstance(registerid, str) and registerid:
            out.add((registerid, zreportid))
        else:
            unnamed.append((record, zreportid))
    if unnamed:
        out |= _by_identifiers(source, unnamed)
    return out


_IDENTIFIERS = ("manufacturerid", "registerkey")


def _by_identifiers(
    source: Source, unnamed: list[tuple[dict[str, Any], int]]
) -> set[tuple[str, int]]:
    """(registerid, zreportid) of rejects without a registerid, by their other identifiers.

    The register is the one every identifier that some z-report carries points at: the
    intersection of the registers each names, so a registerkey two registers share does not
    block a manufacturerid unique to one. An identifier no z-report carries says nothing;
    none, or more than one register left, and the reject is not matched.
    """
    owners: dict[tuple[str, str], set[str]] = defaultdict(set)
    for row in source.rows(
        f"SELECT DISTINCT registerid, {', '.join(_IDENTIFIERS)} FROM {{pos_z_reports}}"
    ):
        for field, value in zip(_IDENTIFIERS, row[1:], strict=True):
            if value:
                owners[field, str(value)].add(str(row[0]))
    out: set[tuple[str, int]] = set()
    for record, zreportid in unnamed:
        found: set[str] | None = None
        for field in _IDENTIFIERS:
            named = owners.get((field, str(record[field]))) if record.get(field) else None
            if named:
                found = set(named) if found is None else found & named
        if found is not None and len(found) == 1:
            out.add((found.pop(), zreportid))
    return out


def numbering_gaps(source: Source, scope: Scope) -> Iterator[Finding]:
    """A zreportid more than one past the previous one: closings missing between them."""
    rejected = rejected_reports(source)
    for prev, report in _sequence(source, scope, "c.zreportid > c.prev_zreportid + 1"):
        if prev is None or report.zreportid <= prev.zreportid + 1:
            continue
        missing = range(prev.zreportid + 1, report.zreportid)
        lost = [z for z in missing if (report.registerid, z) in rejected]
        names = f"{missing[0]}" if len(missing) == 1 else f"{missing[0]}..{missing[-1]}"
        if len(lost) == len(missing):
            why = ": rejected at load (see rejects)"
        elif lost:
            listed = ", ".join(map(str, lost))
            why = f" (not uploaded, or lost; rejected at load: {listed}, see rejects)"
        else:
            why = " (not uploaded, or lost)"
        yield report.finding(
            "numbering_gap",
            Severity.ERROR,
            f"z-report {names} missing before {report.zreportid}{why}",
            expected=Decimal(prev.zreportid + 1),
            actual=Decimal(report.zreportid),
        )


def numbering_order(source: Source, scope: Scope) -> Iterator[Finding]:
    """A zreportid created before the one numbered below it: a renumbered register."""
    for prev, report in _sequence(source, scope, "c.datecreated < c.prev_datecreated"):
        if prev is None or prev.created is None or report.created is None:
            continue
        if report.created < prev.created:
            yield report.finding(
                "numbering_conflict",
                Severity.CRITICAL,
                f"z-report {report.zreportid} was created {report.created:%Y-%m-%d %H:%M}Z, "
                f"before z-report {prev.zreportid} ({prev.created:%Y-%m-%d %H:%M}Z): numbers "
                "repeat or run against time",
            )


def grand_totals(source: Source, scope: Scope) -> Iterator[Finding]:
    """Grand totals run on: previous + this report's summary sales (refunds)."""
    sales = "{cents(c.moneygrandtotalsales)}"
    refund = "{cents(c.moneygrandtotalrefund)}"
    grows = "{cents(c.moneysummarysales)}"
    shrinks = "{cents(c.moneysummaryrefund)}"
    suspect = (
        f"(c.zreportid = c.prev_zreportid + 1 AND ({sales} <> "
        f"{{cents(c.prev_moneygrandtotalsales)}} + {grows} OR {refund} <> "
        f"{{cents(c.prev_moneygrandtotalrefund)}} + {shrinks})) OR (c.prev_zreportid IS NULL "
        f"AND c.zreportid = 1 AND ({sales} <> {grows} OR {refund} <> {shrinks}))"
    )
    for prev, report in _sequence(source, scope, suspect):
        if prev is not None and report.zreportid == prev.zreportid + 1:
            base = (prev.grand_sales, prev.grand_refund)
            what = f"z-report {prev.zreportid}'s grand total"
        elif prev is None and report.zreportid == 1:
            base = (Decimal(0), Decimal(0))
            what = "zero (the register's first z-report)"
        else:
            continue
        pairs = (
            ("moneygrandtotalsales", base[0], report.sales, report.grand_sales),
            ("moneygrandtotalrefund", base[1], report.refund, report.grand_refund),
        )
        for field, start, delta, actual in pairs:
            if start is None or delta is None or actual is None:
                continue
            expected = start + delta
            if actual != expected:
                yield report.finding(
                    "grand_total",
                    Severity.CRITICAL,
                    f"{field} does not continue from {what} plus this report's "
                    f"{'moneysummarysales' if 'sales' in field else 'moneysummaryrefund'}",
                    expected=expected,
                    actual=actual,
                )
                break


_ARITHMETIC = (
    # (field, its operands with their signs), per the vendor's field meanings
    ("moneysummarysubtotal", (("moneysummarysales", 1), ("moneysummaryrefund", -1))),
    (
        "moneysummarytotal",
        (("moneysummarysubtotal", 1), ("moneysummarysalestax", 1), ("moneysummaryroundoff", 1)),
    ),
    ("moneygrandtotalnet", (("moneygrandtotalsales", 1), ("moneygrandtotalrefund", -1))),
    ("moneycash_diff", (("moneycash_counted", 1), ("moneycash_expected", -1))),
    (
        "moneycash_expected",
        (
            ("moneycash_in", 1),
            ("moneycash_salesrefunds", 1),
            ("moneycash_petty", 1),
            ("moneycash_bank", 1),
        ),
    ),
)
_HEAD = "registerid, zreportid, datecreated, store_id, business_date"


def _report_rows(
    source: Source, scope: Scope, columns: list[str], suspect: str
) -> Iterator[tuple[Report, dict[str, Decimal | None]]]:
    for row in source.rows(
        f"SELECT {_HEAD}, {', '.join(columns)} FROM {{pos_z_reports}} p "
        f"WHERE {scope.where('p')} AND ({suspect})",
        scope.params(),
    ):
        report = Report.head(row)
        yield report, {c: to_decimal(v) for c, v in zip(columns, row[5:], strict=True)}


def arithmetic(
    source: Source, scope: Scope, fields: tuple[str, ...], check: str
) -> Iterator[Finding]:
    """Each documented equation of `fields` holds on every report."""
    rules = [r for r in _ARITHMETIC if r[0] in fields]
    needed = sorted({f for name, ops in rules for f in (name, *(o for o, _ in ops))})
    suspect = " OR ".join(
        f"{{cents(p.{name})}} <> 0"
        + "".join(f" {'+' if sign > 0 else '-'} {{cents(p.{o})}}" for o, sign in ops)
        for name, ops in rules
    )
    for report, values in _report_rows(source, scope, needed, suspect):
        for name, ops in rules:
            actual = values[name]
            terms = [values[o] for o, _ in ops]
            if actual is None or any(t is None for t in terms):
                continue
            expected = sum(
                (t * sign for t, (_, sign) in zip(terms, ops, strict=True) if t is not None),
                Decimal(0),
            )
            if actual != expected:
                formula = " ".join(
                    f"{'+' if sign > 0 else '-'} {o}" for o, sign in ops
                ).removeprefix("+ ")
                yield report.finding(
                    check,
                    Severity.ERROR,
                    f"{name} is not {formula}",
                    expected=expected,
                    actual=actual,
                )


def summary(source: Source, scope: Scope) -> Iterator[Finding]:
    """The summary and grand-total arithmetic the vendor documents."""
    yield from arithmetic(
        source,
        scope,
        ("moneysummarysubtotal", "moneysummarytotal", "moneygrandtotalnet"),
        "summary",
    )


def cash_drawer(source: Source, scope: Scope) -> Iterator[Finding]:
    """The drawer arithmetic: diff = counted - expected; expected = in + movements."""
    yield from arithmetic(source, scope, ("moneycash_diff", "moneycash_expected"), "cash_drawer")


def cash_differences(source: Source, scope: Scope) -> Iterator[Finding]:
    """Every closing whose counted cash differs from the expected, by size."""
    columns = ["moneycash_diff", "moneycash_expected", "moneycash_counted", "currencycode"]
    for row in source.rows(
        f"SELECT {_HEAD}, {', '.join(columns)} FROM {{pos_z_reports}} p "
        f"WHERE {scope.where('p')} AND {{cents(p.moneycash_diff)}} <> 0",
        scope.params(),
    ):
        report = Report.head(row)
        diff, expected, counted = (to_decimal(v) for v in row[5:8])
        if diff is None or diff == 0:
            continue
        large = abs(diff) >= LARGE_CASH_DIFFERENCE
        yield report.finding(
            "cash_difference",
            Severity.ERROR if large else Severity.WARNING,
            f"counted {counted} {row[8] or ''} against {expected} expected "
            f"({'over' if diff > 0 else 'short'} by {abs(diff)})",
            expected=expected,
            actual=counted,
        )
