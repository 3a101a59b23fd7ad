"""Adversarial crash review: `sitoo-sync run --once` killed with SIGKILL at chosen instants,
the simulator's data changing between the runs, then run again, equals a clean run.

The instant is chosen in the child itself, deterministically: `CHILD` wraps the warehouse
seam's writes (a cursor moved, rows upserted, missing marks, outcomes, a transaction
committed, the schema's upkeep, the DuckDB file let go to readers) and kills its own
process with SIGKILL before or after the Nth call of one of them. That aims each kill at a
window between two writes that must be atomic, where a timed kill would land by chance.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from sitoo_sync.api.client import make_client
from sitoo_sync.reset import reset_stream
from sitoo_sync.simulator import SimConfig, Simulator
from sitoo_sync.streams import STREAMS, select_streams
from sitoo_sync.sync import run_once
from sitoo_sync.warehouse import open_warehouse
from sitoo_sync.warehouse.base import REJECTS
from tests.support import PipeLines, settings_for
from tests.targets import Target, target_for

#: The child: wraps the seam's writes, kills itself at CRASH_AT ("method:n:before|after"),
#: else writes how often each was called to CRASH_COUNTS (a file, to aim new instants);
#: then runs the CLI with its argv.
CHILD = r"""
import atexit, contextlib, functools, json, os, signal, sys, threading
from sitoo_sync.warehouse import duckdb as duck
from sitoo_sync.warehouse.duckdb import DuckDBWarehouse, _Turns
from sitoo_sync.warehouse.sqla import SqlWarehouse

at = os.environ.get("CRASH_AT", "")
method, n, when = (at.split(":") + ["", "0", "after"])[:3] if at else ("", "0", "")
n = int(n)
counts = {}
lock = threading.Lock()
if os.environ.get("CRASH_HOLD_SECONDS"):
    duck.HOLD_SECONDS = float(os.environ["CRASH_HOLD_SECONDS"])
    duck.GAP_SECONDS = 0.05

def tick(name):
    with lock:
        counts[name] = counts.get(name, 0) + 1
        return counts[name]

def die():
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)

def wrap(cls, name):
    orig = getattr(cls, name)
    if name == "transaction":
        @contextlib.contextmanager
        def txn(self, *a, **k):
            with orig(self, *a, **k):
                yield
            if tick(name) == n and name == method:
                die()
        setattr(cls, name, txn)
        return
    @functools.wraps(orig)
    def inner(self, *a, **k):
        i = tick(name)
        if name == method and i == n and when == "before":
            die()
        out = orig(self, *a, **k)
        if name == method and i == n and when == "after":
            die()
        return out
    setattr(cls, name, inner)

for cls in (DuckDBWarehouse, SqlWarehouse):
    for name in ("set_cursor", "set_cursors", "mark_missing", "record_outcome",
                 "record_outcomes", "upsert", "insert", "replace_children", "add_rejects",
                 "delete_rows", "ensure_schema", "transaction", "execute"):
        if hasattr(cls, name):
            wrap(cls, name)
wrap(_Turns, "_release")

def report():
    path = os.environ.get("CRASH_COUNTS")
    if path:
        with open(path, "w") as f:
            json.dump(counts, f)
atexit.register(report)

