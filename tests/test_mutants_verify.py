"""Verify checks a hand-made mutation showed the suite did not pin down."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from sitoo_sync.commit import load_window
from sitoo_sync.normalize.pos_z_reports import normalize_window
from sitoo_sync.streams.pos_z_reports import POS_Z_REPORTS
from sitoo_sync.verify.findings import Severity
from sitoo_sync.verify.registers import cash_differences, grand_totals
from sitoo_sync.verify.source import Scope, Source
from sitoo_sync.warehouse import open_warehouse
from sitoo_sync.warehouse.base import SYSTEM_TABLES
from tests.support import vendor_example


def test_a_grand_refund_total_that_does_not_continue_is_found_when_sales_do(
    tmp_path: Path,
) -> None:
    """grand_total holds refunds to the rule as it does sales: a z-report whose grand
    refund total jumps while its grand sales total continues correctly is a finding."""
    second = {**vendor_example(), "moneysummaryrefund": "0.00", "moneygrandtotalrefund": "7.00"}
    first = {
        **vendor_example(),
        "zreportid": 1,
        "datecreated": second["datecreated"] - 86_400,
        "moneysummarysales": "31343.81",
        "moneygrandtotalsales": "31343.81",
        "moneysummaryrefund": "5.00",
        "moneygrandtotalrefund": "5.00",
    }
    warehouse = open_warehouse(f"duckdb:///{tmp_path / 'w.duckdb'}")
    try:
        warehouse.ensure_schema([*SYSTEM_TABLES, *POS_Z_REPORTS.tables])
        window = normalize_window([first, second])
        assert window.rejects == []
        load_window(warehouse, POS_Z_REPORTS, "p", window, "1")
        with warehouse.transaction():
            findings = list(grand_totals(Source(warehouse), Scope()))
    finally:
        warehouse.close()
    assert [(f.zreportid, f.expected, f.actual) for f in findings] == [
        (2, Decimal("5.00"), Decimal("7.00"))
    ]


def test_a_cash_difference_of_exactly_the_large_amount_is_an_error(tmp_path: Path) -> None:
    """A drawer 100.00 over is an error (the rule says "from 100.00"), 99.99 short a
    warning."""
    expected = Decimal("49887.86")
    reports = [
        {
            **vendor_example(),
            "zreportid": zreportid,
            "moneycash_counted": str(expected + diff),
            "moneycash_diff": str(diff),
        }
        for zreportid, diff in ((1, Decimal("100.00")), (2, Decimal("-99.99")))
    ]
    warehouse = open_warehouse(f"duckdb:///{tmp_path / 'w.duckdb'}")
    try:
        warehouse.ensure_schema([*SYSTEM_TABLES, *POS_Z_REPORTS.tables])
        load_window(warehouse, POS_Z_REPORTS, "p", normalize_window(reports), "1")
        with warehouse.transaction():
            findings = list(cash_differences(Source(warehouse), Scope()))
    finally:
        warehouse.close()
    severities = sorted((f.zreportid, f.severity) for f in findings)
    assert severities == [(1, Severity.ERROR), (2, Severity.WARNING)]
