"""What a check finds: one `Finding` per register (or store) and day, and their table.

A finding says what was expected and what the warehouse holds, by one rule for every check:
`actual` is the figure the report under check states, `expected` what the check derives from
the source it is checked against (its lines, its journal, its previous report, the POS
z-reports a store z-report lists); `difference` is actual minus expected, so a report's figure
10.00 too high is +10.00 in every check that judges that report. Money and counts are Decimal
(a count is a whole Decimal), never float.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import IntEnum
from typing import Any

from sitoo_sync.normalize.tables import Table, day, integer, money, text, timestamp

NO_STORE = "NO_STORE"
CENT = Decimal("0.01")


class Severity(IntEnum):
    """How bad a finding is; findings are listed most severe first."""

    WARNING = 1
    ERROR = 2
    CRITICAL = 3

    @property
    def label(self) -> str:
        """The lower-case name used in output, the table and the metric."""
        return self.name.lower()


@dataclass(frozen=True)
class Finding:
    """One anomaly: which check, where (register, store, day), expected against actual."""

    check: str
    severity: Severity
    details: str
    registerid: str | None = None
    store_id: str | None = None
    day: date | None = None
    zreportid: int | None = None
    expected: Decimal | None = None
    actual: Decimal | None = None
    store_zreport_id: str | None = None  # the store z-report concerned, if any

    @property
    def difference(self) -> Decimal | None:
        """actual - expected, when both are known."""
        if self.expected is None or self.actual is None:
            return None
        return self.actual - self.expected

    def rank(self) -> tuple[Any, ...]:
        """Sort key: most severe first, then the largest difference, then newest day."""
        diff = self.difference
        return (
            -self.severity,
            -abs(diff) if diff is not None else Decimal(0),
            -(self.day.toordinal() if self.day else 0),
            self.check,
            self.store_id or "",
            self.registerid or "",
            self.zreportid or 0,
            self.store_zreport_id or "",
        )

    def as_json(self) -> dict[str, Any]:
        """The finding as JSON-ready values (Decimal as exact strings)."""
        diff = self.difference
        return {
            "check": self.check,
            "severity": self.severity.label,
            "registerid": self.registerid,
            "store_id": self.store_id,
            "day": self.day.isoformat() if self.day else None,
            "zreportid": self.zreportid,
            "store_zreport_id": self.store_zreport_id,
            "expected": None if self.expected is None else str(self.expected),
            "actual": None if self.actual is None else str(self.actual),
            "difference": None if diff is None else str(diff),
            "details": self.details,
        }


VERIFY_FINDINGS = Table(
    name="verify_findings",
    description=(
        "What `sitoo-sync verify` found, one row per finding, every run kept. Money figures "
        "(expected, actual, difference) are in the currency of the report concerned "
        "(pos_z_reports.currencycode, store_z_reports.currency_code)."
    ),
    columns=(
        text("run_id", "The verify run's ID; one per `sitoo-sync verify`.", nullable=False),
        integer("position", "The finding's rank in its run, 1 = most severe.", nullable=False),
        timestamp("run_at", "When the run started (UTC).", nullable=False),
        text(
            "check_name", "The check that found it (see the README's checks table).", nullable=False
        ),
        text("severity", "warning, error or critical.", nullable=False),
        text("registerid", "The register concerned, if any."),
        text("store_id", "The store concerned, if any ('NO_STORE' for registers without one)."),
        day(
            "day",
            "The business day concerned, if any: a POS z-report's business_date (its local "
            "day), a store z-report's day_created; for silence, the local day of the data.",
        ),
        integer("zreportid", "The POS z-report concerned, if any."),
        text(
            "store_zreport_id",
            "The store z-report concerned, if any (store_z_reports.store_zreport_id): set by "
            "store_figures, store_membership, and vat_groups, product_groups and payments when "
            "they judge a store z-report. Added in place to an older verify_findings.",
        ),
        money(
            "expected",
            "What the check derives from the source the report is checked against (its lines, "
            "its journal, its previous z-report, the POS z-reports a store z-report lists); "
            "money in the report's currency, or a count.",
        ),
        money(
            "actual",
            "The figure the report under check states, in the same unit as expected (for "
            "cash_difference the counted cash, for silence the days silent).",
        ),
        money(
            "difference",
            "actual - expected: positive when the report states more than its source gives.",
        ),
        text("details", "The finding in words."),
    ),
    key=("run_id", "position"),
)


def finding_rows(run_id: str, run_at: datetime, findings: list[Finding]) -> list[tuple[Any, ...]]:
    """Rows of `verify_findings` for one run, in rank order."""
    at = run_at.astimezone(UTC)
    return [
        (
            run_id,
            i,
            at,
            f.check,
            f.severity.label,
            f.registerid,
            f.store_id,
            f.day,
            f.zreportid,
            f.store_zreport_id,
            _money(f.expected),
            _money(f.actual),
            _money(f.difference),
            f.details,
        )
        for i, f in enumerate(findings, start=1)
    ]


def _money(value: Decimal | None) -> Decimal | None:
    """A figure in the table's DECIMAL(18,2) (counts and days are whole, so exact)."""
    return None if value is None else value.quantize(CENT)


def store_of(store_id: str | None) -> str:
    """The store a z-report belongs to: its store_id, or NO_STORE as Sitoo aggregates it."""
    return store_id if store_id else NO_STORE
