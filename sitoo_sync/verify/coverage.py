"""What a verify run had to judge: the z-reports in its scope.

Every check can pass because nothing broke a rule, or because there was nothing to judge (a
`--since` past the newest closing, a warehouse that syncs no z-reports). The summary says
which, so "14 passed" never stands for an empty warehouse.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from sitoo_sync.progress import plural
from sitoo_sync.verify.source import Scope, Source, to_day
from sitoo_sync.verify.stores import store_where

POS = "pos_z_reports"
STORE = "store_z_reports"


@dataclass(frozen=True)
class Coverage:
    """The POS z-reports in scope (of how many registers, over which business days) and
    the store z-reports in scope."""

    pos_reports: int = 0
    registers: int = 0
    first_day: date | None = None
    last_day: date | None = None
    store_reports: int = 0

    @property
    def empty(self) -> bool:
        """True when the scope holds no z-report of either kind."""
        return not self.pos_reports and not self.store_reports

    def as_json(self) -> dict[str, Any]:
        """The coverage as JSON values."""
        return {
            "pos_z_reports": self.pos_reports,
            "registers": self.registers,
            "first_day": self.first_day.isoformat() if self.first_day else None,
            "last_day": self.last_day.isoformat() if self.last_day else None,
            "store_z_reports": self.store_reports,
        }


def coverage(source: Source, scope: Scope) -> Coverage:
    """Count what `scope` holds in the warehouse (a table not there yet holds nothing)."""
    pos = (0, 0, None, None)
    if source.has(POS):
        sql = (
            "SELECT COUNT(*), COUNT(DISTINCT z.registerid), MIN(z.business_date), "
            f"MAX(z.business_date) FROM {{{POS}}} z WHERE {scope.where('z')}"
        )
        pos = next(iter(list(source.rows(sql, scope.params()))))
    stores = 0
    if source.has(STORE):
        sql = f"SELECT COUNT(*) FROM {{{STORE}}} s WHERE {store_where(scope)}"
        stores = int(next(iter(list(source.rows(sql, scope.params()))))[0] or 0)
    return Coverage(int(pos[0] or 0), int(pos[1] or 0), to_day(pos[2]), to_day(pos[3]), stores)


def scope_label(scope: Scope) -> str:
    """The scope in words, `store 200 from 2026-11-01 on`; empty for the whole warehouse."""
    parts = [f"store {scope.store}"] if scope.store else []
    if scope.since:
        parts.append(f"from {scope.since.isoformat()} on")
    return " ".join(parts)


def coverage_line(cover: Coverage, scope: Scope) -> str:
    """One line saying what the checks judged, or that there was nothing to judge."""
    label = scope_label(scope)
    if cover.empty:
        of = f" of {label}" if scope.store else f" {label}" if label else ""
        return (
            f"checked: nothing, no z-report in the warehouse{of}; "
            "the checks passed for want of anything to judge"
        )
    pos = "no POS z-reports"
    if cover.pos_reports:
        pos = (
            f"{plural(cover.pos_reports, 'POS z-report')} of {plural(cover.registers, 'register')}"
        )
        if cover.first_day and cover.last_day:
            pos += f" (business days {cover.first_day} to {cover.last_day})"
    stores = plural(cover.store_reports, "store z-report")
    return f"checked{', ' + label if label else ''}: {pos} and {stores}"