from sitoo_sync.cli import main
sys.exit(main(sys.argv[1:]))
"""

#: Columns stamped with the tick's own time: compared by whether they are set.
TICK_TIMES = frozenset({"missing_since", "first_seen_at", "last_seen_at"})


def child(
    sim: Simulator,
    target: Target,
    crash_at: str | None,
    *args: str,
    **extra: str,
) -> subprocess.Popen[str]:
    """`sitoo-sync <args>` (default `run --once`) in a child that kills itself at
    `crash_at` (None: runs through)."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("SITOO_", "CRASH_"))},
        **sim.settings_env(),
        **target.env(),
        "SITOO_LOG_FORMAT": "json",
        "SITOO_HTTP_BACKOFF_BASE_SECONDS": "0.01",
        "SITOO_HTTP_BACKOFF_MAX_SECONDS": "0.05",
        **extra,
    }
    if crash_at:
        env["CRASH_AT"] = crash_at
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, *(args or ("run", "--once"))],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def run_child(
    sim: Simulator, target: Target, crash_at: str | None, *args: str, **extra: str
) -> tuple[int, list[str]]:
    """Run `child` to its end: (exit code, its log lines)."""
    proc = child(sim, target, crash_at, *args, **extra)
    log = PipeLines(proc.stderr)
    code = proc.wait(timeout=240)
    return code, log.finish()


def killed_or_done(code: int, lines: Sequence[str], crash_at: str | None) -> bool:
    """Whether the child was killed (True) or finished well (False); anything else fails."""
    if code == -signal.SIGKILL:
        return True
    assert code == 0, f"{crash_at}: exit {code}\n{''.join(lines[-15:])}"
    return False


def comparable(target: Target, names: Sequence[str]) -> dict[str, Counter[tuple[Any, ...]]]:
    """Every table of `names` (and the rejects) as a multiset, tick times as set or not."""
    out: dict[str, Counter[tuple[Any, ...]]] = {}
    tables = [table for name in names for table in STREAMS[name].tables]
    read = target.tables_rows([*tables, REJECTS])
    for table in tables:
        columns = [c for c in table.column_names if c not in ("_loaded_at", "_run_id")]
        rows = read[table.name]
        out[table.name] = Counter(
            tuple(
                (v is not None) if c in TICK_TIMES else v for c, v in zip(columns, row, strict=True)
            )
            for row in rows
        )
    out[REJECTS.name] = Counter(r[:5] for r in read[REJECTS.name])
    return out


def assert_same(crashed: Target, clean: Target, names: Sequence[str]) -> None:
    """The crashed target's tables and rejects equal the clean one's, table by table."""
    got, want = comparable(crashed, names), comparable(clean, names)
    for table in want:
        extra, lacking = got[table] - want[table], want[table] - got[table]
        why = f"{table}: e.g. extra {list(extra)[:2]} lacking {list(lacking)[:2]}"
        assert sum(extra.values()) == 0, why
        assert sum(lacking.values()) == 0, why


def clean_sync(
    sim: Simulator, target: Target, tmp: Path, names: Sequence[str], **opts: Any
) -> None:
    """One tick of `names` in this process into `target`, on the real clock as a child's."""
    settings = settings_for(
        sim, tmp / "unused.duckdb", streams=list(names), **target.settings(), **opts
    )
    warehouse = open_warehouse(target.url, schema=target.schema)
    with make_client(settings, sleep=lambda _s: None) as client:
        report = run_once(settings, warehouse, client, select_streams(list(names)))
    assert report.ok, report.results


def cursors(target: Target, stream: str) -> dict[str, str | None]:
    """The stored cursors of `stream`."""
    warehouse = open_warehouse(target.url, schema=target.schema)
    try:
        return {s.partition: s.cursor for s in warehouse.states() if s.stream == stream}
    finally:
        warehouse.close()


def age_cursors(target: Target, stream: str, seconds: int) -> None:
    """Move the times a modified feed's cursors hold (`*_at`) `seconds` back, as if that
    long had passed: its snapshot and sweep fall due."""
    warehouse = open_warehouse(target.url, schema=target.schema)
    try:
        for partition, cursor in cursors(target, stream).items():
            state = json.loads(cursor or "{}")
            for name in ("snapshot_at", "swept_at", "listed_at"):
                if isinstance(state.get(name), int):
                    state[name] -= seconds
            warehouse.set_cursor(stream, partition, json.dumps(state), rows=0, windows=0)
    finally:
        warehouse.close()


