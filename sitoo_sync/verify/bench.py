"""`sitoo-sync bench --verify`: how long verify takes on a year of 300 registers.

The data is generated straight into a DuckDB file by DuckDB SQL (no simulator, no HTTP: a
year of a chain does not need a sync to exist), into the declared tables, with every figure
consistent the way a real register's are: 300 registers in 30 stores, one closing a day for
365 days (109,500 POS z-reports with VAT groups, product groups, payments and card
sub-payments), one store z-report per store and day listing its POS z-reports, with VAT
groups, product groups, payments and sub-payments summed from theirs, per opening
`receipts` journal receipts (one in ten a refund) plus the cash-start and cash-counted
events, and each receipt's closed POS order (2.19 million), which the orders check sums
per z-report period and matches to the receipts. Left out: the journal's cart, staff and
printout entries and the orders' items, which no check reads.
Then `verify` runs over the file, as the command does, and the time and findings (none on
this data) are printed.
"""

from __future__ import annotations

import tempfile
import time
from datetime import timedelta
from pathlib import Path

from sitoo_sync.normalize.journal_entries import TABLES as JOURNAL_TABLES
from sitoo_sync.normalize.orders import TABLES as ORDER_TABLES
from sitoo_sync.normalize.pos_z_reports import TABLES as POS_TABLES
from sitoo_sync.normalize.store_z_reports import TABLES as STORE_TABLES
from sitoo_sync.verify.run import Scope, run_verify
from sitoo_sync.warehouse import open_warehouse
from sitoo_sync.warehouse.base import Warehouse


def m(cents: str) -> str:
    """DuckDB SQL: integer cents as DECIMAL(18,2), exactly."""
    return f"CAST(CAST({cents} AS DECIMAL(18,0)) * 0.01 AS DECIMAL(18,2))"


