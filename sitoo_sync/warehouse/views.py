"""Ready views for BI: the questions a finance user asks first, answered right on every target.

Each view is one portable SELECT; where dialects differ (SQLite has no decimal type, date
arithmetic differs) a small helper writes that part per dialect. Views are named `v_*`, apart
from the raw tables, and are dropped and created again at the end of every `ensure_schema`,
so a new version of the tool brings its new definitions. A view is made only when every
table and column it reads exists (a target that syncs only some streams gets the views of
those streams).

Conventions every view keeps: money is summed per currency (never across currencies);
refunds are subtracted (z-reports and receipts store them positive, with a refund flag or
section); "no store" is NO_STORE; practice-mode receipts are left out. Rows loaded before a
column was added (a currency copied onto child rows, a signed amount) are read through the
columns that were always there, so the views are right for old rows too.

Not yet: sales from orders and `stock_levels` need the REST v2 streams, which do not exist.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sitoo_sync.log import get_logger
from sitoo_sync.warehouse.comments import duckdb_batch

if TYPE_CHECKING:
    import duckdb

log = get_logger(__name__)


class Sql:
    """The dialect-dependent pieces of the views' SQL for one target."""

    def __init__(self, dialect: str, table: Callable[[str], str]) -> None:
        self.dialect = dialect
        self.t = table

    def cents(self, column: str) -> str:
        """An exact integer count of cents of a money column."""
        if self.dialect == "sqlite":  # money is exact text there: "12.50" -> 1250
            return f"CAST(REPLACE({column}, '.', '') AS INTEGER)"
        return column

    def money(self, cents: str) -> str:
        """Money from an expression of `cents()` values: DECIMAL, or exact text on SQLite."""
        if self.dialect != "sqlite":
            return cents
        c = f"({cents})"
        return (
            f"(CASE WHEN {c} IS NULL THEN NULL ELSE (CASE WHEN {c} < 0 THEN '-' ELSE '' END) "
            f"|| (ABS({c}) / 100) || '.' || printf('%02d', ABS({c}) % 100) END)"
        )

    def quantity(self, column: str) -> str:
        """A DECIMAL(18,3) quantity as a number that sums (SQLite keeps it as text)."""
        return f"CAST({column} AS NUMERIC)" if self.dialect == "sqlite" else column

    def days_since(self, at: str) -> str:
        """Whole days from the UTC instant `at` to now."""
        if self.dialect == "sqlite":
            return f"CAST(julianday('now') - julianday({at}) AS INTEGER)"
        if self.dialect in ("mysql", "mariadb"):
            return f"FLOOR(TIMESTAMPDIFF(SECOND, {at}, UTC_TIMESTAMP()) / 86400)"
        if self.dialect == "duckdb":
            return f"CAST(floor((epoch(now()) - epoch({at})) / 86400) AS BIGINT)"
        return f"CAST(floor(extract(epoch FROM (now() - {at})) / 86400) AS BIGINT)"


def _store(column: str) -> str:
    """The store, with rows loaded before NO_STORE was the one spelling read as it."""
    return f"COALESCE(NULLIF({column}, ''), 'NO_STORE')"


@dataclass(frozen=True)
class View:
    """A view: its name, meaning, the columns it shows and the table columns it reads."""

    name: str
    description: str
    columns: tuple[tuple[str, str], ...]  # (name, description)
    reads: Mapping[str, tuple[str, ...]]
    select: Callable[[Sql], str]


def _daily_store_sales(d: Sql) -> str:
    gross, net = d.cents("s.moneysalestotal"), d.cents("s.moneysalestotalnet")
    refund, refund_net = d.cents("s.moneyrefundtotal"), d.cents("s.moneyrefundtotalnet")
    return (
        f"SELECT {_store('s.store_id')} AS store_id, s.store_name, "
        f"s.day_created AS business_date, s.currency_code AS currencycode, "
        f"{d.money(gross)} AS gross_sales, {d.money(net)} AS net_sales, "
        f"{d.money(f'{gross} - {net}')} AS vat_sales, "
        f"{d.money(refund)} AS gross_refunds, {d.money(refund_net)} AS net_refunds, "
        f"{d.money(f'{gross} - {refund}')} AS gross_takings, "
        f"{d.money(f'{net} - {refund_net}')} AS net_takings, "
        f"s.numreceipts AS receipts, s.numsales AS sales_receipts, "
        f"s.numrefund AS refund_receipts "
        f"FROM {d.t('store_z_reports')} s"
    )