def crash_chain(
    sim: Simulator,
    crashed: Target,
    points: Sequence[str],
    change: Callable[[int], None],
    **extra: str,
) -> int:
    """Run the child killed at each of `points` in turn, `change(i)` the simulator's data
    before the i-th run, then once more through; how many runs were killed."""
    kills = 0
    for i, point in enumerate(points):
        change(i)
        code, lines = run_child(sim, crashed, point, **extra)
        kills += killed_or_done(code, lines, point)
    change(len(points))
    code, lines = run_child(sim, crashed, None, **extra)
    assert not killed_or_done(code, lines, None)
    return kills


def store_day(sim: Simulator, days: int) -> str:
    """The day `days` before the simulated world's now, as a stream's start option."""
    return (
        (datetime.fromtimestamp(sim.world.config.now, UTC) - timedelta(days=days))
        .date()
        .isoformat()
    )


# ---- the defect: a sweep's end committed apart from its marks --------------------------------

SWEPT = ["products", "warehouse_items"]


@pytest.mark.slow
@pytest.mark.parametrize("target_name", ["duckdb"])
def test_a_sweep_killed_before_its_missing_marks_marks_them_on_the_rerun(
    tmp_path: Path, target_name: str
) -> None:
    """A kill after a sweep's last page committed its cursor but before the missing marks
    (one commit per window) leaves the sweep due: the rerun marks the deleted products and
    removed stock rows, as a clean run does, instead of leaving them listed for hours."""
    with (
        Simulator.create(SimConfig(seed=21, days=3, malformed_every=0)) as sim,
        target_for(target_name, tmp_path) as clean,
        target_for(target_name, tmp_path) as crashed,
    ):
        for target in (clean, crashed):
            clean_sync(sim, target, tmp_path, SWEPT)
            for name in SWEPT:
                age_cursors(target, name, 7 * 3600)  # the sweeps are due again
        for wid, sku in sorted(sim.rest.stock.items)[::7]:
            sim.rest.remove_item(wid, sku)
        for productid in sorted(sim.rest.catalog.products)[::9]:
            sim.rest.delete_product(productid)
        env = {"SITOO_STREAMS": ",".join(SWEPT), "SITOO_LOAD_BATCH_SECONDS": "0"}
        code, lines = run_child(sim, crashed, "mark_missing:1:before", **env)
        assert killed_or_done(code, lines, "mark_missing:1:before")
        code, lines = run_child(sim, crashed, None, **env)
        assert not killed_or_done(code, lines, None)
        clean_sync(sim, clean, tmp_path, SWEPT)
        assert_same(crashed, clean, SWEPT)


# ---- full listings with missing marks, the modified feeds' snapshots and sweeps ------------

CATALOGUE = [
    "stores",
    "warehouses",
    "pos_payment_types",
    "manufacturers",
    "users",
    "products",
    "warehouse_items",
]
#: Instants across a catalogue tick: the schema's upkeep, rows written before their cursor,
#: a cursor written before its commit, commits, missing marks before and after, outcomes.
CATALOGUE_KILLS = [
    "ensure_schema:1:after",
    "set_cursors:5:before",
    "mark_missing:2:before",
    "mark_missing:13:before",  # a modified feed's sweep done, its marks not
    "mark_missing:6:after",
    "record_outcomes:2:before",
]