def _sql(registers: int, days: int, receipts: int) -> list[str]:
    per = receipts + 2  # journal ids per opening: receipts, cash-start, cash-counted
    return [
        f"""CREATE TEMP TABLE rc AS SELECT r, d, k,
            1000 + (r * 7 + d * 13 + k * 31) % 5000 AS c, k % 10 = 0 AS refund
            FROM range(1, {registers + 1}) t1(r), range(0, {days}) t2(d),
                 range(1, {receipts + 1}) t3(k)""",
        """CREATE TEMP TABLE z AS SELECT r, d,
            printf('{REG-%04d}', r) AS registerid, d + 1 AS zreportid,
            'S' || CAST((r - 1) // 10 + 1 AS VARCHAR) AS store_id,
            TIMESTAMPTZ '2025-01-01 19:00:00+00' + to_days(CAST(d AS INTEGER))
                + to_minutes(CAST(r % 60 AS INTEGER)) AS closed,
            COALESCE(SUM(c) FILTER (WHERE NOT refund), 0) AS s,
            COALESCE(SUM(c) FILTER (WHERE refund), 0) AS f,
            COUNT(*) FILTER (WHERE NOT refund) AS ns, COUNT(*) FILTER (WHERE refund) AS nf
            FROM rc GROUP BY r, d""",
        """CREATE TEMP TABLE zz AS SELECT *, s * 3 // 5 AS g1, s - s * 3 // 5 AS g2,
            s * 3 // 10 AS cash, s - s * 3 // 10 AS card,
            SUM(s) OVER (PARTITION BY r ORDER BY d) AS gs,
            SUM(f) OVER (PARTITION BY r ORDER BY d) AS gf FROM z""",
        f"""INSERT INTO pos_z_reports (registerid, zreportid, registernumber, datecreated,
            dateopened, dateadded, store_id, currencycode, moneysalestotal, moneysalestotalnet,
            numsales, numsalesitems, moneyrefundtotal, moneyrefundtotalnet, numrefund,
            numrefunditems, moneyroundoff, moneysummarysales, moneysummaryrefund,
            moneysummarysubtotal, moneysummarysalestax, moneysummaryroundoff, moneysummarytotal,
            moneycash_in, moneycash_salesrefunds, moneycash_petty, moneycash_bank,
            moneycash_expected, moneycash_counted, moneycash_diff, moneycash_bankfinal,
            moneycash_out, numreceipts, numpractice, moneypractice, moneygrandtotalsales,
            moneygrandtotalrefund, moneygrandtotalnet)
            SELECT registerid, zreportid, r, closed, closed - INTERVAL 10 HOUR, closed, store_id,
            'SEK', {m("s")}, {m("g1 * 100 // 125 + g2 * 100 // 112")}, ns, ns, {m("f")},
            {m("f * 100 // 125")}, nf, nf, 0, {m("s")}, {m("f")}, {m("s - f")}, 0, 0,
            {m("s - f")}, 5000, {m("cash - f")}, 0, 0, {m("500000 + cash - f")},
            {m("500000 + cash - f")}, 0, 0, {m("500000 + cash - f")}, ns + nf, 0, 0,
            {m("gs")}, {m("gf")}, {m("gs - gf")} FROM zz""",
        f"""INSERT INTO pos_z_report_vat_groups (registerid, zreportid, section, position,
            vatvalue, moneytotal, moneytotalnet, moneytotalvat)
            SELECT registerid, zreportid, 'sales', 0, 25, {m("g1")}, {m("g1 * 100 // 125")},
                {m("g1 - g1 * 100 // 125")} FROM zz
            UNION ALL SELECT registerid, zreportid, 'sales', 1, 12, {m("g2")},
                {m("g2 * 100 // 112")}, {m("g2 - g2 * 100 // 112")} FROM zz
            UNION ALL SELECT registerid, zreportid, 'refund', 0, 25, {m("f")},
                {m("f * 100 // 125")}, {m("f - f * 100 // 125")} FROM zz WHERE f > 0""",
        f"""INSERT INTO pos_z_report_product_groups (registerid, zreportid, section, position,
            name, vatvalue, numtotal, moneytotal, moneytotalnet, moneytotalvat)
            SELECT registerid, zreportid, 'sales', 0, 'Clothing', 25, ns // 2, {m("g1")},
                {m("g1 * 100 // 125")}, {m("g1 - g1 * 100 // 125")} FROM zz
            UNION ALL SELECT registerid, zreportid, 'sales', 1, 'Food', 12, ns - ns // 2,
                {m("g2")}, {m("g2 * 100 // 112")}, {m("g2 - g2 * 100 // 112")} FROM zz
            UNION ALL SELECT registerid, zreportid, 'refund', 0, 'Clothing', 25, nf, {m("f")},
                {m("f * 100 // 125")}, {m("f - f * 100 // 125")} FROM zz WHERE f > 0""",
        f"""INSERT INTO pos_z_report_payments (registerid, zreportid, section, position, name,
            moneytotal)
            SELECT registerid, zreportid, 'sales', 0, 'Cash', {m("cash")} FROM zz
            UNION ALL SELECT registerid, zreportid, 'sales', 1, 'Card', {m("card")} FROM zz
            UNION ALL SELECT registerid, zreportid, 'refund', 0, 'Cash', {m("f")} FROM zz
                WHERE f > 0""",
        f"""INSERT INTO pos_z_report_subpayments (registerid, zreportid, section,
            payment_position, position, name, moneysubtotal)
            SELECT registerid, zreportid, 'sales', 1, 0, 'Visa', {m("card // 2")} FROM zz
            UNION ALL SELECT registerid, zreportid, 'sales', 1, 1, 'Mastercard',
                {m("card - card // 2")} FROM zz""",
        """INSERT INTO store_z_reports (store_zreport_id, store_id, currency_code, day_created,
            date_created, moneysalestotal, moneysalestotalnet, numsales, numsalesitems,
            moneyrefundtotal, moneyrefundtotalnet, numrefund, numrefunditems, moneyroundoff,
            moneysummarysales, moneysummaryrefund, moneysummarysubtotal, moneysummarysalestax,
            moneysummaryroundoff, moneysummarytotal, moneycash_in, moneycash_salesrefunds,
            moneycash_petty, moneycash_bank, moneycash_expected, moneycash_counted,
            moneycash_diff, moneycash_bankfinal, moneycash_out, numreceipts, numpractice,
            moneypractice)
            SELECT store_id || '/' || CAST(CAST(datecreated AS DATE) AS VARCHAR), store_id, 'SEK',
            CAST(datecreated AS DATE), max(datecreated), sum(moneysalestotal),
            sum(moneysalestotalnet), sum(numsales), sum(numsalesitems), sum(moneyrefundtotal),
            sum(moneyrefundtotalnet), sum(numrefund), sum(numrefunditems), sum(moneyroundoff),
            sum(moneysummarysales), sum(moneysummaryrefund), sum(moneysummarysubtotal),
            sum(moneysummarysalestax), sum(moneysummaryroundoff), sum(moneysummarytotal),
            sum(moneycash_in), sum(moneycash_salesrefunds), sum(moneycash_petty),
            sum(moneycash_bank), sum(moneycash_expected), sum(moneycash_counted),
            sum(moneycash_diff), sum(moneycash_bankfinal), sum(moneycash_out), sum(numreceipts),
            sum(numpractice), sum(moneypractice)
            FROM pos_z_reports GROUP BY store_id, CAST(datecreated AS DATE)""",
        """INSERT INTO store_z_report_registers (store_zreport_id, position, registerid,
            zreportid)
            SELECT store_id || '/' || CAST(CAST(datecreated AS DATE) AS VARCHAR),
            row_number() OVER (PARTITION BY store_id, CAST(datecreated AS DATE)
                ORDER BY registerid) - 1, registerid, zreportid FROM pos_z_reports""",
        *_store_lines(),
        f"""CREATE TEMP TABLE je AS
            SELECT z.registerid, z.d * {per} + rc.k AS id, 'receipt' AS type,
                z.closed - INTERVAL 10 HOUR + to_minutes(CAST(rc.k AS INTEGER)) AS ts,
                rc.refund, rc.c, z.store_id FROM rc JOIN z ON z.r = rc.r AND z.d = rc.d
            UNION ALL SELECT registerid, d * {per} + {receipts + 1}, 'cash-start',
                closed - INTERVAL 10 HOUR, NULL, 500000, store_id FROM z
            UNION ALL SELECT registerid, d * {per} + {receipts + 2}, 'cash-counted',
                closed - INTERVAL 1 MINUTE, NULL, 500000 + s * 3 // 10 - f, store_id FROM z""",
        """INSERT INTO journal_entries (registerid, id, type, datecreated, dateadded,
            ispractice) SELECT registerid, id, type, ts, ts, false FROM je""",
        f"""INSERT INTO journal_receipts (registerid, id, type, ispractice, datecreated,
            business_date, isrefund, receipt_id, store_id, moneytotal, moneytotal_signed)
            SELECT registerid, id, type, false, ts, CAST(ts AS DATE), refund,
            'R' || CAST(id AS VARCHAR), store_id, {m("c")},
            {m("CASE WHEN refund THEN -c ELSE c END")} FROM je WHERE type = 'receipt'""",
        # Each receipt's order: its items' net and VAT (25 %) add up to the receipt's total,
        # negative on a refund, as the z-report's sales and refunds are the period's orders.
        f"""INSERT INTO orders (orderid, orderdate, business_date, orderstateid, ordertypeid,
            currencycode, moneytotal_net, moneytotal_vat, store_externalid, registerid,
            pos_receiptid)
            SELECT row_number() OVER (ORDER BY ts, registerid), ts, CAST(ts AS DATE), 10, 10,
            'SEK', {m("sign * (c * 100 // 125)")}, {m("sign * (c - c * 100 // 125)")},
            store_id, registerid, 'R' || CAST(id AS VARCHAR)
            FROM (SELECT *, CASE WHEN refund THEN -1 ELSE 1 END AS sign FROM je)
            WHERE type = 'receipt'""",
        f"""INSERT INTO journal_cash_events (registerid, id, type, ispractice, datecreated,
            moneycash) SELECT registerid, id, type, false, ts, {m("c")} FROM je
            WHERE type <> 'receipt'""",
    ]