def _payment_mix(d: Sql) -> str:
    amount = d.cents("p.moneytotal")
    sales = d.money(f"SUM(CASE WHEN p.section = 'sales' THEN {amount} ELSE 0 END)")
    refund = d.money(f"SUM(CASE WHEN p.section = 'refund' THEN {amount} ELSE 0 END)")
    net = d.money(f"SUM(CASE WHEN p.section = 'refund' THEN -{amount} ELSE {amount} END)")
    currency = "COALESCE(p.currency_code, s.currency_code)"
    return (
        f"SELECT {_store('s.store_id')} AS store_id, s.day_created AS business_date, "
        f"{currency} AS currencycode, p.name AS payment, "
        f"{sales} AS sales_amount, {refund} AS refund_amount, {net} AS net_amount "
        f"FROM {d.t('store_z_report_payments')} p "
        f"JOIN {d.t('store_z_reports')} s ON s.store_zreport_id = p.store_zreport_id "
        f"GROUP BY {_store('s.store_id')}, s.day_created, {currency}, p.name"
    )


def _cash_differences(d: Sql) -> str:
    c = d.cents
    return (
        f"SELECT z.registerid, z.zreportid, {_store('z.store_id')} AS store_id, "
        f"z.business_date, z.datecreated AS closed_at, z.currencycode, "
        f"{d.money(c('z.moneycash_expected'))} AS expected_cash, "
        f"{d.money(c('z.moneycash_counted'))} AS counted_cash, "
        f"{d.money(c('z.moneycash_diff'))} AS cash_difference, z.staff "
        f"FROM {d.t('pos_z_reports')} z WHERE {c('z.moneycash_diff')} <> 0"
    )


def _register_activity(d: Sql) -> str:
    last = (
        "(CASE WHEN z.last_z_report_at IS NULL THEN j.last_journal_at "
        "WHEN j.last_journal_at IS NULL THEN z.last_z_report_at "
        "WHEN z.last_z_report_at >= j.last_journal_at THEN z.last_z_report_at "
        "ELSE j.last_journal_at END)"
    )
    return (
        f"SELECT r.registerid, c.site_id, z.store_id, z.last_zreportid, z.last_z_report_at, "
        f"j.last_journal_at, {last} AS last_activity_at, "
        f"{d.days_since(last)} AS days_silent, c.missing_since "
        f"FROM (SELECT registerid FROM {d.t('cash_registers')} "
        f"UNION SELECT registerid FROM {d.t('pos_z_reports')} "
        f"UNION SELECT registerid FROM {d.t('journal_entries')}) r "
        f"LEFT JOIN {d.t('cash_registers')} c ON c.registerid = r.registerid "
        f"LEFT JOIN (SELECT registerid, MAX(zreportid) AS last_zreportid, "
        f"MAX(datecreated) AS last_z_report_at, MAX({_store('store_id')}) AS store_id "
        f"FROM {d.t('pos_z_reports')} GROUP BY registerid) z ON z.registerid = r.registerid "
        f"LEFT JOIN (SELECT registerid, MAX(datecreated) AS last_journal_at "
        f"FROM {d.t('journal_entries')} GROUP BY registerid) j ON j.registerid = r.registerid"
    )


def _product_sales(d: Sql) -> str:
    price = d.cents("i.moneyrowprice")
    qty = d.quantity("i.decimalunitquantity")
    store = _store("r.store_id")
    currency = "COALESCE(i.currencycode, r.currencycode)"
    amount = d.money(f"SUM(CASE WHEN r.isrefund = TRUE THEN -{price} ELSE {price} END)")
    return (
        f"SELECT i.productid, MAX(i.sku) AS sku, MAX(i.name) AS name, "
        f"MAX(i.product_group) AS product_group, {store} AS store_id, r.business_date, "
        f"{currency} AS currencycode, "
        f"SUM(CASE WHEN r.isrefund = TRUE THEN -{qty} ELSE {qty} END) AS quantity, "
        f"{amount} AS amount_incl_vat "
        f"FROM {d.t('journal_receipt_items')} i "
        f"JOIN {d.t('journal_receipts')} r ON r.registerid = i.registerid AND r.id = i.id "
        f"WHERE r.ispractice IS NULL OR r.ispractice = FALSE "
        f"GROUP BY i.productid, {store}, r.business_date, {currency}"
    )


