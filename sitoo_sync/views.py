"""The BI views: the questions a finance user asks first, declared over the streams' tables.

Each view is one portable SELECT written with the dialect helper `Sql` (warehouse/views.py),
which renders the parts that differ per target; the warehouse creates them at the end of
every `ensure_schema` that is given them. Views are named `v_*`, apart from the raw tables.

Conventions every view keeps: money is summed per currency (never across currencies);
refunds are subtracted (z-reports store them positive in a refund section; receipt items
are read through their *_signed columns, which net a refund off whichever sign the register
sent it with); "no store" is NO_STORE; practice-mode receipts are left out. Rows loaded before a
column was added (a currency copied onto child rows, a signed amount) are read through the
columns that were always there, so the views are right for old rows too. Rows no tick
reads any more (a site taken out of SITOO_SITE_IDS) stay; a view whose figures would read as
current says up to when they were read, from `sync_state` (v_register_activity.synced_until,
v_stock_levels.synced_at).

Sales from orders (`v_daily_order_sales`) count closed orders (orderstateid 10), refunds
included: a refund is its own order with negative amounts, so a plain sum nets it off. The
store of an order is its additionaldata `store-externalid`, else its warehouse's store.
"""

from __future__ import annotations

from sitoo_sync.warehouse.views import Backfill, Sql, View


def _store(column: str) -> str:
    """The store, with rows loaded before NO_STORE was the one spelling read as it."""
    return f"COALESCE(NULLIF({column}, ''), 'NO_STORE')"


