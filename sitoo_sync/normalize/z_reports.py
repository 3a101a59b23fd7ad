"""What POS z-reports and store z-reports share: totals, child tables and lists.

Field names are the vendor's (z-reports.txt, cash-registers-v2.txt `poszreport*` objects).
The child tables are declared by a factory over the parent key, so the store z-report
stream declares the same children under its own key with no copy of the columns.
"""

from __future__ import annotations

from collections.abc import Mapping

from sitoo_sync.normalize.entity import ChildList, EntityNormalizer, Nested, Prepare
from sitoo_sync.normalize.records import EXTRA
from sitoo_sync.normalize.tables import (
    Column,
    Table,
    decimal,
    integer,
    json_column,
    money,
    text,
)

#: Totals in every z-report (PosZReport and StoreZReportData), in the vendor's order. Money is
#: in the report's currency; sales and refund figures are both positive (a refund's amount is
#: not negated): net takings are sales minus refunds.
TOTALS: tuple[Column, ...] = (
    money("moneysalestotal", "Total gross (incl. VAT) value of sales; report currency."),
    money("moneysalestotalnet", "Total net (excl. VAT) value of sales; report currency."),
    integer("numsales", "Number of sales (sales receipts)."),
    integer("numsalesitems", "Number of items in sales."),
    money(
        "moneysalesnotdeliveredtotal",
        "Gross value of sales not delivered at purchase (paid in advance); report currency.",
    ),
    money(
        "moneysalesnotdeliveredtotalnet",
        "Net value of sales not delivered at purchase; report currency.",
    ),
    integer("numsalesnotdelivered", "Number of sales where not all items were delivered."),
    integer("numsalesnotdelivereditems", "Number of items in sales not delivered."),
    money("moneyrefundtotal", "Total gross value of refunds, positive; report currency."),
    money("moneyrefundtotalnet", "Total net value of refunds, positive; report currency."),
    integer("numrefund", "Number of refunds (refund receipts)."),
    integer("numrefunditems", "Number of items in refunds."),
    money("moneyroundoff", "Total cash round-off; report currency."),
    money(
        "moneysalestaxinadvance",
        "Sales tax collected for items not delivered (where sales tax applies).",
    ),
    money("moneysummarysales", "Summary: total money value of sales; report currency."),
    money("moneysummaryrefund", "Summary: total money value of refunds, positive."),
    money("moneysummarysubtotal", "Summary sub total: moneysummarysales - moneysummaryrefund."),
    money("moneysummarysalestax", "Summary sub total of sales tax (US-style tax, not VAT)."),
    money("moneysummaryroundoff", "Summary total of round-off."),
    money(
        "moneysummarytotal",
        "The report's total: moneysummarysubtotal + moneysummarysalestax + "
        "moneysummaryroundoff; report currency.",
    ),
    money("moneycash_in", "Cash entered in the drawer when the register was opened."),
    money("moneycash_salesrefunds", "Cash from sales minus refunds since the register opened."),
    money("moneycash_petty", "Petty cash change since the register opened (signed)."),
    money("moneycash_bank", "Cash banked since the register opened (negative: taken out)."),
    money("moneycash_expected", "Calculated cash in the drawer before counting."),
    money("moneycash_counted", "Cash counted in the drawer at closing."),
    money(
        "moneycash_diff",
        "Counted less expected cash at closing: moneycash_counted - moneycash_expected, "
        "positive when the drawer held more than expected, negative when it was short "
        "(0.00: none).",
    ),
    money("moneycash_bankfinal", "Cash banked after counting, at closing."),
    money("moneycash_out", "Cash left in the drawer after closing."),
    money("moneydiscount", "Total discounts on sales, incl. VAT, positive; report currency."),
    integer("numsalestypeproduct", 'Number of items of type "product".'),
    integer("numsalestypeservice", 'Number of items of type "service".'),
    integer("numsalestypegiftcard", 'Number of items of type "gift card".'),
    integer("numreceipts", "Number of receipts (sales and refunds)."),
    integer("numopendrawer", "Times the drawer was opened outside normal transactions."),
    integer("numpractice", "Number of transactions made in practice (training) mode."),
    money("moneypractice", "Money value of practice-mode transactions (not in the sales totals)."),
)

SECTION = text(
    "section",
    "Which list of the report the row comes from: sales, refund or salesnotdelivered.",
    nullable=False,
)
POSITION = integer("position", "0-based position in the report's list.", nullable=False)
EXTRA_DOC = "Fields the vendor sent that no column declares, as JSON (nothing is dropped)."


#: Which list of the report feeds which child table (by kind), and under which section.
CHILD_LISTS: tuple[tuple[str, str, str | None], ...] = (
    ("vatgroupssales", "vat_groups", "sales"),
    ("vatgroupsrefund", "vat_groups", "refund"),
    ("vatgroupssalesnotdelivered", "vat_groups", "salesnotdelivered"),
    ("productgroupssales", "product_groups", "sales"),
    ("productgroupsrefund", "product_groups", "refund"),
    ("productgroupssalesnotdelivered", "product_groups", "salesnotdelivered"),
    ("paymentssales", "payments", "sales"),
    ("paymentsrefund", "payments", "refund"),
    ("discountssales", "discounts", "sales"),
    ("discountsrefund", "discounts", "refund"),
    ("discountssalesnotdelivered", "discounts", "salesnotdelivered"),
    ("salestaxessales", "sales_taxes", "sales"),
    ("salestaxesrefund", "sales_taxes", "refund"),
    ("currencyconversions", "currency_conversions", None),
)


