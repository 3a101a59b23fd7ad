"""The schema revision: a warehouse records the newest sitoo-sync that upgraded it, an older
process refuses to write there, and a newer one upgrades it once (warehouse/catalog.py).

A process of an older revision is this code against a warehouse that records a newer one
(a row of `sync_schema` written as a newer version writes it, or this code at a revision
one higher, `newer`); revision 1's own steps are run against a warehouse as the version
before revisions left it: every table but `sync_schema`.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import mysql
from structlog.testing import capture_logs

from sitoo_sync import __version__
from sitoo_sync.cli import main
from sitoo_sync.dictionary import all_tables
from sitoo_sync.errors import SchemaTooNew
from sitoo_sync.normalize.columns import rows_to_arrow
from sitoo_sync.normalize.tables import Table
from sitoo_sync.service import Service
from sitoo_sync.simulator import Simulator
from sitoo_sync.streams import STREAMS
from sitoo_sync.views import VIEWS
from sitoo_sync.warehouse import catalog, open_warehouse, upgrade_steps
from sitoo_sync.warehouse.base import SYSTEM_TABLES
from sitoo_sync.warehouse.catalog import SYNC_SCHEMA
from sitoo_sync.warehouse.upgrade_steps import Step, Upgrade
from sitoo_sync.warehouse.views import Sql, plan_views
from tests.conftest import SyncFn
from tests.support import PipeLines, run_once_process, target_settings
from tests.targets import ALL_TARGETS, Target, target_for

#: The tables and views a tick keeps: every stream's.
TICK = [*SYSTEM_TABLES, *(t for s in STREAMS.values() for t in s.tables)]
REVISION = catalog.SCHEMA_REVISION
ITEMS = next(t for t in TICK if t.name == "journal_receipt_items")
RECEIPTS = next(t for t in TICK if t.name == "journal_receipts")
ORDERS = next(t for t in TICK if t.name == "orders")
REGISTER = "{2AA484B4-2B5F-55AB-128A-7DB46E573357}"
AT = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)

#: The fingerprint of the declarations (`declarations`) at each revision: see the test that
#: reads it. Change the one of the newest revision only while no version carrying it is
#: deployed anywhere; else bump catalog.SCHEMA_REVISION and add the new one.
FINGERPRINTS = {1: "1baf5956601888af"}


@pytest.fixture(params=ALL_TARGETS)
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    """Each target in turn (servers skip when CI did not provide them)."""
    with target_for(request.param, tmp_path) as t:
        yield t


def upkeep(target: Target, tables: list[Table] = TICK, *, views: bool = True) -> list[Any]:
    """A tick's schema upkeep, its steps over every declared table (without `views`:
    reset's); the events it logged."""
    warehouse = open_warehouse(target.url, schema=target.schema)
    try:
        with capture_logs() as logs:
            if views:
                warehouse.ensure_schema(tables, VIEWS, declared=all_tables())
            else:
                warehouse.ensure_schema(tables)
    finally:
        warehouse.close()
    return logs


def newer(monkeypatch: pytest.MonkeyPatch) -> int:
    """This code as the next revision, with no step of its own; that revision."""
    monkeypatch.setattr(catalog, "SCHEMA_REVISION", REVISION + 1)
    return REVISION + 1


def read(target: Target, sql: str) -> list[tuple[Any, ...]]:
    """What `sql` reads ({name} for a table's qualified name: `{sync_schema}`)."""
    warehouse = open_warehouse(target.url, schema=target.schema)
    try:
        names = {t.name: warehouse.qualified(t.name) for t in all_tables()}
        return warehouse.query(sql.format(**names))
    finally:
        warehouse.close()


def execute(target: Target, sql: str) -> None:
    """Run `sql` ({name} as in `read`) and commit."""
    warehouse = open_warehouse(target.url, schema=target.schema)
    try:
        names = {t.name: warehouse.qualified(t.name) for t in all_tables()}
        with warehouse.transaction():
            warehouse.execute(sql.format(**names))
    finally:
        warehouse.close()