_Z = (
    "moneysalestotal",
    "moneysalestotalnet",
    "moneyrefundtotal",
    "moneyrefundtotalnet",
    "numreceipts",
    "numsales",
    "numrefund",
)
VIEWS: tuple[View, ...] = (
    View(
        "v_daily_store_sales",
        "Sales per store, local business day and currency, from the store z-reports (the "
        "vendor's own daily aggregate). Refunds are subtracted in the *_takings columns.",
        (
            ("store_id", "The store's external ID; NO_STORE for registers without one."),
            ("store_name", "The store's name."),
            ("business_date", "The local day (the aggregation's time zone)."),
            ("currencycode", "Currency of every amount on the row; never sum across it."),
            ("gross_sales", "Sales incl. VAT (refunds not subtracted)."),
            ("net_sales", "Sales excl. VAT."),
            ("vat_sales", "VAT on sales: gross_sales - net_sales."),
            ("gross_refunds", "Refunds incl. VAT, positive."),
            ("net_refunds", "Refunds excl. VAT, positive."),
            ("gross_takings", "gross_sales - gross_refunds."),
            ("net_takings", "net_sales - net_refunds."),
            ("receipts", "Receipts (sales and refunds)."),
            ("sales_receipts", "Sales receipts."),
            ("refund_receipts", "Refund receipts."),
        ),
        {"store_z_reports": ("store_id", "store_name", "day_created", "currency_code", *_Z)},
        _daily_store_sales,
    ),
    View(
        "v_payment_mix",
        "Payments per store, local day, currency and payment type, from the store z-reports.",
        (
            ("store_id", "The store's external ID; NO_STORE for registers without one."),
            ("business_date", "The local day (the aggregation's time zone)."),
            ("currencycode", "Currency of the amounts."),
            ("payment", "The payment type's name (Cash, Card, Gift Card ...)."),
            ("sales_amount", "Paid on sales."),
            ("refund_amount", "Paid back on refunds, positive."),
            ("net_amount", "sales_amount - refund_amount."),
        ),
        {
            "store_z_report_payments": (
                "store_zreport_id",
                "section",
                "name",
                "moneytotal",
                "currency_code",
            ),
            "store_z_reports": ("store_zreport_id", "store_id", "day_created", "currency_code"),
        },
        _payment_mix,
    ),
    View(
        "v_cash_differences",
        "Every POS closing whose counted cash differs from the expected cash.",
        (
            ("registerid", "The register."),
            ("zreportid", "The z-report of the closing."),
            ("store_id", "The store; NO_STORE for registers without one."),
            ("business_date", "The closing's local day (pos_z_reports.business_date)."),
            ("closed_at", "When the register was closed (UTC)."),
            ("currencycode", "Currency of the amounts."),
            ("expected_cash", "Cash the register expected in the drawer."),
            ("counted_cash", "Cash counted."),
            ("cash_difference", "The vendor's moneycash_diff (counted against expected)."),
            ("staff", "Who closed the register."),
        ),
        {
            "pos_z_reports": (
                "registerid",
                "zreportid",
                "store_id",
                "business_date",
                "datecreated",
                "currencycode",
                "moneycash_expected",
                "moneycash_counted",
                "moneycash_diff",
                "staff",
            )
        },
        _cash_differences,
    ),
    View(
        "v_register_activity",
        "Per register: its last z-report and journal entry, and how many days it is silent.",
        (
            ("registerid", "The register."),
            ("site_id", "The site that lists it (NULL if not listed)."),
            ("store_id", "The store of its z-reports; NO_STORE for none."),
            ("last_zreportid", "Its highest z-report number loaded."),
            ("last_z_report_at", "When its last z-report was created (UTC)."),
            ("last_journal_at", "When its last journal entry was created (UTC)."),
            ("last_activity_at", "The later of the two (UTC)."),
            ("days_silent", "Whole days since last_activity_at, at query time."),
            ("missing_since", "Since when the register listing no longer shows it (UTC)."),
        ),
        {
            "cash_registers": ("registerid", "site_id", "missing_since"),
            "pos_z_reports": ("registerid", "zreportid", "datecreated", "store_id"),
            "journal_entries": ("registerid", "datecreated"),
        },
        _register_activity,
    ),
    View(
        "v_product_sales",
        "Sales per product, store, local day and currency from the journal's receipt items; "
        "refunds subtracted, practice receipts left out.",
        (
            ("productid", "The product's ID in Sitoo."),
            ("sku", "The product's SKU."),
            ("name", "The product's name."),
            ("product_group", "The product group."),
            ("store_id", "The store; NO_STORE for registers without one."),
            ("business_date", "The local day of the receipts (the register's time zone)."),
            ("currencycode", "Currency of the amount."),
            ("quantity", "Units sold minus units refunded."),
            ("amount_incl_vat", "Row totals incl. VAT after discounts, refunds subtracted."),
        ),
        {
            "journal_receipt_items": (
                "registerid",
                "id",
                "productid",
                "sku",
                "name",
                "product_group",
                "currencycode",
                "decimalunitquantity",
                "moneyrowprice",
            ),
            "journal_receipts": (
                "registerid",
                "id",
                "store_id",
                "business_date",
                "currencycode",
                "isrefund",
                "ispractice",
            ),
        },
        _product_sales,
    ),
)


