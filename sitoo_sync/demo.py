"""`sitoo-sync demo`: the whole product in one minute, with no account and no network.

Starts the simulator on a free loopback port, syncs it into a DuckDB file exactly as a real
run would, then reads the file back: rows per table, sales per store checked against the
simulator's own totals, rejects, and SQL to try next.
"""

from __future__ import annotations

import sys
import tempfile
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from pydantic import SecretStr

from sitoo_sync.api.client import make_client
from sitoo_sync.demo_retail import RetailTruth, retail_lines
from sitoo_sync.errors import ConfigError, WarehouseError
from sitoo_sync.progress import Progress, plural
from sitoo_sync.settings import Settings
from sitoo_sync.simulator import FaultPlan, SimConfig, Simulator
from sitoo_sync.streams import STREAMS, select_streams
from sitoo_sync.streams.base import Stream
from sitoo_sync.sync import RunReport, run_once
from sitoo_sync.warehouse import duckdb_file_has_table, new_duckdb_file, open_warehouse
from sitoo_sync.warehouse.base import SYSTEM_TABLES, Warehouse

NEXT_SQL = """\
-- Takings per store and local day, in each store's currency (refunds subtracted):
SELECT business_date, store_name, currencycode, gross_takings, net_takings, receipts
FROM v_daily_store_sales ORDER BY business_date DESC, store_id LIMIT 10;

-- Payment mix, per currency:
SELECT currencycode, payment, sum(net_amount) AS paid
FROM v_payment_mix GROUP BY currencycode, payment ORDER BY currencycode, paid DESC;

-- The largest cash differences at closing, ten per currency:
SELECT currencycode, store_id, registerid, closed_at, cash_difference FROM v_cash_differences
QUALIFY row_number() OVER (PARTITION BY currencycode ORDER BY abs(cash_difference) DESC) <= 10
ORDER BY currencycode, abs(cash_difference) DESC;

-- Best sellers, ten per currency (money is ranked within its currency), refunds netted off:
SELECT currencycode, sku, name, sum(quantity) AS units, sum(amount_incl_vat) AS amount
FROM v_product_sales GROUP BY currencycode, sku, name
QUALIFY row_number() OVER (PARTITION BY currencycode ORDER BY amount DESC) <= 10
ORDER BY currencycode, amount DESC;

-- Sales from orders (POS and web) per store and day, and what is left in stock:
SELECT business_date, store_id, currencycode, net_sales, orders
FROM v_daily_order_sales ORDER BY business_date DESC, store_id LIMIT 10;
SELECT store_id, currencycode, sum(stock_value) AS value, sum(available) AS units
FROM v_stock_levels GROUP BY store_id, currencycode ORDER BY store_id;

-- What every table and column means (also docs/tables.md, or `sitoo-sync docs`):
SELECT table_name, column_name, comment FROM duckdb_columns()
WHERE table_name = 'journal_receipts';

-- What was rejected, and why:
SELECT stream, record_key, reason FROM rejects;"""


def stream_lines(report: RunReport, streams: list[Stream], counts: dict[str, int]) -> list[str]:
    """One line per stream: its status, what it fetched, and what the file now holds, records
    of the stream (z-reports, entries, registers) apart from the rows of their child tables."""
    lines: list[str] = []
    for stream in streams:
        parts = [r for r in report.results if r.stream == stream.name]
        if not parts:
            continue
        parent = stream.parent
        children = sum(counts.get(t.name, 0) for t in stream.tables if t.is_child)
        kind = stream.partitions.kind
        where = f"{kind} {parts[0].partition}" if len(parts) == 1 else plural(len(parts), kind)
        statuses = ", ".join(sorted({r.status for r in parts}))
        line = (
            f"{stream.name} ({where}): {statuses}, "
            f"{plural(report.stream_requests(stream.name), 'request')}; the file holds "
            f"{plural(counts.get(parent.name, 0), 'record')} in {parent.name}"
        )
        if children:
            line += f" and {plural(children, 'row')} in its child tables"
        rejects = sum(r.rejects for r in parts)
        if rejects:
            line += f"; {plural(rejects, 'record')} rejected (see the rejects table)"
        lines.append(line)
    return lines