def insert(target: Target, table: Table, rows: list[dict[str, Any]]) -> None:
    """`rows` into `table` (a column a row leaves out is NULL)."""
    warehouse = open_warehouse(target.url, schema=target.schema)
    try:
        data = rows_to_arrow(table, [tuple(r.get(c) for c in table.column_names) for r in rows])
        with warehouse.transaction():
            warehouse.insert(table, data)
    finally:
        warehouse.close()


def revisions(target: Target) -> list[int]:
    """The revisions `sync_schema` records."""
    return sorted(int(r[0]) for r in read(target, "SELECT revision FROM {sync_schema}"))


def recorded_by_a_newer_version(target: Target) -> int:
    """The warehouse as a version one revision newer leaves it; that revision."""
    upkeep(target)
    row = {"revision": REVISION + 1, "version": "9.9.9", "recorded_at": AT, "host": "new"}
    insert(target, SYNC_SCHEMA, [row])
    return REVISION + 1


def before_revisions(target: Target) -> None:
    """The warehouse as the version before revisions were recorded left it: every table of
    this one (none of revision 1's columns is new), and no `sync_schema`."""
    upkeep(target)
    execute(target, "DROP TABLE {sync_schema}")


def refusal(recorded: int) -> str:
    """The line an older process says."""
    return (
        f"this warehouse was upgraded by a newer sitoo-sync (schema revision {recorded}; "
        f"this is sitoo-sync {__version__}, revision {REVISION}): nothing was written; "
        "upgrade this process too (README, Upgrading)"
    )


def events(logs: list[Any], name: str) -> list[Any]:
    """The events called `name` among `logs`."""
    return [e for e in logs if e["event"] == name]


def as_json(value: Any) -> Any:
    """A JSON column's value as read: text on some targets, parsed on others."""
    return json.loads(value) if isinstance(value, str) else value


# ---- an older process -----------------------------------------------------------------


def test_an_older_process_is_refused_in_one_line_before_it_changes_anything(
    target: Target,
) -> None:
    """A writer's upkeep on a warehouse a newer revision recorded raises SchemaTooNew with
    the one line, and makes and writes nothing: a table it would create stays missing, the
    views and revisions recorded stay as they were."""
    recorded = recorded_by_a_newer_version(target)
    execute(target, "DROP TABLE {users}")  # one this process would make
    views = read(target, "SELECT view_name, fingerprint FROM {sync_views}")
    for keeping in (True, False):  # a tick's upkeep, and reset's
        with pytest.raises(SchemaTooNew) as refused:
            upkeep(target, views=keeping)
        assert str(refused.value) == refusal(recorded)
    warehouse = open_warehouse(target.url, schema=target.schema)
    try:
        assert "users" not in warehouse.table_names()
    finally:
        warehouse.close()
    assert sorted(read(target, "SELECT view_name, fingerprint FROM {sync_views}")) == sorted(views)
    assert revisions(target) == [REVISION, recorded]


def test_an_upkeep_of_no_writer_does_not_check_the_revision(target: Target) -> None:
    """An upkeep that keeps none of the system tables (verify's findings) goes on against a
    newer warehouse: only writers of the streams' rows refuse."""
    recorded_by_a_newer_version(target)
    findings = next(t for t in all_tables() if t.name == "verify_findings")
    upkeep(target, [findings], views=False)


@pytest.fixture
def stamped(target: Target, sim: Simulator, sync: SyncFn) -> Target:
    """`target` with the POS z-reports of `sim` loaded, then upgraded by a newer version."""
    settings = target_settings(sim, target, streams=["pos_z_reports"])
    assert sync(settings).ok
    row = {"revision": REVISION + 1, "version": "9.9.9", "recorded_at": AT, "host": "new"}
    insert(target, SYNC_SCHEMA, [row])
    return target