def catalogue_changes(sim: Simulator) -> Callable[[int], None]:
    """What changes before each run: first rows go (stock rows removed, products deleted,
    a store, a staff user and a payment type no longer listed); then products and stock
    change under the modified feeds, and the store, user and payment type come back."""
    rest, catalog = sim.rest, sim.rest.catalog
    popped: dict[str, tuple[list[Any], Any]] = {}

    def change(i: int) -> None:
        now = rest.now
        if i == 0:
            for wid, sku in sorted(rest.stock.items)[::7]:
                rest.remove_item(wid, sku)
            for productid in sorted(catalog.products)[::9]:
                rest.delete_product(productid)
            staff = [u for u in rest.users if u["role"] is not None]
            for name, where, item in (
                ("store", catalog.stores, catalog.stores[0]),
                ("user", rest.users, staff[1]),
                ("payment", catalog.payment_types[1], catalog.payment_types[1][-1]),
            ):
                where.remove(item)
                popped[name] = (where, item)
            return
        for productid in sorted(catalog.products)[i::11]:
            rest.touch_product(productid, title=f"changed {i}")
        (wid, sku), *_ = sorted(rest.stock.items)[i::13]
        site = next(w["eshopid"] for w in catalog.warehouses if w["warehouseid"] == wid)
        with rest.lock:
            rest.stock.transact(site, wid, 10, [(sku, 3)], now)
        if i == 3:
            where, item = popped.pop("store")
            where.append(item)
        if i == 5:
            for where, item in popped.values():
                where.append(item)
            popped.clear()

    return change


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("target_name", ["sqlite", "mysql"])
def test_a_catalogue_killed_at_each_kind_of_write_equals_a_clean_run(
    tmp_path: Path, target_name: str
) -> None:
    """Full listings with missing marks and the products' and stock's modified feeds, their
    snapshots and sweeps due, killed at seven instants (the schema's upkeep, rows before
    their cursor, a cursor before its commit, around the marks, before the outcomes) while
    rows go missing, change and come back: the last run leaves every table and the rejects
    as a clean run does."""
    with (
        Simulator.create(SimConfig(seed=23, days=3, malformed_every=0)) as sim,
        target_for(target_name, tmp_path) as clean,
        target_for(target_name, tmp_path) as crashed,
    ):
        for target in (clean, crashed):
            clean_sync(sim, target, tmp_path, CATALOGUE)
            for name in ("products", "warehouse_items"):
                age_cursors(target, name, 25 * 3600)  # snapshots and sweeps due
        env = {"SITOO_STREAMS": ",".join(CATALOGUE), "SITOO_LOAD_BATCH_SECONDS": "0"}
        kills = crash_chain(sim, crashed, CATALOGUE_KILLS, catalogue_changes(sim), **env)
        assert kills >= len(CATALOGUE_KILLS) - 1, "the instants missed the ticks"
        clean_sync(sim, clean, tmp_path, CATALOGUE)
        assert_same(crashed, clean, CATALOGUE)


# ---- sales: registers, journals, z-reports, keyset cursors ------------------------------------

SALES = [
    "cash_registers",
    "journal_entries",
    "pos_z_reports",
    "store_z_reports",
    "orders",
    "warehouse_transactions",
]
SALES_KILLS = [
    "ensure_schema:1:after",
    "set_cursors:2:before",
    "replace_children:9:before",
    "add_rejects:2:after",
    "transaction:14:after",
    "record_outcomes:2:after",
]


