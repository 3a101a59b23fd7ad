"""Show a verify run: a summary and the findings as text or JSON, and a metrics file.

The metrics file is in Prometheus' text format for node_exporter's textfile collector:
verify is a batch command (cron, a timer), not a server, and a file that node_exporter
serves is how a batch job's figures reach Prometheus without another service to run.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, write_to_textfile

from sitoo_sync.verify.coverage import coverage_line
from sitoo_sync.verify.findings import Finding, Severity
from sitoo_sync.verify.run import VerifyRun


def summary_lines(run: VerifyRun) -> Iterator[str]:
    """Checks run, passed, skipped, what they judged, and findings per check and severity."""
    ran = [r for r in run.results if r.status != "skipped"]
    passed = sum(r.status == "passed" for r in ran)
    yield f"verify: {len(ran)} checks run, {passed} passed, {len(ran) - passed} with findings"
    yield f"  {coverage_line(run.coverage, run.scope)}"
    for result in run.results:
        if result.status == "skipped":
            yield f"  skipped {result.check.name}: {result.reason}"
    if not run.findings:
        yield "findings: none"
        return
    by_severity = Counter(f.severity for f in run.findings)
    parts = ", ".join(f"{by_severity[s]} {s.label}" for s in sorted(by_severity, reverse=True))
    yield f"findings: {len(run.findings)} ({parts})"
    for result in sorted(ran, key=lambda r: (-r.findings, r.check.name)):
        if result.findings:
            yield f"  {result.check.name:<20} {result.findings:>7}"


def finding_line(f: Finding) -> str:
    """One finding on one line: severity, check, where, figures, what."""
    where = " ".join(
        part
        for part in (
            f.day.isoformat() if f.day else "",
            f"store {f.store_id}" if f.store_id else "",
            f"register {f.registerid}" if f.registerid else "",
            f"z-report {f.zreportid}" if f.zreportid is not None else "",
            f"store z-report {f.store_zreport_id}" if f.store_zreport_id else "",
        )
        if part
    )
    figures = "".join(
        f" {name} {value}"
        for name, value in (("expected", f.expected), ("actual", f.actual))
        if value is not None
    )
    if f.difference is not None:
        figures += f" ({f.difference:+})"
    return f"{f.severity.label.upper():<8} {f.check:<18} {where}{figures}: {f.details}"


def print_text(run: VerifyRun, *, limit: int | None = None) -> Iterator[str]:
    """The summary, then the findings most severe first (at most `limit`)."""
    yield from summary_lines(run)
    shown = run.findings if limit is None else run.findings[:limit]
    if shown:
        yield ""
    for finding in shown:
        yield finding_line(finding)
    if len(shown) < len(run.findings):
        yield f"... and {len(run.findings) - len(shown)} more (all in verify_findings)"


def as_json(run: VerifyRun) -> str:
    """The whole run as JSON: scope, every check with its rule and outcome, every finding."""
    payload: dict[str, Any] = {
        "run_id": run.run_id,
        "run_at": run.run_at.isoformat(),
        "since": run.scope.since.isoformat() if run.scope.since else None,
        "store": run.scope.store,
        "seconds": round(run.seconds, 3),
        "coverage": run.coverage.as_json(),
        "checks": [
            {
                "name": r.check.name,
                "severity": r.check.severity.label,
                "rule": r.check.rule,
                "status": r.status,
                "findings": r.findings,
                "reason": r.reason or None,
            }
            for r in run.results
        ],
        "findings": [f.as_json() for f in run.findings],
    }
    return json.dumps(payload, indent=2)


def write_metrics(run: VerifyRun, path: Path) -> None:
    """`sitoo_verify_findings{check,severity}`, `sitoo_verify_z_reports_checked{kind}` and
    the run's time, atomically to `path`.

    Every check that ran gets a sample at its own severity, zero when clean, so an alert on
    `> 0` also resolves; a skipped check has none.
    """
    registry = CollectorRegistry()
    findings = Gauge(
        "sitoo_verify_findings",
        "Findings of the last sitoo-sync verify run, per check and severity",
        ("check", "severity"),
        registry=registry,
    )
    counts = Counter((f.check, f.severity) for f in run.findings)
    for result in run.results:
        if result.status != "skipped":
            findings.labels(result.check.name, result.check.severity.label).set(0)
    for (check, severity), n in counts.items():
        findings.labels(check, Severity(severity).label).set(n)
    checked = Gauge(
        "sitoo_verify_z_reports_checked",
        "Z-reports in the scope of the last sitoo-sync verify run (0: it judged nothing)",
        ("kind",),
        registry=registry,
    )
    checked.labels("pos").set(run.coverage.pos_reports)
    checked.labels("store").set(run.coverage.store_reports)
    last = Gauge(
        "sitoo_verify_last_run_timestamp_seconds",
        "When the last sitoo-sync verify run finished (Unix time)",
        registry=registry,
    )
    last.set(run.run_at.timestamp())
    write_to_textfile(str(path), registry)