#: The table that marks a DuckDB file as a demo's: the next demo may replace that file.
DEMO_MARK = "sitoo_demo"


def fresh_demo_file(db: Path, *, seed: int, days: int) -> None:
    """Make `db` a new, empty demo file, replacing a previous demo's.

    The simulated world is made relative to the moment it starts, so a previous demo's rows
    (another day, seed or --days) would not add up with this one's: sales per store would
    not match and `verify` would find gaps. A file the demo did not make (no `sitoo_demo`
    table: a real warehouse, say) is refused, never touched.
    """
    if not db.parent.is_dir():
        raise ConfigError(f"--db: the directory {db.parent} does not exist (create it first)")
    if db.exists():
        try:
            marked = duckdb_file_has_table(db, DEMO_MARK)
        except WarehouseError as exc:
            raise ConfigError(
                f"--db: {exc}; the demo writes a fresh file: pass another --db"
            ) from None
        if not marked:
            raise ConfigError(
                f"--db: {db} is not a file an earlier demo wrote; the demo writes a fresh "
                "file each time and never replaces one it did not make: pass another --db"
            )
        locks = [db.with_name(f"{db.name}.{name}.lock") for name in STREAMS]  # its own only
        for old in (db, db.with_name(f"{db.name}.wal"), *locks):
            try:
                old.unlink(missing_ok=True)
            except OSError as exc:
                raise _unwritable(db, exc) from None
    try:  # a directory it cannot write: one line here, not the engine's error (warehouse/)
        with tempfile.TemporaryFile(dir=db.parent):
            pass
    except OSError as exc:
        raise _unwritable(db, exc) from None
    new_duckdb_file(db, DEMO_MARK, {"seed": seed, "days": days, "made_at": datetime.now(UTC)})


def _unwritable(db: Path, exc: BaseException) -> ConfigError:
    """One line for a --db the demo cannot write (a read-only directory or disk, say)."""
    reason = getattr(exc, "strerror", None) or str(exc).splitlines()[0]
    return ConfigError(
        f"--db: cannot write {db}: {reason}; pass a --db in a directory you can write to"
    )


def store_report_lines(warehouse: Warehouse) -> list[str]:
    """The store z-reports: how many, over which days, and what they list."""
    reports, days, first, last = warehouse.query(
        "SELECT count(*), count(DISTINCT day_created), min(day_created), max(day_created) "
        "FROM store_z_reports"
    )[0]
    final = warehouse.query("SELECT cursor FROM sync_state WHERE stream = 'store_z_reports'")
    return [
        f"Store z-reports: {reports} (one per store and day) over {days} days, "
        f"{first} to {last}; final through {final[0][0] if final else '-'}",
        f"  {listed_line(warehouse)}",
    ]


def listed_line(warehouse: Warehouse) -> str:
    """What the store z-reports list: how many POS z-reports, and how many of those the
    file lacks (the store aggregation lists every closing, those the load rejected too)."""
    q = warehouse.qualified
    [(listed, missing)] = warehouse.query(
        f"SELECT count(*), count(*) - count(p.registerid) FROM {q('store_z_report_registers')} r "
        f"LEFT JOIN {q('pos_z_reports')} p "
        f"ON p.registerid = r.registerid AND p.zreportid = r.zreportid"
    )
    line = f"They list {plural(int(listed), 'POS z-report')}"
    if not missing:
        return f"{line}, every one in pos_z_reports"
    [(rejected,)] = warehouse.query(
        f"SELECT count(*) FROM {q('rejects')} WHERE stream = 'pos_z_reports'"
    )
    return (
        f"{line}; {missing:,} of them not in pos_z_reports (the load rejected "
        f"{plural(int(rejected), 'POS z-report')}, see the rejects table; verify names each "
        "under store_membership)"
    )