def child_tables(
    prefix: str, parent_key: tuple[Column, ...], currency: Column, parent: str
) -> dict[str, Table]:
    """The z-report child tables under `parent_key`, named `{prefix}_{kind}`.

    Each money row carries its report's `currency` (copied from the parent), so a sum over a
    child table can group by currency without a join.
    """
    pk = tuple(c.name for c in parent_key)
    of = f"of the {parent}"

    def child(
        kind: str,
        body: tuple[Column, ...],
        description: str,
        *,
        sectioned: bool = True,
        extra: bool = True,
    ) -> Table:
        lead = (*parent_key, currency, SECTION, POSITION)
        if not sectioned:
            lead = (*parent_key, currency, POSITION)
        key = (*pk, "section", "position") if sectioned else (*pk, "position")
        return Table(
            name=f"{prefix}_{kind}",
            columns=(*lead, *body, *((json_column(EXTRA, EXTRA_DOC),) if extra else ())),
            key=key,
            parent_key=pk,
            description=f"{description} {of}; one row per list entry, parent key first.",
        )

    def captured(total: str) -> str:
        return f"Amount captured; {total} - moneycaptured is the reserved amount."

    advance = "Amount captured for items not delivered at purchase (payment in advance)."
    reserved = "The reserved (not yet captured) amount."
    payments = child(
        "payments",
        (
            text("name", "The payment's name (e.g. Cash, Card, Gift Card)."),
            money("moneytotal", "Total value of this payment type; positive also for refunds."),
            money("moneycaptured", captured("moneytotal")),
            money("moneyinadvance", advance),
            money("moneyreserved", reserved),
        ),
        "Payments per payment type (sections sales and refund)",
    )
    subpayments = Table(
        name=f"{prefix}_subpayments",
        columns=(
            *parent_key,
            currency,
            SECTION,
            integer(
                "payment_position",
                f"Position of the parent payment in {prefix}_payments.",
                nullable=False,
            ),
            POSITION,
            text("name", "The sub payment's name (e.g. a card brand)."),
            money("moneysubtotal", "Money value of the sub payment; positive."),
            money("moneycaptured", captured("moneysubtotal")),
            money("moneyinadvance", advance),
            money("moneyreserved", reserved),
            json_column(EXTRA, EXTRA_DOC),
        ),
        key=(*pk, "section", "payment_position", "position"),
        parent_key=pk,
        description=f"Sub payments within a payment type {of} (e.g. per card brand).",
    )
    gross, net, vat = (
        "Gross value (incl. VAT); positive also in the refund section.",
        "Net value (excl. VAT); positive.",
        "VAT amount; positive.",
    )
    vatvalue = "VAT rate in percent (25 = 25 %)."
    tables = [
        child(
            "vat_groups",
            (
                decimal("vatvalue", vatvalue),
                money("moneytotal", gross),
                money("moneytotalnet", net),
                money("moneytotalvat", vat),
            ),
            "Sales, refunds and sales not delivered grouped by VAT rate",
        ),
        child(
            "product_groups",
            (
                text("name", "The product group's name."),
                decimal("vatvalue", vatvalue),
                integer("numtotal", "Number of items in the product group."),
                money("moneytotal", gross),
                money("moneytotalnet", net),
                money("moneytotalvat", vat),
            ),
            "Sales, refunds and sales not delivered grouped by product group",
        ),
        payments,
        subpayments,
        child(
            "discounts",
            (
                text("vouchercode", "The voucher code ('' for a discount without one)."),
                money("moneytotal", "Discount incl. VAT; positive."),
                money("moneytotalnet", "Discount excl. VAT; positive."),
                money("moneytotalvat", "VAT part of the discount; positive."),
            ),
            "Discounts grouped by voucher code",
        ),
        child(
            "sales_taxes",
            (
                text("name", "The sales tax's name."),
                text("code", "An identifier of the sales tax."),
                text("externalid", "A custom value for export to external systems."),
                text("groupregion", "The region of the sales tax group."),
                money("moneytotal", "The sales the tax is calculated on (excl. the tax)."),
                money("moneytax", "The tax collected."),
                decimal("decimaltaxvalue", "The tax rate in percent."),
            ),
            "Collected sales taxes (US-style) grouped by name, code and rate",
        ),
        # The vendor documents what a currency conversion holds but not its field names:
        # the whole object is kept as JSON until the live API shows them.
        child(
            "currency_conversions",
            (
                json_column(
                    "data",
                    "The conversion object as sent: foreign currency code, expected and counted "
                    "cash in it and converted to the report currency, bank bag id.",
                ),
            ),
            "Foreign currencies in the drawer and their conversion to the report currency",
            sectioned=False,
            extra=False,
        ),
    ]
    return {t.name.removeprefix(f"{prefix}_"): t for t in tables}


def z_report_lists(
    children: Mapping[str, Table], extra: tuple[ChildList, ...] = ()
) -> tuple[tuple[ChildList, ...], tuple[Nested, ...]]:
    """Which list of a z-report feeds which of `children` (from `child_tables`), and the
    payments' sub payments nested in them: the generic normalizer's declarations."""
    lists = tuple(ChildList(f, children[kind], section) for f, kind, section in CHILD_LISTS)
    subpayments = Nested(
        "subpayments", children["subpayments"], children["payments"], "payment_position"
    )
    return (*lists, *extra), (subpayments,)


def z_report_normalizer(
    *,
    stream: str,
    parent: Table,
    children: Mapping[str, Table],
    extra_lists: tuple[ChildList, ...] = (),
    prepare: Prepare | None = None,
) -> EntityNormalizer:
    """The generic normalizer, declared for a z-report parent and its children."""
    lists, nested = z_report_lists(children, extra_lists)
    return EntityNormalizer(
        stream=stream, parent=parent, lists=lists, nested=nested, prepare=prepare
    )
