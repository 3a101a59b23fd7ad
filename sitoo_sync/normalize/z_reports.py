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

#: Totals in every z-report (PosZReport and StoreZReportData), in the vendor's order.
TOTALS: tuple[Column, ...] = (
    money("moneysalestotal"),
    money("moneysalestotalnet"),
    integer("numsales"),
    integer("numsalesitems"),
    money("moneysalesnotdeliveredtotal"),
    money("moneysalesnotdeliveredtotalnet"),
    integer("numsalesnotdelivered"),
    integer("numsalesnotdelivereditems"),
    money("moneyrefundtotal"),
    money("moneyrefundtotalnet"),
    integer("numrefund"),
    integer("numrefunditems"),
    money("moneyroundoff"),
    money("moneysalestaxinadvance"),
    money("moneysummarysales"),
    money("moneysummaryrefund"),
    money("moneysummarysubtotal"),
    money("moneysummarysalestax"),
    money("moneysummaryroundoff"),
    money("moneysummarytotal"),
    money("moneycash_in"),
    money("moneycash_salesrefunds"),
    money("moneycash_petty"),
    money("moneycash_bank"),
    money("moneycash_expected"),
    money("moneycash_counted"),
    money("moneycash_diff"),
    money("moneycash_bankfinal"),
    money("moneycash_out"),
    money("moneydiscount"),
    integer("numsalestypeproduct"),
    integer("numsalestypeservice"),
    integer("numsalestypegiftcard"),
    integer("numreceipts"),
    integer("numopendrawer"),
    integer("numpractice"),
    money("moneypractice"),
)

SECTION = text("section", nullable=False)
POSITION = integer("position", nullable=False)


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


def child_tables(prefix: str, parent_key: tuple[Column, ...]) -> dict[str, Table]:
    """The z-report child tables under `parent_key`, named `{prefix}_{kind}`."""
    pk = tuple(c.name for c in parent_key)

    def child(
        kind: str, body: tuple[Column, ...], *, sectioned: bool = True, extra: bool = True
    ) -> Table:
        lead = (*parent_key, SECTION, POSITION) if sectioned else (*parent_key, POSITION)
        key = (*pk, "section", "position") if sectioned else (*pk, "position")
        return Table(
            name=f"{prefix}_{kind}",
            columns=(*lead, *body, *((json_column("extra"),) if extra else ())),
            key=key,
            parent_key=pk,
        )

    payments = child(
        "payments",
        (
            text("name"),
            money("moneytotal"),
            money("moneycaptured"),
            money("moneyinadvance"),
            money("moneyreserved"),
        ),
    )
    subpayments = Table(
        name=f"{prefix}_subpayments",
        columns=(
            *parent_key,
            SECTION,
            integer("payment_position", nullable=False),
            POSITION,
            text("name"),
            money("moneysubtotal"),
            money("moneycaptured"),
            money("moneyinadvance"),
            money("moneyreserved"),
            json_column("extra"),
        ),
        key=(*pk, "section", "payment_position", "position"),
        parent_key=pk,
    )
    tables = [
        child(
            "vat_groups",
            (
                decimal("vatvalue"),
                money("moneytotal"),
                money("moneytotalnet"),
                money("moneytotalvat"),
            ),
        ),
        child(
            "product_groups",
            (
                text("name"),
                decimal("vatvalue"),
                integer("numtotal"),
                money("moneytotal"),
                money("moneytotalnet"),
                money("moneytotalvat"),
            ),
        ),
        payments,
        subpayments,
        child(
            "discounts",
            (
                text("vouchercode"),
                money("moneytotal"),
                money("moneytotalnet"),
                money("moneytotalvat"),
            ),
        ),
        child(
            "sales_taxes",
            (
                text("name"),
                text("code"),
                text("externalid"),
                text("groupregion"),
                money("moneytotal"),
                money("moneytax"),
                decimal("decimaltaxvalue"),
            ),
        ),
        # The vendor documents what a currency conversion holds but not its field names:
        # the whole object is kept as JSON until the live API shows them.
        child("currency_conversions", (json_column("data"),), sectioned=False, extra=False),
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
        extra_lists: tuple[ChildList, ...] = (),
        prepare: Callable[[Mapping[str, Any]], Mapping[str, Any]] | None = None,
    ) -> None:
        self.stream = stream
        self.parent = parent
        self.children = children
        self.key_of = key_of
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
                    obj = self.prepare(obj)
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
        tables = {self.parent.name: parent}
        for kind, table in self.children.items():
            tables[table.name] = self._child_table(kind, table, flats[kind], keys, errors)
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