def sales_changes(sim: Simulator) -> Callable[[int], None]:
    """What changes before each run after the first: new and late z-reports (with their
    days' journals), an offline register's burst, new, late and settled orders, a new
    register; one run's site zones unreadable (503s); nothing faulty for the last run."""
    world, rest = sim.world, sim.rest

    def change(i: int) -> None:
        if i == 0:
            return
        now = world.config.now
        world.add_new_reports(2)
        world.add_late_report(now - 300)  # visible late, within the overlap
        register = world.registers[i % len(world.registers)]
        world.journal.offline_burst(register.registerid, 4, now - i)
        rest.catch_up()
        rest.add_orders(2)
        rest.add_orders(1, kind="pending")
        rest.add_late_order(now - 86_400)
        for orderid in rest.open_orders()[:2]:
            rest.settle(orderid)
        if i == 2:
            world.add_register(store_id="200")
        if i == 4:
            sim.faults.queue("503", times=40, path="/settings.json")
        if i == len(SALES_KILLS):
            sim.faults.clear()

    return change


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("target_name", ["mysql"])  # SQLite: the catalogue's (time budget)
def test_sales_killed_at_each_kind_of_write_equal_a_clean_run(
    tmp_path: Path, target_name: str
) -> None:
    """Registers, journals (site zones read lazily, once unreadable), POS and store
    z-reports and the keyset-paged orders (open ids kept in the cursor) and stock
    transactions, backfilled and then kept up while late data and settled orders arrive,
    killed at seven instants: the last run leaves every table and the rejects as one clean
    run over the final data does."""
    config = SimConfig(seed=29, days=4, registers_per_store=2, malformed_every=40)
    with (
        Simulator.create(config) as sim,
        target_for(target_name, tmp_path) as clean,
        target_for(target_name, tmp_path) as crashed,
    ):
        start = store_day(sim, 5)
        env = {
            "SITOO_STREAMS": ",".join(SALES),
            "SITOO_LOAD_BATCH_SECONDS": "0",
            "SITOO_ORDERS_PAGE_SIZE": "8",
            "SITOO_STORE_Z_REPORTS_START_DAY": start,
        }
        kills = crash_chain(sim, crashed, SALES_KILLS, sales_changes(sim), **env)
        assert kills >= len(SALES_KILLS) - 1, "the instants missed the ticks"
        options = {"store_z_reports": {"start_day": start}}
        clean_sync(sim, clean, tmp_path, SALES, stream_options=options)
        assert_same(crashed, clean, SALES)


# ---- DuckDB: the file let go to readers mid-tick; `reset` ------------------------------------

RESET = ["journal_entries", "pos_z_reports", "orders"]


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_duckdb_killed_while_letting_go_of_its_file_and_during_reset_equals_a_clean_run(
    tmp_path: Path,
) -> None:
    """A DuckDB tick killed while it lets go of the file to readers (every 0.3 s here) and
    a `reset --since` killed between two streams' partitions, or inside one partition's
    move, each then run again: the target equals one that ran, was reset and ran cleanly."""
    with (
        Simulator.create(SimConfig(seed=31, days=3, malformed_every=30)) as sim,
        target_for("duckdb", tmp_path) as clean,
        target_for("duckdb", tmp_path) as crashed,
    ):
        since = store_day(sim, 1)
        sim.faults.latency = 0.03  # a tick long enough to let go of the file a few times
        env = {
            "SITOO_STREAMS": ",".join(RESET),
            "SITOO_ORDERS_PAGE_SIZE": "8",
            "CRASH_HOLD_SECONDS": "0.3",
        }
        releases = ["_release:1:before", "_release:2:after", "transaction:3:after"]
        kills = crash_chain(sim, crashed, releases, lambda _i: None, **env)
        assert kills >= 2, "the file was never let go during a tick"
        # Inside the first partition's move; after the first partition's move committed.
        for name, point in (
            ("journal_entries", "set_cursor:1:after"),
            ("orders", "transaction:2:after"),
        ):
            code, lines = run_child(sim, crashed, point, "reset", name, "--since", since, **env)
            assert killed_or_done(code, lines, point), f"reset {name} ran through {point}"
            code, lines = run_child(sim, crashed, None, "reset", name, "--since", since, **env)
            assert not killed_or_done(code, lines, None)
        sim.world.add_new_reports(2)
        sim.rest.catch_up()
        assert crash_chain(sim, crashed, ["_release:1:after"], lambda _i: None, **env) == 1
        sim.faults.latency = 0.0

        clean_sync(sim, clean, tmp_path, RESET)
        settings = settings_for(sim, tmp_path / "unused.duckdb", **clean.settings())
        warehouse = open_warehouse(clean.url)
        try:
            for name in ("journal_entries", "orders"):
                reset_stream(settings, warehouse, STREAMS[name], since=date.fromisoformat(since))
        finally:
            warehouse.close()
        clean_sync(sim, clean, tmp_path, RESET)
        assert_same(crashed, clean, RESET)
