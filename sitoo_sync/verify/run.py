"""Run the checks over one warehouse, rank the findings, write them to `verify_findings`."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sitoo_sync.errors import ConfigError
from sitoo_sync.log import get_logger
from sitoo_sync.normalize.columns import rows_to_arrow
from sitoo_sync.verify.checks import CHECKS, Check
from sitoo_sync.verify.coverage import Coverage, coverage
from sitoo_sync.verify.findings import VERIFY_FINDINGS, Finding, Severity, finding_rows
from sitoo_sync.verify.source import Scope, Source
from sitoo_sync.warehouse.base import Warehouse
from sitoo_sync.warehouse.retry import retried

log = get_logger(__name__)

__all__ = ["CheckResult", "Scope", "VerifyRun", "run_verify"]


@dataclass(frozen=True)
class CheckResult:
    """How one check went: passed, failed (with findings) or skipped (and why)."""

    check: Check
    status: str
    findings: int = 0
    reason: str = ""
    seconds: float = 0.0


@dataclass
class VerifyRun:
    """One run: its id and time, what each check did, every finding most severe first."""

    run_id: str
    run_at: datetime
    scope: Scope
    results: list[CheckResult] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    seconds: float = 0.0
    coverage: Coverage = field(default_factory=Coverage)

    @property
    def clean(self) -> bool:
        """True when no check found anything."""
        return not self.findings

    def fails(self, at: Severity = Severity.WARNING) -> bool:
        """True when a finding is at least as severe as `at` (`verify --fail-on`)."""
        return any(Severity(f.severity) >= at for f in self.findings)


def _skip_reason(check: Check, source: Source) -> str:
    if check.find is None:
        return check.unavailable
    missing = [t for t in check.tables if not source.has(t)]
    return f"no table {', '.join(missing)} in the warehouse yet" if missing else ""


def run_verify(
    warehouse: Warehouse,
    scope: Scope,
    *,
    write: bool = True,
    now: datetime | None = None,
) -> VerifyRun:
    """Run every check over `warehouse` (reads only) and, with `write`, store the findings."""
    started = time.perf_counter()
    run = VerifyRun(uuid.uuid4().hex, now or datetime.now(UTC), scope)

    def check_all() -> tuple[list[CheckResult], list[Finding], Coverage]:
        results: list[CheckResult] = []
        findings: list[Finding] = []
        source = Source(warehouse)
        if scope.store and not source.knows_store(scope.store):
            raise ConfigError(f"--store {scope.store}: no z-report of that store in the warehouse")
        cover = coverage(source, scope)
        for check in CHECKS:
            reason = _skip_reason(check, source)
            if reason or check.find is None:
                results.append(CheckResult(check, "skipped", reason=reason))
                continue
            began = time.perf_counter()
            found = list(check.find(source, scope))
            findings.extend(found)
            results.append(
                CheckResult(
                    check,
                    "failed" if found else "passed",
                    len(found),
                    seconds=time.perf_counter() - began,
                )
            )
        return results, findings, cover

    # One snapshot for every check, read again whole if DuckDB ran short of memory (and
    # raised its limit) or the read lost a conflict (retry.py).
    run.results, run.findings, run.coverage = retried(warehouse, check_all, what="verify checks")
    run.findings.sort(key=Finding.rank)
    if write:
        warehouse.ensure_schema([VERIFY_FINDINGS])
        data = rows_to_arrow(VERIFY_FINDINGS, finding_rows(run.run_id, run.run_at, run.findings))
        retried(
            warehouse,
            lambda: warehouse.insert(VERIFY_FINDINGS, data),
            what="verify findings",
            run_id=run.run_id,
        )
    run.seconds = time.perf_counter() - started
    log.info(
        "verify_finished",
        run_id=run.run_id,
        checks=sum(r.status != "skipped" for r in run.results),
        findings=len(run.findings),
        pos_z_reports=run.coverage.pos_reports,
        store_z_reports=run.coverage.store_reports,
        seconds=round(run.seconds, 3),
    )
    return run