def _daily_store_sales(d: Sql) -> str:
    gross, net = d.cents("s.moneysalestotal"), d.cents("s.moneysalestotalnet")
    refund, refund_net = d.cents("s.moneyrefundtotal"), d.cents("s.moneyrefundtotalnet")
    return (
        f"SELECT {_store('s.store_id')} AS store_id, s.store_name, "
        f"s.day_created AS business_date, s.currency_code AS currencycode, "
        f"{d.money(gross)} AS gross_sales, {d.money(net)} AS net_sales, "
        f"{d.money(f'{gross} - {net}')} AS vat_sales, "
        f"{d.money(refund)} AS gross_refunds, {d.money(refund_net)} AS net_refunds, "
        f"{d.money(f'{refund} - {refund_net}')} AS vat_refunds, "
        f"{d.money(f'{gross} - {refund}')} AS gross_takings, "
        f"{d.money(f'{net} - {refund_net}')} AS net_takings, "
        f"{d.money(f'({gross} - {net}) - ({refund} - {refund_net})')} AS vat_takings, "
        f"{d.money(d.cents('s.moneyroundoff'))} AS roundoff, "
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


def _later(a: str, b: str) -> str:
    """The later of two instants, either one when the other is NULL (GREATEST treats NULL
    differently per dialect)."""
    return f"(CASE WHEN {a} IS NULL THEN {b} WHEN {b} IS NULL OR {a} >= {b} THEN {a} ELSE {b} END)"


def _register_activity(d: Sql) -> str:
    last = (
        "(CASE WHEN z.last_z_report_at IS NULL THEN j.last_journal_at "
        "WHEN j.last_journal_at IS NULL THEN z.last_z_report_at "
        "WHEN z.last_z_report_at >= j.last_journal_at THEN z.last_z_report_at "
        "ELSE j.last_journal_at END)"
    )
    silent = f"COALESCE({last}, c.first_seen_at)"  # never reported: silent since listed
    # Silence is known up to the last tick that read a sign of life of the register: its
    # journal (no longer read once its site left SITOO_SITE_IDS) or the z-reports (read for
    # the whole account; a register that stops closing is silent, whatever its journal).
    synced = _later("sj.last_success_at", "sz.last_success_at")
    days_silent = (
        f"(CASE WHEN {synced} IS NULL THEN NULL WHEN {synced} <= {silent} THEN 0 "
        f"ELSE {d.days_between(silent, synced)} END)"
    )
    # The store of its last closing (a register may move); NULL without z-reports.
    store = f"(CASE WHEN zl.registerid IS NOT NULL THEN {_store('zl.store_id')} END)"
    joins = ""
    if d.has("warehouses", "stores"):  # a register without z-reports: its listed store
        store = (
            f"COALESCE({store}, CASE WHEN c.registerid IS NOT NULL "
            f"THEN {_store('st.externalid')} END)"
        )
        joins = (
            f"LEFT JOIN {d.t('warehouses')} w "
            f"ON w.site_id = c.site_id AND w.warehouseid = c.warehouseid "
            f"LEFT JOIN {d.t('stores')} st ON st.site_id = w.site_id AND st.storeid = w.storeid "
        )
    return (
        f"SELECT r.registerid, c.site_id, {store} AS store_id, z.last_zreportid, "
        f"z.last_z_report_at, j.last_journal_at, {last} AS last_activity_at, "
        f"{silent} AS silent_since, {days_silent} AS days_silent, "
        f"{synced} AS synced_until, {d.days_since(synced)} AS days_unsynced, c.missing_since "
        f"FROM (SELECT registerid FROM {d.t('cash_registers')} "
        f"UNION SELECT registerid FROM {d.t('pos_z_reports')} "
        f"UNION SELECT registerid FROM {d.t('journal_entries')}) r "
        f"LEFT JOIN {d.t('cash_registers')} c ON c.registerid = r.registerid "
        f"LEFT JOIN (SELECT registerid, MAX(zreportid) AS last_zreportid, "
        f"MAX(datecreated) AS last_z_report_at "
        f"FROM {d.t('pos_z_reports')} GROUP BY registerid) z ON z.registerid = r.registerid "
        f"LEFT JOIN {d.t('pos_z_reports')} zl "
        f"ON zl.registerid = z.registerid AND zl.zreportid = z.last_zreportid "
        f"LEFT JOIN (SELECT registerid, MAX(datecreated) AS last_journal_at "
        f"FROM {d.t('journal_entries')} GROUP BY registerid) j ON j.registerid = r.registerid "
        f"LEFT JOIN {d.t('sync_state')} sj "
        f"ON sj.stream = 'journal_entries' AND sj.partition_key = r.registerid "
        f"CROSS JOIN (SELECT MAX(last_success_at) AS last_success_at FROM {d.t('sync_state')} "
        f"WHERE stream = 'pos_z_reports') sz "
        f"{joins}"
    ).rstrip()


def _signed(signed: str, unsigned: str) -> str:
    """A receipt item's signed value (negative on a refund, kept as sent when the vendor
    signed it), or for a row loaded before that column was, its unsigned one negated on a
    refund."""
    return f"COALESCE({signed}, CASE WHEN r.isrefund = TRUE THEN -{unsigned} ELSE {unsigned} END)"


def _product_sales(d: Sql) -> str:
    price = _signed(d.cents("i.moneyrowprice_signed"), d.cents("i.moneyrowprice"))
    qty = _signed(d.quantity("i.quantity_signed"), d.quantity("i.decimalunitquantity"))
    store = _store("r.store_id")
    currency = "COALESCE(i.currencycode, r.currencycode)"
    amount = d.money(f"SUM({price})")
    # An item that names no product (a gift card, an open-price item) is kept by its SKU.
    unnamed = "(CASE WHEN NULLIF(i.productid, '') IS NULL THEN i.sku END)"
    return (
        f"SELECT {d.whole_number('i.productid')} AS productid, "
        f"MAX(i.sku) AS sku, MAX(i.name) AS name, "
        f"MAX(i.product_group) AS product_group, {store} AS store_id, r.business_date, "
        f"{currency} AS currencycode, "
        f"{d.quantity_sum(qty)} AS quantity, "
        f"{amount} AS amount_incl_vat "
        f"FROM {d.t('journal_receipt_items')} i "
        f"JOIN {d.t('journal_receipts')} r ON r.registerid = i.registerid AND r.id = i.id "
        f"WHERE r.ispractice IS NULL OR r.ispractice = FALSE "
        f"GROUP BY i.productid, {unnamed}, {store}, r.business_date, {currency}"
    )


def _item_counts(d: Sql) -> list[str]:
    """journal_receipt_items.quantity for items an older version loaded before it was a
    column: the count each kept in `extra`, and quantity_signed from it, signed as a load now
    signs it (negated on a refund, unless the receipt's total is sent negative). Loaded
    then, quantity_signed took decimalunitquantity as the count: 0 for every piece good."""
    count = d.json_integer("i.extra", "quantity")
    receipts = d.t("journal_receipts")
    sign = (
        f"(SELECT CASE WHEN r.isrefund = TRUE AND (r.moneytotal IS NULL "
        f"OR {d.cents('r.moneytotal')} >= 0) THEN -1 ELSE 1 END FROM {receipts} r "
        f"WHERE r.registerid = i.registerid AND r.id = i.id)"
    )
    # (extra is set last: MySQL's SET reads the columns it has already set)
    return [
        f"UPDATE {d.t('journal_receipt_items')} AS i SET quantity = {count}, "
        f"quantity_signed = {d.integer_quantity(f'{count} * {sign}')}, "
        f"extra = {d.json_without('i.extra', 'quantity')} "
        f"WHERE i.quantity IS NULL AND {count} IS NOT NULL"
    ]


def _item_totals(d: Sql) -> list[str]:
    """journal_receipt_items.decimalquantitytotal for items loaded before it was a column,
    from their `extra`."""
    total = d.json_quantity("i.extra", "decimalquantitytotal")
    return [
        f"UPDATE {d.t('journal_receipt_items')} AS i SET decimalquantitytotal = {total}, "
        f"extra = {d.json_without('i.extra', 'decimalquantitytotal')} "
        f"WHERE i.decimalquantitytotal IS NULL AND {total} IS NOT NULL"
    ]


#: Rows loaded before journal_receipt_items had its count columns (see _item_counts).
ITEM_BACKFILLS = (
    Backfill("journal_receipt_items", "quantity", ("journal_receipts",), _item_counts),
    Backfill("journal_receipt_items", "decimalquantitytotal", (), _item_totals),
)


def _daily_order_sales(d: Sql) -> str:
    net, vat = d.cents("i.moneyitemtotal_net"), d.cents("i.moneyitemtotal_vat")
    # An empty store-externalid is no store (as z-reports' ''): the warehouse's store then.
    store = "COALESCE(NULLIF(o.store_externalid, ''), NULLIF(st.externalid, ''), 'NO_STORE')"
    refund = "(CASE WHEN o.creditorderid IS NOT NULL THEN 1 ELSE 0 END)"
    return (
        f"SELECT {store} AS store_id, o.business_date, o.currencycode, "
        f"{d.money(f'SUM({net} + {vat})')} AS gross_sales, {d.money(f'SUM({net})')} AS net_sales, "
        f"{d.money(f'SUM({vat})')} AS vat_sales, "
        f"{d.money(f'SUM(CASE WHEN {net} < 0 THEN -{net} ELSE 0 END)')} AS net_refunds, "
        f"COUNT(DISTINCT o.orderid) AS orders, "
        f"COUNT(DISTINCT CASE WHEN {refund} = 1 THEN o.orderid END) AS refund_orders "
        f"FROM {d.t('orders')} o "
        f"JOIN {d.t('order_items')} i ON i.orderid = o.orderid "
        f"LEFT JOIN {d.t('warehouses')} w "
        f"ON w.site_id = o.site_id AND w.warehouseid = o.warehouseid "
        f"LEFT JOIN {d.t('stores')} st ON st.site_id = w.site_id AND st.storeid = w.storeid "
        f"WHERE o.orderstateid = 10 "
        f"GROUP BY {store}, o.business_date, o.currencycode"
    )


def _stock_levels(d: Sql) -> str:
    # Only listed warehouses: a deleted one keeps its row (missing_since set) and its stock
    # rows, which no tick reads again, so their figures are stale, not today's stock.
    # Only listed stock rows: a row the sku sweep no longer finds (its product deleted, or
    # the row removed) keeps its last figures with missing_since set; they are not stock,
    # and a BI tool summing the view must not have to know to filter them out.
    # One product per stock row: a deleted product keeps its row (missing_since set) and
    # its SKU may be reused, and the catalogue does not make a SKU unique among live
    # products; of several live ones the lowest productid, which a new one never displaces.
    value = d.cents("i.moneytotal")
    partition = d.concat("w.site_id", "'/'", "w.warehouseid")  # the stock's `{site}/{id}`
    return (
        f"SELECT i.site_id, i.warehouseid, w.name AS warehouse_name, "
        f"{_store('st.externalid')} AS store_id, i.sku, p.productid, p.title, "
        f"{d.quantity('i.decimaltotal')} AS on_hand, "
        f"{d.quantity('i.decimalreserved')} AS reserved, "
        f"{d.quantity('i.decimalavailable')} AS available, "
        f"w.currencycode, {d.money(value)} AS stock_value, "
        f"i.datelastmodified AS changed_at, ss.last_success_at AS synced_at, "
        f"i._loaded_at AS read_at "
        f"FROM {d.t('warehouse_items')} i "
        f"JOIN {d.t('warehouses')} w ON w.site_id = i.site_id AND w.warehouseid = i.warehouseid "
        f"LEFT JOIN {d.t('stores')} st ON st.site_id = w.site_id AND st.storeid = w.storeid "
        f"LEFT JOIN (SELECT site_id, sku, MIN(productid) AS productid FROM {d.t('products')} "
        f"WHERE missing_since IS NULL GROUP BY site_id, sku) live "
        f"ON live.site_id = i.site_id AND live.sku = i.sku "
        f"LEFT JOIN {d.t('products')} p ON p.site_id = live.site_id "
        f"AND p.productid = live.productid "
        f"LEFT JOIN {d.t('sync_state')} ss ON ss.stream = 'warehouse_items' "
        f"AND ss.partition_key = {partition} "
        f"WHERE w.missing_since IS NULL AND i.missing_since IS NULL"
    )


def _registers(d: Sql) -> str:
    return (
        f"SELECT c.registerid, c.site_id, c.warehouseid, "
        f"{_store('st.externalid')} AS store_id, st.name AS store_name, "
        f"c.currencycode, c.first_seen_at, c.last_seen_at, c.missing_since "
        f"FROM {d.t('cash_registers')} c "
        f"LEFT JOIN {d.t('warehouses')} w "
        f"ON w.site_id = c.site_id AND w.warehouseid = c.warehouseid "
        f"LEFT JOIN {d.t('stores')} st ON st.site_id = w.site_id AND st.storeid = w.storeid"
    )


#: The day of a store z-report: one zone for the whole account, not each store's own.
_AGGREGATION_DAY = (
    "The local day of the store z-report aggregation, in the account's one aggregation time "
    "zone (/store-z-reports/config time_zone) for every store: for a store in another zone, "
    "its registers' closings and receipts may be dated a day apart in pos_z_reports, "
    "v_cash_differences and v_product_sales (their register's own zone)."
)
_Z = (
    "moneysalestotal",
    "moneysalestotalnet",
    "moneyrefundtotal",
    "moneyrefundtotalnet",
    "moneyroundoff",
    "numreceipts",
    "numsales",
    "numrefund",
)
VIEWS: tuple[View, ...] = (
    View(
        "v_daily_store_sales",
        "Sales per store, local business day and currency, from the store z-reports (the "
        "vendor's own daily aggregate). Refunds are subtracted in the *_takings columns; "
        "payments differ from gross_takings by roundoff.",
        (
            ("store_id", "The store's external ID; NO_STORE for registers without one."),
            ("store_name", "The store's name."),
            ("business_date", _AGGREGATION_DAY),
            ("currencycode", "Currency of every amount on the row; never sum across it."),
            ("gross_sales", "Sales incl. VAT (refunds not subtracted)."),
            ("net_sales", "Sales excl. VAT."),
            ("vat_sales", "VAT on sales: gross_sales - net_sales."),
            ("gross_refunds", "Refunds incl. VAT, positive."),
            ("net_refunds", "Refunds excl. VAT, positive."),
            ("vat_refunds", "VAT on refunds, positive: gross_refunds - net_refunds."),
            ("gross_takings", "gross_sales - gross_refunds."),
            ("net_takings", "net_sales - net_refunds."),
            ("vat_takings", "VAT of the takings: vat_sales - vat_refunds."),
            (
                "roundoff",
                "Cash round-off (moneyroundoff), signed; not in the takings. The day's payments "
                "(v_payment_mix net_amount over the payment types) add up to gross_takings + "
                "roundoff (+ US-style sales tax, moneysummarysalestax, where it applies).",
            ),
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
            ("business_date", _AGGREGATION_DAY),
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
            (
                "cash_difference",
                "counted_cash - expected_cash (the vendor's moneycash_diff): positive when the "
                "drawer held more than expected, negative when it was short.",
            ),
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
        "Per register: its last z-report and journal entry, and how many days it is silent "
        "(a listed register that never reported: since it was first listed) as far as the "
        "sync saw it: up to synced_until, so a register no longer synced is not read as silent.",
        (
            ("registerid", "The register."),
            ("site_id", "The site that lists it (NULL if not listed)."),
            (
                "store_id",
                "The store of its last z-report (last_zreportid; NO_STORE: it has none), so a "
                "register that moved is in its new store; without z-reports, "
                "its store as v_registers gives it (NO_STORE for none) once the warehouses and "
                "stores streams are synced; NULL when neither is known.",
            ),
            ("last_zreportid", "Its highest z-report number loaded."),
            ("last_z_report_at", "When its last z-report was created (UTC)."),
            ("last_journal_at", "When its last journal entry was created (UTC)."),
            ("last_activity_at", "The later of the two (UTC); NULL: it never reported."),
            (
                "silent_since",
                "last_activity_at; for a register that never reported, when a listing first "
                "showed it (cash_registers.first_seen_at, UTC).",
            ),
            (
                "days_silent",
                "Whole days from silent_since to synced_until (0: it reported after); NULL "
                "with synced_until: silence is counted only while the register was synced.",
            ),
            (
                "synced_until",
                "Up to when its silence is known (UTC): the later of the last good sync of "
                "its journal (sync_state) and of the POS z-reports (read for the whole "
                "account). It stops when neither is synced any more (a register of a site "
                "taken out of SITOO_SITE_IDS where the z-reports are not synced, say); NULL: "
                "neither was ever synced.",
            ),
            (
                "days_unsynced",
                "Whole days since synced_until, at query time: 0 while it is synced; more: "
                "the sync stopped, not necessarily the register.",
            ),
            ("missing_since", "Since when the register listing no longer shows it (UTC)."),
        ),
        {
            "cash_registers": (
                "registerid",
                "site_id",
                "warehouseid",
                "first_seen_at",
                "missing_since",
            ),
            "pos_z_reports": ("registerid", "zreportid", "datecreated", "store_id"),
            "journal_entries": ("registerid", "datecreated"),
            "sync_state": ("stream", "partition_key", "last_success_at"),
        },
        _register_activity,
        joins={
            "warehouses": ("site_id", "warehouseid", "storeid"),
            "stores": ("site_id", "storeid", "externalid"),
        },
    ),
    View(
        "v_product_sales",
        "Sales per product, store, local day and currency from the journal's receipt items "
        "(items that name no product: per SKU); refunds subtracted, practice receipts left out.",
        (
            (
                "productid",
                "The product's ID in Sitoo, an integer as products.productid and "
                "order_items.productid (join on it); NULL where the receipt's item-productid "
                "is no whole number.",
            ),
            ("sku", "The product's SKU."),
            ("name", "The product's name."),
            ("product_group", "The product group."),
            ("store_id", "The store; NO_STORE for registers without one."),
            (
                "business_date",
                "The local day of the receipts (journal_receipts.business_date): in the "
                "register's time zone, else its site's.",
            ),
            ("currencycode", "Currency of the amount."),
            (
                "quantity",
                "Units sold minus units refunded (journal_receipt_items.quantity_signed: the "
                "items' count, pieces; a weighed item counts 1).",
            ),
            (
                "amount_incl_vat",
                "Row totals incl. VAT after discounts, refunds subtracted "
                "(journal_receipt_items.moneyrowprice_signed).",
            ),
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
                "quantity_signed",
                "moneyrowprice_signed",
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
        backfills=ITEM_BACKFILLS,
    ),
    View(
        "v_daily_order_sales",
        "Sales per store, local day and currency from closed orders (POS and web), refunds "
        "netted off (a refund is an order of its own with negative amounts).",
        (
            (
                "store_id",
                "additionaldata store-externalid, else the order's warehouse's store "
                "(stores.externalid, as z-reports' store_id); NO_STORE for neither.",
            ),
            ("business_date", "The order's local day (orders.business_date)."),
            ("currencycode", "Currency of every amount on the row; never sum across it."),
            ("gross_sales", "Line totals incl. VAT, refunds subtracted."),
            ("net_sales", "Line totals excl. VAT, refunds subtracted."),
            ("vat_sales", "VAT of the lines, refunds subtracted."),
            ("net_refunds", "Refunded line totals excl. VAT, positive."),
            ("orders", "Closed orders, refunds included."),
            ("refund_orders", "Refund orders (creditorderid set)."),
        ),
        {
            "orders": (
                "orderid",
                "site_id",
                "warehouseid",
                "store_externalid",
                "business_date",
                "currencycode",
                "creditorderid",
                "orderstateid",
            ),
            "order_items": ("orderid", "moneyitemtotal_net", "moneyitemtotal_vat"),
            "warehouses": ("site_id", "warehouseid", "storeid"),
            "stores": ("site_id", "storeid", "externalid"),
        },
        _daily_order_sales,
    ),
    View(
        "v_stock_levels",
        "Stock per warehouse and SKU with its product and store: on hand, reserved, "
        "available and the stock value, of listed rows only, so sums are today's stock. A "
        "warehouse no longer listed, and a stock row no longer listed (its product deleted, "
        "or the row removed: warehouse_items.missing_since set), are left out; their rows "
        "stay in warehouse_items.",
        (
            ("site_id", "The site the warehouse is listed under."),
            ("warehouseid", "The warehouse."),
            ("warehouse_name", "The warehouse's name."),
            ("store_id", "The warehouse's store (stores.externalid); NO_STORE for none."),
            ("sku", "The product's SKU."),
            (
                "productid",
                "The live product of the SKU on the site (NULL when none is listed: a deleted "
                "product is not named); of several live products with the SKU, the lowest "
                "productid. Each stock row appears once.",
            ),
            ("title", "That product's title."),
            ("on_hand", "Units on hand (as of synced_at)."),
            (
                "reserved",
                "Units reserved by open orders, as of read_at: a reservation moves no "
                "transaction, so only a full read of the warehouse (every "
                "SITOO_WAREHOUSE_ITEMS_SNAPSHOT_HOURS) or a transaction on the row reads it.",
            ),
            ("available", "Units available: on hand less reserved, as of read_at."),
            ("currencycode", "Currency of stock_value (the warehouse's)."),
            ("stock_value", "Value of the units on hand (as of synced_at)."),
            (
                "changed_at",
                "When a warehouse transaction last changed the row (UTC); a reservation does "
                "not move it.",
            ),
            (
                "synced_at",
                "When a tick last read the warehouse's stock well (sync_state, UTC): on_hand "
                "and stock_value are as of then (every transaction is read by the next tick). "
                "Long past: its sync stopped (its site taken out of SITOO_SITE_IDS) or fails, "
                "so they are not today's; NULL: never recorded.",
            ),
            (
                "read_at",
                "When a tick last read this row (UTC): reserved and available are as of then, "
                "up to SITOO_WAREHOUSE_ITEMS_SNAPSHOT_HOURS before synced_at.",
            ),
        ),
        {
            "warehouse_items": (
                "site_id",
                "warehouseid",
                "sku",
                "decimaltotal",
                "decimalreserved",
                "decimalavailable",
                "moneytotal",
                "datelastmodified",
                "missing_since",
                "_loaded_at",
            ),
            "warehouses": (
                "site_id",
                "warehouseid",
                "name",
                "storeid",
                "currencycode",
                "missing_since",
            ),
            "stores": ("site_id", "storeid", "externalid"),
            "products": ("site_id", "sku", "productid", "title", "missing_since"),
            "sync_state": ("stream", "partition_key", "last_success_at"),
        },
        _stock_levels,
    ),
    View(
        "v_registers",
        "Every cash register with its store: the register's warehouse names the store "
        "(cash_registers.warehouseid -> warehouses.storeid -> stores).",
        (
            ("registerid", "The register."),
            ("site_id", "The site that lists it."),
            ("warehouseid", "The warehouse it sells from."),
            ("store_id", "Its store's external ID (as z-reports' store_id); NO_STORE for none."),
            ("store_name", "Its store's name."),
            ("currencycode", "The register's currency."),
            ("first_seen_at", "When a listing first showed it (UTC)."),
            ("last_seen_at", "When a listing last showed it (UTC)."),
            ("missing_since", "Since when listings no longer show it (UTC); NULL: listed."),
        ),
        {
            "cash_registers": (
                "registerid",
                "site_id",
                "warehouseid",
                "currencycode",
                "first_seen_at",
                "last_seen_at",
                "missing_since",
            ),
            "warehouses": ("site_id", "warehouseid", "storeid"),
            "stores": ("site_id", "storeid", "externalid", "name"),
        },
        _registers,
    ),
)