#: The store z-report id of POS z-report rows `p`: one per store and UTC day.
_STORE_REPORT = "p.store_id || '/' || CAST(CAST(p.datecreated AS DATE) AS VARCHAR)"

#: store_z_report_* child -> (its columns after the key, their values over the POS lines `c`)
_STORE_LINES = {
    "vat_groups": (
        "vatvalue, moneytotal, moneytotalnet, moneytotalvat",
        "any_value(c.vatvalue), sum(c.moneytotal), sum(c.moneytotalnet), sum(c.moneytotalvat)",
    ),
    "product_groups": (
        "name, vatvalue, numtotal, moneytotal, moneytotalnet, moneytotalvat",
        "any_value(c.name), any_value(c.vatvalue), sum(c.numtotal), sum(c.moneytotal), "
        "sum(c.moneytotalnet), sum(c.moneytotalvat)",
    ),
    "payments": ("name, moneytotal", "any_value(c.name), sum(c.moneytotal)"),
}


def _store_lines() -> list[str]:
    """The store z-reports' VAT groups, product groups, payments and sub-payments: the sums of
    their POS z-reports' lines of the same section and position (the same name or VAT rate
    in every report here), so the store reports' own line checks hold."""
    pos = "JOIN pos_z_reports p ON p.registerid = c.registerid AND p.zreportid = c.zreportid"
    out = [
        f"""INSERT INTO store_z_report_{kind} (store_zreport_id, currency_code, section,
            position, {columns})
            SELECT {_STORE_REPORT}, 'SEK', c.section, c.position, {values}
            FROM pos_z_report_{kind} c {pos}
            GROUP BY {_STORE_REPORT}, c.section, c.position"""
        for kind, (columns, values) in _STORE_LINES.items()
    ]
    out.append(
        f"""INSERT INTO store_z_report_subpayments (store_zreport_id, currency_code, section,
            payment_position, position, name, moneysubtotal)
            SELECT {_STORE_REPORT}, 'SEK', c.section, c.payment_position, c.position,
            any_value(c.name), sum(c.moneysubtotal) FROM pos_z_report_subpayments c {pos}
            GROUP BY {_STORE_REPORT}, c.section, c.payment_position, c.position"""
    )
    return out