def run_demo(settings: Settings, *, db: Path, days: int, seed: int, chaos: bool) -> int:
    """Run the demo into `db`, made fresh by `fresh_demo_file` first; returns the exit code."""
    faults = FaultPlan(error_rate=0.05 if chaos else 0.0)
    config = SimConfig(seed=seed, days=days, malformed_every=97)
    with Simulator.create(config, faults=faults) as sim:
        demo_settings = settings.model_copy(
            update={
                "api_id": sim.api_id,
                "api_password": SecretStr(sim.password),
                "account_id": None,
                "api_base_url": f"{sim.base_url}/v2/accounts/{{account_id}}",
                "journals_base_url": sim.journals_url,
                "zreports_base_url": None,
                "site_ids": sim.world.site_ids(),
                "target_url": f"duckdb:///{db}",
                "streams": None,
                "http_backoff_base_seconds": 0.05,
            }
        )
        print(f"Simulated Sitoo API on {sim.base_url}: {len(sim.world.all_reports())} z-reports")
        print(f"Syncing into {db} ...")
        started = time.monotonic()
        warehouse = open_warehouse(demo_settings.target_url)
        streams = select_streams(None)
        with make_client(demo_settings) as client:
            progress = Progress(sys.stderr)
            report = run_once(demo_settings, warehouse, client, streams, on_window=progress)
            retries = sum(client.retries.values())
        progress.done()
        elapsed = time.monotonic() - started
        print(f"Done in {elapsed:.1f}s ({plural(retries, 'retried request')}).\n")
        truth = {
            k or "NO_STORE": Decimal(v) for k, v in sim.world.expected_sales_by_store().items()
        }
        retail_truth = RetailTruth.of(sim.rest)

    warehouse = open_warehouse(f"duckdb:///{db}")
    try:
        counts = warehouse.table_counts([*SYSTEM_TABLES, *(t for s in streams for t in s.tables)])
        print("Streams:")
        for line in stream_lines(report, streams, counts):
            print(f"  {line}")
        print()
        print("Rows per table:")
        for name, count in counts.items():
            print(f"  {name:<36} {count:>9,}")
        sales = warehouse.query(
            "SELECT coalesce(store_id, 'NO_STORE'), coalesce(store_name, '(no store)'), "
            "currencycode, count(*), sum(moneysalestotal) FROM pos_z_reports "
            "GROUP BY ALL ORDER BY 1"
        )
        store_lines = store_report_lines(warehouse)
        retail, retail_matched = retail_lines(warehouse, retail_truth)
    finally:
        warehouse.close()
    print("\nSales per store (sum of moneysalestotal):")
    matched = True
    for store_id, name, currency, n, total in sales:
        ok = truth.get(store_id) == total
        matched &= ok
        mark = "matches the simulator" if ok else f"simulator says {truth.get(store_id)}"
        print(f"  {store_id:<9} {name:<26} {n:>5} reports {total:>14,} {currency}  {mark}")
    print("\n" + "\n".join(store_lines))
    print()
    for line in retail:
        print(line)
    matched &= retail_matched
    print("\nTry next, with the duckdb CLI (duckdb.org) or the Python that runs sitoo-sync:")
    print(f"  duckdb {db} 'SHOW TABLES'")
    print(
        f"  {sys.executable} -c \"import duckdb; duckdb.connect('{db}', read_only=True)"
        ".sql('SHOW TABLES').show()\"\n"
    )
    print(NEXT_SQL)
    print_verify_summary(settings, db)
    return 0 if report.ok and matched else 1


def print_verify_summary(settings: Settings, db: Path) -> None:
    """End with what `sitoo-sync verify` finds (the demo's rejects and cash differences)."""
    from sitoo_sync.verify import Scope, run_verify
    from sitoo_sync.verify.report import summary_lines

    warehouse = open_warehouse(f"duckdb:///{db}")
    try:
        run = run_verify(warehouse, Scope(silent_days=settings.verify_silent_days))
    finally:
        warehouse.close()
    print(f"\nSITOO_TARGET_URL=duckdb:///{db} sitoo-sync verify says (details in verify_findings):")
    for line in summary_lines(run):
        print(f"  {line}")
