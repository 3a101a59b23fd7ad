"""The knobs of a simulated account: `SimConfig` (the POS world and its journals) and, within
it, the REST v2 world's (rest_v2/config.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from sitoo_sync.simulator.rest_v2.config import RestConfig


@dataclass
class SimConfig:
    """Knobs of the generated world."""

    seed: int = 1
    days: int = 30
    registers_per_store: int = 2
    malformed_every: int = 0  # every Nth report is corrupted; 0 = none
    max_reports: int | None = None  # stop the history at this many reports
    unknown_field_every: int = 7  # every Nth report carries a field the docs do not name
    cash_differences: bool = True  # some closings count more or less cash than expected
    # Anomalies for `sitoo-sync verify` to find, each injected once, deterministically:
    inject_missing_report: bool = False  # register 0's z-report 3 is never uploaded
    inject_grand_total_jump: bool = False  # register 0's grand totals jump 100.00 at report 5
    inject_store_mismatch: bool = False  # store 200's report of register 0's day 2: +1.00 sales
    inject_missing_receipt: bool = False  # register 0's journal lacks report 4's first receipt
    silent_register_days: int = 0  # register 1 uploads no z-report for its last N days
    dark_register_days: int = 0  # register 2 sends nothing at all for its last N days
    # Journals at scale (lazy_journal.py): N entries over the registers, made per page, in
    # place of the days of their z-reports; 0 = the journals follow the z-reports.
    lazy_journal_size: int = 0
    journal_day_entries: int = 200  # entries in a register's day, on average (lazy journals)
    journal_malformed_every: int = 0  # every Nth entry of a register is malformed (lazy journals)
    # every Nth entry of a register, when a receipt, carries a field the docs do not name in
    # its data, as the live API's receipts may (lazy journals)
    journal_unknown_field_every: int = 0
    # The order of the `/pos-z-reports` items that share one `dateadded` second, which the
    # contract leaves unspecified: "shuffled" afresh on every request, or "added" (the order
    # they arrived in, the same on every request: a report added last to a crowded second
    # is never on its first page)
    same_second_order: Literal["shuffled", "added"] = "shuffled"
    now: int = field(default_factory=lambda: int(datetime.now(UTC).timestamp()))
    rest: RestConfig = field(default_factory=RestConfig)  # the REST v2 world (rest_v2/)