def _ready(view: View, columns: Mapping[str, set[str]]) -> bool:
    return all(set(cols) <= columns.get(table, set()) for table, cols in view.reads.items())


def _statements(
    sql: Sql, columns: Mapping[str, set[str]], name: Callable[[str], str], *, comments: bool
) -> list[str]:
    """Drop every view; create those whose tables are there, with comments if supported."""
    out = []
    for view in VIEWS:
        out.append(f"DROP VIEW IF EXISTS {name(view.name)}")
        if not _ready(view, columns):
            continue
        out.append(f"CREATE VIEW {name(view.name)} AS {view.select(sql)}")
        if comments:
            out.append(f"COMMENT ON VIEW {name(view.name)} IS '{_quoted(view.description)}'")
            out += [
                f"COMMENT ON COLUMN {name(view.name)}.{column} IS '{_quoted(text)}'"
                for column, text in view.columns
            ]
    return out


def create_views_duckdb(con: duckdb.DuckDBPyConnection) -> None:
    """Drop and create every view whose tables exist, described in comments."""
    columns: dict[str, set[str]] = {}
    for table, column in con.execute(
        "SELECT table_name, column_name FROM information_schema.columns "
        "WHERE table_schema = current_schema() AND table_name NOT LIKE 'v\\_%' ESCAPE '\\'"
    ).fetchall():
        columns.setdefault(table, set()).add(column)
    quote = lambda name: f'"{name}"'  # noqa: E731  # one expression, used twice
    statements = _statements(Sql("duckdb", quote), columns, quote, comments=True)
    with duckdb_batch(con):  # readers never see a view missing between its drop and create
        for statement in statements:
            con.execute(statement)


def _quoted(text: str) -> str:
    return text.replace("'", "''")


def create_views_sql(conn: Connection, schema: str | None) -> None:
    """Drop and create every view whose tables exist on a SQLAlchemy target."""
    dialect = conn.dialect
    prep = dialect.identifier_preparer

    def qualified(name: str) -> str:
        return f"{prep.quote_schema(schema)}.{prep.quote(name)}" if schema else prep.quote(name)

    inspector = sa.inspect(conn)
    present = [t for t in inspector.get_table_names(schema=schema) if not t.startswith("v_")]
    columns = {
        table: {c["name"] for c in cols}
        for (_, table), cols in inspector.get_multi_columns(
            schema=schema, filter_names=present
        ).items()
    }
    name = dialect.name
    # PostgreSQL keeps comments on views and their columns; MySQL and SQLite have none.
    statements = _statements(
        Sql(name, qualified), columns, qualified, comments=name == "postgresql"
    )
    for statement in statements:  # a colon in SQL text is not a bind parameter here
        conn.execute(sa.text(statement.replace(":", "\\:")))
    log.debug("views_created", count=sum(_ready(v, columns) for v in VIEWS))
