"""What POS z-reports and store z-reports share: totals, child lists, and the normalizer.

Field names are the vendor's (z-reports.txt, cash-registers-v2.txt `poszreport*` objects).
The child tables are declared by a factory over the parent key, so the store z-report
stream declares the same children under its own key with no copy of the columns.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from sitoo_sync.errors import RecordRejected
from sitoo_sync.normalize.columns import Errors, empty_table
from sitoo_sync.normalize.records import (
    EXTRA,
    NormalizedWindow,
    Reject,
    TableBuilder,
    reject_for,
    require_object,
)
from sitoo_sync.normalize.tables import (
    Column,
    Table,
    decimal,
    integer,
    json_column,
    money,
    text,
)
from sitoo_sync.normalize.values import dumps_json

KeyOf = Callable[[Mapping[str, Any]], tuple[Any, ...]]

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
        "Difference between expected and counted cash at closing (0.00: none).",
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


@dataclass(frozen=True)
class ChildList:
    """One JSON list in the parent that becomes rows of `table`, tagged with `section`."""

    field: str
    table: str
    section: str | None


#: Which list of the report feeds which child table, and under which section.
CHILD_LISTS: tuple[ChildList, ...] = (
    ChildList("vatgroupssales", "vat_groups", "sales"),
    ChildList("vatgroupsrefund", "vat_groups", "refund"),
    ChildList("vatgroupssalesnotdelivered", "vat_groups", "salesnotdelivered"),
    ChildList("productgroupssales", "product_groups", "sales"),
    ChildList("productgroupsrefund", "product_groups", "refund"),
    ChildList("productgroupssalesnotdelivered", "product_groups", "salesnotdelivered"),
    ChildList("paymentssales", "payments", "sales"),
    ChildList("paymentsrefund", "payments", "refund"),
    ChildList("discountssales", "discounts", "sales"),
    ChildList("discountsrefund", "discounts", "refund"),
    ChildList("discountssalesnotdelivered", "discounts", "salesnotdelivered"),
    ChildList("salestaxessales", "sales_taxes", "sales"),
    ChildList("salestaxesrefund", "sales_taxes", "refund"),
    ChildList("currencyconversions", "currency_conversions", None),
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

    captured = "Amount captured; moneytotal - moneycaptured is the reserved amount."
    advance = "Amount captured for items not delivered at purchase (payment in advance)."
    reserved = "The reserved (not yet captured) amount."
    payments = child(
        "payments",
        (
            text("name", "The payment's name (e.g. Cash, Card, Gift Card)."),
            money("moneytotal", "Total value of this payment type; positive also for refunds."),
            money("moneycaptured", captured),
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
            money("moneycaptured", captured),
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


@dataclass
class _Flat:
    """The objects of one child table across a window, with where each came from."""

    objs: list[Mapping[str, Any]] = field(default_factory=list)
    owners: list[int] = field(default_factory=list)  # index of the report
    sections: list[str] = field(default_factory=list)
    parents: list[int] = field(default_factory=list)  # payment position, for subpayments
    positions: list[int] = field(default_factory=list)


class ZReportNormalizer:
    """Normalizes a window of z-reports into the parent table and the child tables.

    Pure: JSON objects in, Arrow tables and rejects out. A report whose key, structure or
    any value (its own or a child's) is invalid is rejected whole; the rest load.
    """

    def __init__(
        self,
        *,
        stream: str,
        parent: Table,
        children: dict[str, Table],
        key_of: KeyOf,
        currency: str,
        extra_lists: tuple[ChildList, ...] = (),
        prepare: Callable[[Mapping[str, Any], Mapping[str, Any]], Mapping[str, Any]] | None = None,
    ) -> None:
        self.stream = stream
        self.parent = parent
        self.children = children
        self.key_of = key_of
        self.currency = currency  # the parent's currency column, copied onto money children
        self.child_lists = (*CHILD_LISTS, *extra_lists)
        self.prepare = prepare
        lists = (c.field for c in self.child_lists)
        self._parent = TableBuilder(parent, prefix=(), ignore=lists)
        self._builders: dict[str, TableBuilder] = {}
        for kind, table in children.items():
            if kind == "currency_conversions":
                continue  # kept whole, see child_tables()
            lead = table.column_names[: table.column_names.index("position") + 1]
            ignore_sub = ("subpayments",) if kind == "payments" else ()
            self._builders[kind] = TableBuilder(table, prefix=lead, ignore=ignore_sub)

    def shown_key(self, record: Any) -> str | None:
        """The record's key as text for `rejects`, as far as it can be read."""
        if not isinstance(record, Mapping):
            return None
        parts = [record.get(k) for k in self.parent.key]
        if any(part is None for part in parts):  # say which part is missing, not `None/18`
            shown = ("<missing>" if v is None else v for v in parts)
            return "/".join(f"{k}={v}" for k, v in zip(self.parent.key, shown, strict=True))
        return "/".join(str(part) for part in parts)

    def __call__(
        self, records: Iterable[Any], context: Mapping[str, Any] | None = None
    ) -> NormalizedWindow:
        """Normalize one window; a key seen twice keeps its last version."""
        rejects: list[Reject] = []
        latest: dict[tuple[Any, ...], tuple[Mapping[str, Any], Any]] = {}
        for record in records:
            try:
                obj = require_object(record, "record")
                if self.prepare is not None:
                    obj = self.prepare(obj, context or {})
                key = self.key_of(obj)
            except RecordRejected as exc:
                rejects.append(reject_for(self.stream, record, exc.reason, self.shown_key(record)))
                continue
            latest.pop(key, None)
            latest[key] = (obj, record)
        reports = [obj for obj, _ in latest.values()]
        originals = [raw for _, raw in latest.values()]
        errors: Errors = {}
        flats = self._flatten(reports, errors)
        parent = self._parent.build(reports, [], errors)
        keys = [parent.column(k).combine_chunks() for k in self.parent.key]
        currency = parent.column(self.currency).combine_chunks()
        tables = {self.parent.name: parent}
        for kind, table in self.children.items():
            tables[table.name] = self._child_table(
                kind, table, flats[kind], [*keys, currency], errors
            )
        if errors:
            for index, reason in sorted(errors.items()):
                record = originals[index]
                rejects.append(reject_for(self.stream, record, reason, self.shown_key(record)))
            tables = {
                name: data.filter(pa.array([i not in errors for i in owners], pa.bool_()))
                for name, (data, owners) in self._owned(tables, flats, len(reports)).items()
            }
        parent_keys = tables[self.parent.name].select(list(self.parent.key))
        return NormalizedWindow(tables=tables, parent_keys=parent_keys, rejects=rejects)

    def _owned(
        self, tables: dict[str, pa.Table], flats: dict[str, _Flat], n: int
    ) -> dict[str, tuple[pa.Table, list[int]]]:
        """Each table with, per row, the index of the report that owns it."""
        owned = {self.parent.name: (tables[self.parent.name], list(range(n)))}
        for kind, table in self.children.items():
            owned[table.name] = (tables[table.name], flats[kind].owners)
        return owned

    def _flatten(self, reports: list[Mapping[str, Any]], errors: Errors) -> dict[str, _Flat]:
        """Child objects per child table, checking that every list holds objects."""
        flats: dict[str, _Flat] = defaultdict(_Flat)
        for index, report in enumerate(reports):
            for spec in self.child_lists:
                items = report.get(spec.field)
                if items is None or items == []:
                    continue
                if type(items) is not list:
                    got = type(items).__name__
                    errors.setdefault(index, f"{spec.field}: expected a list, got {got}")
                    continue
                flat = flats[spec.table]
                section = spec.section or ""
                for pos, item in enumerate(items):
                    if type(item) is not dict:
                        got = type(item).__name__
                        errors.setdefault(
                            index, f"{spec.field}[{pos}]: expected an object, got {got}"
                        )
                        continue
                    flat.objs.append(item)
                    flat.owners.append(index)
                    flat.sections.append(section)
                    flat.positions.append(pos)
        payments = flats["payments"]
        subs = flats["subpayments"]
        for owner, section, pos, payment in zip(
            payments.owners, payments.sections, payments.positions, payments.objs, strict=True
        ):
            items = payment.get("subpayments")
            if items is None or items == []:
                continue
            if type(items) is not list:
                errors.setdefault(owner, f"{section} payment {pos}: subpayments is not a list")
                continue
            for sub_pos, item in enumerate(items):
                if type(item) is not dict:
                    errors.setdefault(
                        owner, f"{section} payment {pos}: subpayments[{sub_pos}] is not an object"
                    )
                    continue
                subs.objs.append(item)
                subs.owners.append(owner)
                subs.sections.append(section)
                subs.parents.append(pos)
                subs.positions.append(sub_pos)
        return flats

    def _child_table(
        self,
        kind: str,
        table: Table,
        flat: _Flat,
        keys: list[pa.Array],
        errors: Errors,
    ) -> pa.Table:
        if not flat.objs:
            return empty_table(table)
        owners = pa.array(flat.owners, pa.int64())
        if self.currency not in table.column_names:
            keys = keys[:-1]  # the last is the currency, which a list of ids does not carry
        prefix = [pc.take(k, owners) for k in keys]
        if "section" in table.column_names:
            prefix.append(pa.array(flat.sections, pa.string()))
        if kind == "subpayments":
            prefix.append(pa.array(flat.parents, pa.int64()))
        prefix.append(pa.array(flat.positions, pa.int64()))
        if kind == "currency_conversions":
            data: list[str | None] = []
            for i, obj in enumerate(flat.objs):
                try:
                    data.append(dumps_json(obj))
                except RecordRejected as exc:
                    errors.setdefault(flat.owners[i], f"{table.name}.data: {exc.message}")
                    data.append(None)
            return pa.Table.from_arrays(
                [*prefix, pa.array(data, pa.string())], names=list(table.column_names)
            )
        child_errors: Errors = {}
        built = self._builders[kind].build(flat.objs, prefix, child_errors)
        for i, reason in child_errors.items():
            errors.setdefault(flat.owners[i], reason)
        return built
