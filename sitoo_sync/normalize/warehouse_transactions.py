"""Warehouse transactions (fact sheet section 6): a transaction → a `warehouse_transactions`
row and its item lines (`items`, the vendor's warehouseitemlog objects).

Quantities are signed as the vendor sends them (negative: stock out). The `transactiontype`
codes are not documented; the fact sheet infers four from the vendor's examples (6.4), and
only those get a readable name, marked as inferred; any other code keeps its number.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sitoo_sync.normalize.entity import ChildList, EntityNormalizer
from sitoo_sync.normalize.records import EXTRA
from sitoo_sync.normalize.tables import Table, decimal, integer, json_column, money, text, timestamp
from sitoo_sync.normalize.values import to_int_or_none

STREAM = "warehouse_transactions"
EXTRA_DOC = "Fields the vendor sent that no column declares, as JSON (nothing is dropped)."

#: **Inferred** from the vendor's examples (fact sheet 6.4), not documented.
TRANSACTION_TYPES: Mapping[int, str] = {
    10: "Move In",
    30: "Sales",
    40: "Refund",
    50: "StockTaking",
}

KEY = integer("warehousetransactionid", "Unique ID of the transaction.", nullable=False)

WAREHOUSE_TRANSACTIONS = Table(
    name="warehouse_transactions",
    description=(
        "One row per warehouse transaction: a change of stock (a move, a sale or refund "
        "delivered, a stocktaking) in one warehouse. Append-only."
    ),
    columns=(
        KEY,
        integer("site_id", "The site (eshop ID) whose listing showed it. Ours."),
        integer("warehouseid", "The warehouse whose stock changed (→ warehouses)."),
        timestamp("datecreated", "When the transaction was made (UTC)."),
        integer("transactiontype", "The kind of transaction (codes undocumented)."),
        text(
            "transactiontype_name",
            "transactiontype's name as inferred from the vendor's examples (10 Move In, "
            "30 Sales, 40 Refund, 50 StockTaking); NULL for any other code. Ours.",
        ),
        text("description", "Free text, e.g. 'Move In'."),
        integer("orderdeliveryid", "The order delivery that made it (sales, refunds)."),
        integer("shipmentid", "The shipment that made it, if any."),
        text("externalid", "External key; often NULL."),
        text("reasoncode", "Reason code; often NULL."),
        json_column(EXTRA, EXTRA_DOC),
    ),
    key=("warehousetransactionid",),
)

WAREHOUSE_TRANSACTION_ITEMS = Table(
    name="warehouse_transaction_items",
    description=(
        "Item lines of a warehouse transaction (the vendor's warehouseitemlog): one stock "
        "row's change, keyed by the transaction and the line's position. Money is in the "
        "warehouse's currency (warehouses.currencycode)."
    ),
    columns=(
        KEY,
        integer("position", "0-based position in the transaction's items. Ours.", nullable=False),
        integer("warehouseitemlogid", "The line's ID."),
        integer("warehouseitemid", "The stock row (→ warehouse_items)."),
        text("sku", "The SKU."),
        decimal("decimalquantity", "Signed change of stock (negative: out)."),
        decimal("decimaltotal", "Stock level after the change."),
        money("moneypricein", "Unit purchase price, where relevant."),
        money("moneytotal", "Stock value after the change."),
        money("moneyvalue", "Value of this change (signed as the quantity)."),
        json_column(EXTRA, EXTRA_DOC),
    ),
    key=("warehousetransactionid", "position"),
    parent_key=("warehousetransactionid",),
)

TABLES: tuple[Table, ...] = (WAREHOUSE_TRANSACTIONS, WAREHOUSE_TRANSACTION_ITEMS)


def prepare(record: Mapping[str, Any], context: Mapping[str, Any]) -> Mapping[str, Any]:
    """The transaction with its site (the partition) and its inferred type name; a type
    code sent as digits ("30") is named as the code its integer column reads it as."""
    site = context.get("partition")
    code = to_int_or_none(record.get("transactiontype"))
    key = to_int_or_none(record.get("warehousetransactionid"))
    items = record.get("items")
    if type(items) is list:  # each line repeats its parent's id: the key column holds it
        items = [_without_parent_id(i, key) for i in items]
    return {
        **record,
        "items": items,
        "site_id": int(site) if isinstance(site, str) and site.isdigit() else None,
        "transactiontype_name": TRANSACTION_TYPES.get(code) if code is not None else None,
    }


def _without_parent_id(item: Any, key: int | None) -> Any:
    """A line without `warehousetransactionid` when it repeats the parent's, digits or not
    (a different one is kept, in `extra`, for anyone to see)."""
    if (
        key is not None
        and isinstance(item, Mapping)
        and to_int_or_none(item.get("warehousetransactionid")) == key
    ):
        return {k: v for k, v in item.items() if k != "warehousetransactionid"}
    return item


normalize_window = EntityNormalizer(
    stream=STREAM,
    parent=WAREHOUSE_TRANSACTIONS,
    lists=(ChildList("items", WAREHOUSE_TRANSACTION_ITEMS),),
    prepare=prepare,
)
