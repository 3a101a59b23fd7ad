"""Every check, declared: its name, severity, the tables it reads and its rule in words.

The rule text is what the README and `--json` show; the function beside it is the rule in
code. A check whose tables are missing (a stream never synced) is skipped with the reason.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sitoo_sync.verify import journals, lines, orders, registers, silence, stores
from sitoo_sync.verify.findings import Finding, Severity
from sitoo_sync.verify.source import Scope, Source

Find = Callable[[Source, Scope], Iterable[Finding]]

POS = "pos_z_reports"
STORE = ("store_z_reports", "store_z_report_registers", POS)
JOURNAL = ("journal_entries", POS)


@dataclass(frozen=True)
class Check:
    """One check: a small declared unit with its rule text and severity."""

    name: str
    severity: Severity
    rule: str
    tables: tuple[str, ...]
    find: Find | None
    unavailable: str = ""  # why the check cannot run at all yet


CHECKS: tuple[Check, ...] = (
    Check(
        "numbering_gap",
        Severity.ERROR,
        "zreportid runs 1, 2, 3 ... per register: a number skipped between two z-reports in "
        "the warehouse is a missing closing (not uploaded, or lost); a rejected one is named, "
        "also when its reject lacks the registerid but names the register's manufacturerid or "
        "registerkey.",
        (POS,),
        registers.numbering_gaps,
    ),
    Check(
        "numbering_conflict",
        Severity.CRITICAL,
        "A higher zreportid is never created before a lower one of the same register: numbers "
        "that repeat or run against time mean a renumbered or reinstalled register.",
        (POS,),
        registers.numbering_order,
    ),
    Check(
        "grand_total",
        Severity.CRITICAL,
        "moneygrandtotalsales = the previous z-report's moneygrandtotalsales + this report's "
        "moneysummarysales, and moneygrandtotalrefund likewise with moneysummaryrefund; the "
        "first z-report of a register starts from zero. Practice-mode transactions are in "
        "numpractice/moneypractice only, never in sales or grand totals, so they do not "
        "enter the rule.",
        (POS,),
        registers.grand_totals,
    ),
    Check(
        "summary",
        Severity.ERROR,
        "moneysummarysubtotal = moneysummarysales - moneysummaryrefund; moneysummarytotal = "
        "moneysummarysubtotal + moneysummarysalestax + moneysummaryroundoff; "
        "moneygrandtotalnet = moneygrandtotalsales - moneygrandtotalrefund.",
        (POS,),
        registers.summary,
    ),
    Check(
        "vat_groups",
        Severity.ERROR,
        "A report's VAT groups of a section (sales, refund, not delivered) sum to that "
        "section's gross and net totals (moneysalestotal, moneysalestotalnet ...); POS and "
        "store z-reports alike.",
        (POS, "pos_z_report_vat_groups"),
        lines.vat_groups,
    ),
    Check(
        "product_groups",
        Severity.ERROR,
        "A report's product groups of a section sum to that section's gross and net totals, "
        "and their numtotal to its item count (numsalesitems ...); POS and store z-reports "
        "alike.",
        (POS, "pos_z_report_product_groups"),
        lines.product_groups,
    ),
    Check(
        "payments",
        Severity.ERROR,
        "A report's sales payments minus refund payments = moneysummarytotal (no payment "
        "lines pay 0.00); a payment's sub-payments sum to the payment; POS and store "
        "z-reports alike.",
        (POS, "pos_z_report_payments", "pos_z_report_subpayments"),
        lines.payments,
    ),
    Check(
        "cash_drawer",
        Severity.ERROR,
        "moneycash_diff = moneycash_counted - moneycash_expected; moneycash_expected = "
        "moneycash_in + moneycash_salesrefunds + moneycash_petty + moneycash_bank (the "
        "vendor's example report satisfies it).",
        (POS,),
        registers.cash_drawer,
    ),
    Check(
        "cash_difference",
        Severity.WARNING,
        "Every closing whose counted cash differs from the expected, largest first: a "
        f"warning, an error from {registers.LARGE_CASH_DIFFERENCE} (report currency).",
        (POS,),
        registers.cash_differences,
    ),
    Check(
        "store_figures",
        Severity.ERROR,
        "Each store z-report's figures (every total of `data`) equal the sums of the POS "
        "z-reports it lists.",
        STORE,
        stores.store_figures,
    ),
    Check(
        "store_membership",
        Severity.ERROR,
        "Every POS z-report is listed by exactly one store z-report, of its own store "
        "(NO_STORE without one), made after it closed and of a day from the day before its "
        "UTC day to two days after it; every listed POS z-report "
        "is in the warehouse (unless numbered below its register's first there and not "
        "rejected: history before the POS backfill began). An unlisted one is judged once "
        "its store has store z-reports from the day before it and two days after it.",
        STORE,
        stores.membership,
    ),
    Check(
        "journal_receipts",
        Severity.ERROR,
        "The register's journal receipts of an opening (from dateopened, or the previous "
        "closing, to datecreated) sum to the z-report's moneysalestotal (sales) and "
        "moneyrefundtotal (refunds, whatever their sign) and count to numreceipts; practice "
        "receipts count to numpractice and sum to moneypractice instead.",
        (*JOURNAL, "journal_receipts"),
        journals.receipts,
    ),
    Check(
        "journal_cash",
        Severity.ERROR,
        "The journal's cash events of an opening sum, type by type, to the z-report's cash "
        "figures: cash-start to moneycash_in, cash-petty to moneycash_petty, cash-bank to "
        "moneycash_bank, cash-counted to moneycash_counted, cash-bank-final to "
        "moneycash_bankfinal (same signs assumed).",
        (*JOURNAL, "journal_cash_events"),
        journals.cash_events,
    ),
    Check(
        "silence",
        Severity.WARNING,
        "A register with journal activity but no z-report for SITOO_VERIFY_SILENT_DAYS days "
        "(counted from its first receipt or cash event after its last z-report), "
        "or with no data at all for that long while its store's other registers have data "
        "(a listed register that never sent anything: since its store's first data).",
        (POS,),
        silence.silent_registers,
    ),
    Check(
        "orders",
        Severity.ERROR,
        "A POS sale is an order: a z-report's moneysalestotal is the sum of the register's "
        "closed POS orders (a registerid, orderstateid 10) made since its previous z-report "
        "(orderdate after that one's datecreated, up to this one's) whose items incl. VAT "
        "(moneytotal_net + moneytotal_vat) come to a positive amount, and its "
        "moneyrefundtotal that of those that come to a negative amount (as a positive "
        "amount); a z-report missing between two leaves its orders to the next, which names "
        "it. Judged from a register's second z-report in the warehouse on, once the "
        "register's loaded POS orders begin before its period and the loaded POS orders reach "
        "past its closing. With journals synced, every non-practice journal receipt has an "
        "order of its register with its receipt id (pos-receiptid), judged once the register "
        "has orders loaded from before it and after it.",
        ("orders", POS),
        orders.against_z_reports,
    ),
)
