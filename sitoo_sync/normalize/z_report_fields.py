"""The z-report figures shared by POS z-reports and store z-reports, and their child lists.

Field names are the vendor's (z-reports.txt, cash-registers-v2.txt `poszreport*` objects).
The child tables are declared by a factory over the parent key, so the store z-report
stream declares the same children under its own key with no copy of the columns.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sitoo_sync.normalize.records import Row, RowMapper, require_list, require_object
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

CHILD_LIST_FIELDS = frozenset(c.field for c in CHILD_LISTS)


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


class ZReportChildren:
    """Turns the child lists of one z-report into rows of the child tables."""

    def __init__(self, tables: dict[str, Table], parent_key: tuple[str, ...]) -> None:
        self.tables = tables
        self._mappers: dict[str, RowMapper] = {}
        for kind, table in tables.items():
            if kind == "currency_conversions":
                continue  # kept whole, see child_tables()
            lead = table.column_names[: table.column_names.index("position") + 1]
            ignore = ("subpayments",) if kind == "payments" else ()
            self._mappers[kind] = RowMapper(table, prefix=lead, ignore=ignore)
        self._parent_key = parent_key

    def rows(self, report: Mapping[str, Any], key: Row) -> dict[str, list[Row]]:
        """Child rows of `report` (whose parent key is `key`), per child table name."""
        out: dict[str, list[Row]] = {t.name: [] for t in self.tables.values()}
        mappers = self._mappers
        for spec in CHILD_LISTS:
            items = require_list(report, spec.field)
            if not items:
                continue
            target = out[self.tables[spec.table].name]
            for pos, item in enumerate(items):
                obj = require_object(item, f"{spec.field}[{pos}]")
                if spec.section is None:
                    target.append((*key, pos, dumps_json(obj)))
                    continue
                target.append(mappers[spec.table].row(obj, (*key, spec.section, pos)))
                if spec.table == "payments":
                    subs = out[self.tables["subpayments"].name]
                    for sub_pos, sub in enumerate(require_list(obj, "subpayments")):
                        sub_obj = require_object(sub, f"{spec.field}[{pos}].subpayments[{sub_pos}]")
                        subs.append(
                            mappers["subpayments"].row(sub_obj, (*key, spec.section, pos, sub_pos))
                        )
        return out