def _last_days(warehouse: Warehouse, days: int) -> Scope:
    """The scope of the last `days` days of z-reports in the warehouse."""
    last = warehouse.query("SELECT max(datecreated) FROM pos_z_reports")[0][0]
    return Scope(since=last.date() - timedelta(days=days - 1))


def build(warehouse: Warehouse, registers: int, days: int, receipts: int) -> None:
    """The chain's `days` in `warehouse` (a DuckDB one), its tables created first."""
    warehouse.ensure_schema([*POS_TABLES, *STORE_TABLES, *JOURNAL_TABLES, *ORDER_TABLES])
    warehouse.allow_big_reads()  # a year in one transaction: no sync batch is as big
    with warehouse.transaction():
        for statement in _sql(registers, days, receipts):
            warehouse.execute(statement)


def run_verify_benchmark(registers: int = 300, days: int = 365, receipts: int = 20) -> int:
    """Build the year in a temporary DuckDB file, time `verify` over it, print the figures."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "year.duckdb"
        warehouse = open_warehouse(f"duckdb:///{path}")
        try:
            started = time.perf_counter()
            build(warehouse, registers, days, receipts)
            built = time.perf_counter() - started
            counts = {
                name: int(warehouse.query(f"SELECT count(*) FROM {name}")[0][0])
                for name in ("pos_z_reports", "store_z_reports", "journal_receipts", "orders")
            }
        finally:
            warehouse.close()
        print(
            f"built in {built:.1f}s: {registers} registers x {days} days = "
            f"{counts['pos_z_reports']:,} POS z-reports, {counts['store_z_reports']:,} store "
            f"z-reports, {counts['journal_receipts']:,} journal receipts, "
            f"{counts['orders']:,} orders "
            f"({path.stat().st_size / 1e6:.0f} MB)"
        )
        runs = [("whole year", Scope()), ("last 30 days", None)]
        for label, wanted in runs:
            warehouse = open_warehouse(f"duckdb:///{path}")
            try:
                scope = wanted or _last_days(warehouse, 30)
                started = time.perf_counter()
                run = run_verify(warehouse, scope)
                took = time.perf_counter() - started
            finally:
                warehouse.close()
            slowest = sorted(run.results, key=lambda r: -r.seconds)[:3]
            print(
                f"verify, {label}: {took:.2f}s, {len(run.findings)} findings; slowest: "
                + ", ".join(f"{r.check.name} {r.seconds:.2f}s" for r in slowest)
            )
    return 0