def test_run_once_of_an_older_process_exits_2_with_the_line_and_writes_nothing(
    stamped: Target, sim: Simulator
) -> None:
    """`sitoo-sync run --once` of an older revision, a process of its own, says the refusal
    in one line (no traceback), exits 2, and writes no `sync_runs` row."""
    runs = read(stamped, "SELECT COUNT(*) FROM {sync_runs}")
    child = run_once_process(sim, stamped.env())
    lines = PipeLines(child.stderr)
    assert child.wait(timeout=120) == 2
    text = lines.finish()
    assert not any("Traceback" in line for line in text)
    [failed] = lines.events("command_failed")
    assert failed["message"] == f"sitoo-sync: {refusal(REVISION + 1)}"
    assert failed["exit_code"] == 2
    assert read(stamped, "SELECT COUNT(*) FROM {sync_runs}") == runs


def test_reset_is_refused_while_status_and_verify_read_on(
    stamped: Target,
    sim: Simulator,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`reset` of an older revision exits 2 with the line and moves no cursor; `status` and
    `verify`, which only read, work against the newer warehouse as before."""
    for name, value in {**sim.settings_env(), **stamped.env()}.items():
        monkeypatch.setenv(name, value)
    state = sorted(read(stamped, "SELECT * FROM {sync_state}"))
    assert main(["reset", "pos_z_reports"]) == 2
    assert capsys.readouterr().err.splitlines() == [f"sitoo-sync: {refusal(REVISION + 1)}"]
    assert sorted(read(stamped, "SELECT * FROM {sync_state}")) == state
    assert main(["status"]) == 0  # (1 only with --check)
    assert "pos_z_reports" in capsys.readouterr().out
    assert main(["verify"]) in (0, 1)  # 1: findings in the simulated world
    assert "newer sitoo-sync" not in capsys.readouterr().err


def test_the_service_fails_every_tick_and_turns_unhealthy_without_exiting(
    settings: Any, sync: SyncFn, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The service of an older revision fails its tick with the line (`tick_failed`), not
    a crash; from then on every stream's tick fails at once, without opening the target,
    and /healthz is not ready for any stream, though the target says each succeeded just
    now (the newer process's work, not this one's)."""
    settings = settings.model_copy(update={"streams": ["pos_z_reports", "stores"]})
    assert sync(settings).ok
    target = Target("duckdb", settings.target_url)
    row = {"revision": REVISION + 1, "version": "9.9.9", "recorded_at": AT, "host": "new"}
    insert(target, SYNC_SCHEMA, [row])
    streams = [STREAMS["pos_z_reports"], STREAMS["stores"]]
    service = Service(settings, streams)
    try:
        with capture_logs() as logs:
            service.tick(streams[0])
            monkeypatch.setattr(
                "sitoo_sync.service.open_warehouse",
                lambda *a, **k: pytest.fail("a refused service opened the target again"),
            )
            service.tick(streams[1])
        failed = events(logs, "tick_failed")
        assert [(e["stream"], e["error"]) for e in failed] == [
            ("pos_z_reports", refusal(REVISION + 1)),
            ("stores", refusal(REVISION + 1)),
        ]
        ready, details = service.metrics.health()
        assert not ready
        assert not any(d["ok"] for d in details.values())
        for stream in streams:
            assert (
                service.metrics.registry.get_sample_value(
                    "sitoo_ticks_total", {"stream": stream.name, "status": "failed"}
                )
                == 1
            )
    finally:
        service.client.close()


# ---- a newer process ------------------------------------------------------------------


def test_a_newer_process_runs_its_steps_once_and_records_its_revision(
    target: Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A tick's upkeep of code one revision newer than the warehouse runs that revision's
    steps once, over the tables as they were, and records the revision; the next upkeep,
    of the same code, runs nothing and records nothing more; reset's upkeep records none."""
    upkeep(target)
    seen: list[set[str]] = []
    revision = newer(monkeypatch)
    step = Step(revision, "probe", lambda up: seen.append(set(up.before)))
    monkeypatch.setattr(upgrade_steps, "STEPS", (*upgrade_steps.STEPS, step))
    upkeep(target, views=False)  # reset's: checks, records nothing
    assert (seen, revisions(target)) == ([], [REVISION])
    logs = upkeep(target)
    assert len(seen) == 1
    assert {"sync_state", "journal_receipt_items", "sync_schema"} <= seen[0]
    assert revisions(target) == [REVISION, revision]
    [event] = events(logs, "schema_revision_recorded")
    assert (event["revision"], event["previous"]) == (revision, REVISION)
    logs = upkeep(target)
    assert len(seen) == 1
    assert revisions(target) == [REVISION, revision]
    assert events(logs, "schema_revision_recorded") == []


def test_a_new_warehouse_records_the_revision_and_runs_no_step(target: Target) -> None:
    """The first tick of a new warehouse makes `sync_schema` with this code's revision; its
    tables hold no older version's rows, so no step reports anything."""
    logs = upkeep(target)
    assert revisions(target) == [REVISION]
    assert events(logs, "json_nulls_cleared") == []
    assert events(logs, "column_backfilled") == []
    [event] = events(logs, "schema_revision_recorded")
    assert event["previous"] is None


def test_the_upkeep_reads_the_revision_with_the_views_in_one_statement(target: Target) -> None:
    """An up-to-date SQL target's tick upkeep reads `sync_schema` in the statement that reads
    `sync_views`, which it read anyway: no round trip of its own."""
    if target.name == "duckdb":
        pytest.skip("DuckDB runs in the process: no round trip")
    upkeep(target)
    statements: list[str] = []
    warehouse = open_warehouse(target.url, schema=target.schema)
    engine = warehouse.engine  # type: ignore[attr-defined]
    sa.event.listen(engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    try:
        warehouse.ensure_schema(TICK, VIEWS)
    finally:
        warehouse.close()
    # (not the catalog's own questions about the tables: MySQL's and SQLite's name them)
    reads = [s for s in statements if not s.lstrip().upper().startswith(("SHOW", "PRAGMA"))]
    [reading] = [s for s in reads if "sync_schema" in s]
    assert [s for s in reads if "sync_views" in s] == [reading]


@pytest.mark.slow
def test_processes_of_two_revisions_starting_together_take_turns(target: Target) -> None:
    """Three processes find a new warehouse at once, one of the next revision and two of
    this one: each makes its tables or is refused, none fails otherwise, the newest
    revision is recorded, and a process of this one went on only if it came first."""
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from sitoo_sync.errors import SchemaTooNew\n"
        "from sitoo_sync.streams import STREAMS\n"
        "from sitoo_sync.views import VIEWS\n"
        "from sitoo_sync.warehouse import catalog, open_warehouse\n"
        "from sitoo_sync.warehouse.base import SYSTEM_TABLES\n"
        "TICK = [*SYSTEM_TABLES, *(t for s in STREAMS.values() for t in s.tables)]\n"
        "catalog.SCHEMA_REVISION = int(sys.argv[1])\n"
        "while not Path(sys.argv[2]).exists(): time.sleep(0.01)\n"
        "w = open_warehouse(sys.argv[3], schema=sys.argv[4] or None)\n"
        "try:\n"
        "    w.ensure_schema(TICK, VIEWS)\n"
        "    print('ok')\n"
        "except SchemaTooNew:\n"
        "    print('refused')\n"
        "finally:\n"
        "    w.close()\n"
    )
    go = Path(os.environ.get("TMPDIR", "/tmp")) / f"go-{os.getpid()}-{time.monotonic_ns()}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SITOO_")}
    env["PYTHONPATH"] = str(Path(__file__).parent.parent)
    mine = [str(REVISION + 1), str(REVISION), str(REVISION)]
    children = [
        subprocess.Popen(
            [sys.executable, "-c", script, rev, str(go), target.url, target.schema or ""],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for rev in mine
    ]
    try:
        time.sleep(2)  # (their imports)
        go.touch()
        said = [child.communicate(timeout=180) for child in children]
    finally:
        go.unlink(missing_ok=True)
    assert [child.returncode for child in children] == [0, 0, 0], [e for _o, e in said]
    outcomes = [out.strip().splitlines()[-1] for out, _e in said]  # (after its log lines)
    assert outcomes[0] == "ok"
    assert set(outcomes[1:]) <= {"ok", "refused"}
    assert revisions(target) == ([REVISION] if "ok" in outcomes[1:] else []) + [REVISION + 1]


# ---- revision 1 -----------------------------------------------------------------------


def test_revision_1_moves_item_counts_an_old_process_wrote_after_the_column_was_added(
    target: Target,
) -> None:
    """A receipt item an old process wrote after `quantity` was added (its count still in
    `extra`, quantity NULL), which the backfill run with the column never saw, gets its
    count in the upgrade to revision 1, once; an item already right is left as it is."""
    before_revisions(target)
    common = {"registerid": REGISTER, "_loaded_at": AT, "_run_id": "old"}
    insert(
        target, RECEIPTS, [{**common, "id": 1, "isrefund": True, "moneytotal": Decimal("20.00")}]
    )
    old = {"quantity": 2, "colour": "blue"}
    insert(
        target,
        ITEMS,
        [
            {**common, "id": 1, "position": 0, "sku": "MUG", "extra": json.dumps(old)},
            {**common, "id": 1, "position": 1, "sku": "CUP", "quantity": 5},
        ],
    )
    logs = upkeep(target)
    [fill] = [e for e in events(logs, "column_backfilled") if e["column"] == "quantity"]
    assert (fill["rows"], fill["again"]) == (1, True)
    stored = read(
        target, "SELECT position, quantity, extra FROM {journal_receipt_items} ORDER BY position"
    )
    assert [(p, q) for p, q, _e in stored] == [(0, 2), (1, 5)]
    assert as_json(stored[0][2]) == {"colour": "blue"}
    assert revisions(target) == [REVISION]
    assert events(upkeep(target), "column_backfilled") == []


def test_mysql_json_nulls_become_sql_null_once_in_every_declared_table(
    target: Target, sim: Simulator, sync: SyncFn
) -> None:
    """On MySQL/MariaDB a warehouse from before revision 1 holds the JSON text 'null' where
    a JSON column held nothing (SQLAlchemy's JSON type without none_as_null, as that version
    wrote it): a tick's upgrade (run_once's own upkeep) makes them SQL NULL, in a table of a
    stream the tick does not sync too, logs the rows changed per table, and does it once.
    JSON that holds something is left as it is. Other targets never stored them, and report
    nothing."""
    before_revisions(target)
    with_extra = {"colour": "blue"}
    if target.name == "mysql":
        engine = sa.create_engine(target.url.replace("mysql://", "mysql+pymysql://", 1))
        metadata = sa.MetaData(schema=target.schema)
        orders = sa.Table(
            ORDERS.name,
            metadata,
            sa.Column("orderid", sa.BigInteger),
            sa.Column("orderdate", sa.DateTime),
            sa.Column("additionaldata", mysql.JSON()),
            sa.Column("extra", mysql.JSON()),
        )
        at = AT.replace(tzinfo=None)
        try:
            with engine.begin() as conn:
                conn.execute(
                    orders.insert(),
                    [
                        {"orderid": 1, "orderdate": at, "additionaldata": None, "extra": None},
                        {
                            "orderid": 2,
                            "orderdate": at,
                            "additionaldata": None,
                            "extra": with_extra,
                        },
                    ],
                )
        finally:
            engine.dispose()
        empty = "SELECT COUNT(*) FROM {orders} WHERE extra = CAST('null' AS JSON)"
        if "MariaDB" in read(target, "SELECT VERSION()")[0][0]:
            empty = "SELECT COUNT(*) FROM {orders} WHERE extra = 'null'"
        assert read(target, empty) == [(1,)]
    else:
        insert(
            target,
            ORDERS,
            [
                {"orderid": 1, "orderdate": AT},
                {"orderid": 2, "orderdate": AT, "extra": json.dumps(with_extra)},
            ],
        )
    with capture_logs() as logs:  # a tick of another stream than the orders'
        assert sync(target_settings(sim, target, streams=["pos_z_reports"])).ok
    cleared = events(logs, "json_nulls_cleared")
    if target.name == "mysql":
        [event] = cleared
        assert event["tables"] == {"orders": 2}
        assert event["rows"] == 2
    else:
        assert cleared == []
    rows = read(target, "SELECT orderid, additionaldata, extra FROM {orders} ORDER BY orderid")
    assert [(r[0], r[1]) for r in rows] == [(1, None), (2, None)]
    assert rows[0][2] is None
    assert as_json(rows[1][2]) == with_extra
    assert events(upkeep(target), "json_nulls_cleared") == []


def test_the_json_null_step_compiles_for_mysql_and_mariadb() -> None:
    """The step's UPDATE reads MariaDB's JSON as text and MySQL's as its own type (whose
    text would be a JSON string), over the JSON columns a table had before the upkeep."""
    ran: list[str] = []

    def run(statement: str) -> int:
        ran.append(statement)
        return 0

    for mariadb in (False, True):
        up = Upgrade(
            sql=Sql("mysql", lambda name: f"`{name}`"),
            before={"orders": {"orderid", "additionaldata", "extra"}},
            views=(),
            declared=(ORDERS, ORDERS, RECEIPTS),  # (a table twice: its UPDATE runs once)
            run=run,
            mariadb=mariadb,
        )
        upgrade_steps._json_null(up)
    mysql_empty = ["JSON_TYPE(`additionaldata`) = 'NULL'", "JSON_TYPE(`extra`) = 'NULL'"]
    mariadb_empty = ["`additionaldata` = 'null'", "`extra` = 'null'"]
    assert ran == [
        "UPDATE `orders` SET "
        f"`additionaldata` = CASE WHEN {empty[0]} THEN NULL ELSE `additionaldata` END, "
        f"`extra` = CASE WHEN {empty[1]} THEN NULL ELSE `extra` END "
        f"WHERE {empty[0]} OR {empty[1]}"
        for empty in (mysql_empty, mariadb_empty)
    ]


# ---- for the next engineer ------------------------------------------------------------


def declarations() -> str:
    """A fingerprint of everything the upkeep makes from the declarations: every table
    (columns, kinds, keys, descriptions), every view and backfill as each dialect reads it."""
    tables = all_tables()
    parts = [repr(t) for t in tables]
    columns = {t.name: set(t.column_names) for t in tables}
    for dialect in ("duckdb", "postgresql", "mysql", "sqlite", "mssql"):
        sql = Sql(dialect, lambda name: name)
        plan = plan_views(
            VIEWS,
            sql,
            columns,
            lambda name: name,
            comments=True,
            present=set(),
            recorded={},
        )
        parts += plan.statements
        parts += [s for v in VIEWS for fill in v.backfills for s in fill.statements(sql)]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def test_the_declarations_are_those_of_this_revision() -> None:
    """The tables, views and backfills are as they were when this revision was recorded: a
    change to them must bump catalog.SCHEMA_REVISION (see its comment), or, while no
    version carrying this revision is deployed, update its fingerprint here."""
    found = declarations()
    assert FINGERPRINTS.get(REVISION) == found, (
        f"the declarations changed (fingerprint {found}): bump SCHEMA_REVISION in "
        f"sitoo_sync/warehouse/catalog.py to {REVISION + 1} and add {{{REVISION + 1}: "
        f'"{found}"}} to FINGERPRINTS here, or, if no version carrying revision {REVISION} '
        "is deployed anywhere yet, replace its fingerprint"
    )
