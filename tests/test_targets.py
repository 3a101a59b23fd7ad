"""Every target holds the same rows: DuckDB, SQLite, PostgreSQL, MariaDB (and SQL Server's SQL)."""

from __future__ import annotations

import fcntl
import io
import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import mssql
from sqlalchemy.schema import CreateTable

from sitoo_sync.api.client import make_client
from sitoo_sync.commit import load_window
from sitoo_sync.errors import ConfigError, WarehouseError
from sitoo_sync.log import configure_logging
from sitoo_sync.normalize.columns import rows_to_arrow
from sitoo_sync.normalize.pos_z_reports import POS_Z_REPORTS as POS_TABLE
from sitoo_sync.normalize.pos_z_reports import normalize_window
from sitoo_sync.normalize.tables import (
    Kind,
    Table,
    boolean,
    day,
    decimal,
    integer,
    json_column,
    money,
    text,
    timestamp,
)
from sitoo_sync.settings import Settings
from sitoo_sync.simulator import SimConfig, Simulator
from sitoo_sync.streams import STREAMS, select_streams
from sitoo_sync.streams.pos_z_reports import POS_Z_REPORTS
from sitoo_sync.streams.site_zones import clear_site_zones
from sitoo_sync.sync import RunReport, run_once
from sitoo_sync.warehouse import open_warehouse
from sitoo_sync.warehouse.base import REJECTS, SYSTEM_TABLES, CursorMove
from sitoo_sync.warehouse.file_locks import holding_file, try_file
from sitoo_sync.warehouse.sql_types import sa_table
from sitoo_sync.warehouse.sqla import make_engine, merge_statement
from tests.conftest import SyncFn
from tests.support import target_settings, vendor_example
from tests.targets import ALL_TARGETS, Target, canonical, target_for

NOW = datetime(2026, 11, 20, 23, 30, tzinfo=UTC)
#: The tables of every stream a sync runs when SITOO_STREAMS is unset (opt-in ones have none).
TABLES = [t for stream in STREAMS.values() if stream.enabled_by_default for t in stream.tables]


@pytest.fixture(params=ALL_TARGETS)
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    """Each target in turn (servers skip when CI did not provide them)."""
    with target_for(request.param, tmp_path) as t:
        yield t


@pytest.fixture
def world() -> Iterator[Simulator]:
    """A simulator at a fixed time, with malformed records, both streams' data."""
    sim = Simulator.create(WORLD).start()
    yield sim
    sim.stop()


WORLD = SimConfig(seed=12, days=20, malformed_every=25, now=int(NOW.timestamp()))


def clock(sim: Simulator) -> Any:
    return lambda: datetime.fromtimestamp(sim.world.config.now, UTC)


def sync_into(target: Target, sim: Simulator, sync: SyncFn) -> None:
    settings = target_settings(
        sim,
        target,
        stream_options={"store_z_reports": {"start_day": (NOW - timedelta(days=20)).date()}},
    )
    report = sync(settings, clock=clock(sim))
    assert report.ok, report.results


def money_sums(rows: list[tuple[Any, ...]], table: Table) -> dict[str, Decimal]:
    money = [i for i, c in enumerate(table.columns) if c.kind is Kind.MONEY]
    return {
        table.columns[i].name: sum((r[i] or Decimal(0) for r in rows), Decimal(0)) for i in money
    }


@dataclass(frozen=True)
class Ticked:
    """A target's tables (and rejects) after a first tick of the world, rows as read, and
    its tables after a second one, as multisets."""

    first: dict[str, list[tuple[Any, ...]]]
    second: dict[str, Counter[tuple[Any, ...]]]


@pytest.fixture(scope="module")
def ticked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], Ticked]]:
    """A target of the given kind ticked twice from one world (serving it changes nothing of
    it: no late commits, no orders per request), each kind once for the module; its server
    schema dropped once read. Skips when the kind's server is not configured."""
    made: dict[str, Ticked] = {}
    tables = [*TABLES, REJECTS]

    def sync(settings: Settings, *, clock: Callable[[], datetime]) -> RunReport:
        with make_client(settings, sleep=lambda _s: None) as client:
            return run_once(
                settings,
                open_warehouse(settings.target_url, schema=settings.target_schema),
                client,
                select_streams(settings.streams),
                clock=clock,
            )

    with Simulator.create(WORLD) as sim:

        def get(name: str) -> Ticked:
            if name not in made:
                with target_for(name, tmp_path_factory.mktemp(name)) as target:
                    clear_site_zones()  # as a test starts
                    sync_into(target, sim, sync)
                    first = target.tables_rows(tables)
                    sync_into(target, sim, sync)
                    made[name] = Ticked(first, target.bags(TABLES))
            return made[name]

        yield get


@pytest.mark.slow
@pytest.mark.xdist_group("targets-ticked")  # one worker ticks each kind of target once
def test_every_target_holds_the_same_rows_as_duckdb(ticked: Callable[[str], Ticked]) -> None:
    """Row counts, money sums to the cent, and the rows themselves agree on every target."""
    expected = ticked("duckdb").first
    compared = []
    for name in ("sqlite", "postgres", "mysql"):
        try:
            rows = ticked(name).first
        except pytest.skip.Exception:
            continue
        for table in TABLES:
            got, want = rows[table.name], expected[table.name]
            assert len(got) == len(want), table.name
            assert money_sums(got, table) == money_sums(want, table), table.name
            assert Counter(got) == Counter(want), table.name
        rejects = {r[:4] for r in rows[REJECTS.name]}
        assert rejects == {r[:4] for r in expected[REJECTS.name]}
        assert len(rejects) > 0
        compared.append(name)
    assert "sqlite" in compared
    assert len(expected[POS_TABLE.name]) > 100


@pytest.mark.slow
@pytest.mark.xdist_group("targets-ticked")
@pytest.mark.parametrize("name", ALL_TARGETS)
def test_a_second_tick_changes_nothing(ticked: Callable[[str], Ticked], name: str) -> None:
    """Re-reading the overlap and the lookback upserts in place: every table is unchanged
    (the second tick runs straight after the first, as a cron's next tick would)."""
    target = ticked(name)
    assert target.second == {t.name: Counter(target.first[t.name]) for t in TABLES}


@pytest.mark.slow
def test_a_reaggregated_day_replaces_the_old_report(
    target: Target, world: Simulator, sync: SyncFn
) -> None:
    """A store and day that comes back under a new id leaves exactly one report, the new one."""
    from sitoo_sync.normalize.store_z_reports import STORE_Z_REPORT_REGISTERS, STORE_Z_REPORTS

    sync_into(target, world, sync)
    world.world.reaggregate("200", "2026-11-18")
    sync_into(target, world, sync)
    rows = [r for r in target.rows(STORE_Z_REPORTS) if r[1] == "200" and str(r[4]) == "2026-11-18"]
    [report] = rows
    expected = next(
        s
        for s in world.world.store_z_reports("2026-11-18", {"200"}, limit=None)
        if s["store_id"] == "200"
    )
    assert report[0] == expected["store_zreport_id"]
    ids = {r[0] for r in target.rows(STORE_Z_REPORTS)}
    assert {r[0] for r in target.rows(STORE_Z_REPORT_REGISTERS)} <= ids


def test_children_are_replaced_as_a_set(target: Target) -> None:
    """Loading a parent again with fewer children leaves only the new children."""
    from sitoo_sync.normalize.pos_z_reports import CHILDREN

    warehouse = open_warehouse(target.url, schema=target.schema)
    try:
        warehouse.ensure_schema([*SYSTEM_TABLES, *POS_Z_REPORTS.tables])
        record = vendor_example()
        load_window(warehouse, POS_Z_REPORTS, "p", normalize_window([record]), "1")
        record["paymentssales"] = record["paymentssales"][:1]
        load_window(warehouse, POS_Z_REPORTS, "p", normalize_window([record]), "2")
        load_window(warehouse, POS_Z_REPORTS, "p", normalize_window([record]), "3")
        counts = warehouse.table_counts([POS_TABLE, CHILDREN["payments"]])
        assert counts == {"pos_z_reports": 1, "pos_z_report_payments": 1}
        assert warehouse.get_cursor("pos_z_reports", "p") == "3"
    finally:
        warehouse.close()


def test_a_nul_character_loads_on_every_target(target: Target) -> None:
    """A text holding U+0000 (a comment cut from a C string), in a column and in the JSON of
    undeclared fields, loads with its window; PostgreSQL, whose text cannot hold it, stores
    U+FFFD in its place, and every other target the text as sent. A rejected record holding
    it is kept in rejects on every target (its key text with U+FFFD)."""
    warehouse = open_warehouse(target.url, schema=target.schema)
    try:
        warehouse.ensure_schema([*SYSTEM_TABLES, *POS_Z_REPORTS.tables])
        record = {**vendor_example(), "comment": "end\x00cut", "moneybagnote": "x\x00y"}
        bad = {**vendor_example(), "registerid": "bad\x00key", "zreportid": "x"}
        load_window(warehouse, POS_Z_REPORTS, "p", normalize_window([record, bad]), "1")
        rejects = warehouse.query(
            f"SELECT record_key, times_seen FROM {warehouse.qualified('rejects')}"
        )
        table = warehouse.qualified("pos_z_reports")
        [(comment, extra)] = warehouse.query(f"SELECT comment, extra FROM {table}")
    finally:
        warehouse.close()
    nul = "\ufffd" if target.name == "postgres" else "\x00"
    assert comment == f"end{nul}cut"
    assert rejects == [("bad\ufffdkey/x", 1)]
    assert (json.loads(extra) if isinstance(extra, str) else extra) == {"moneybagnote": f"x{nul}y"}


def test_a_json_column_with_nothing_in_it_is_sql_null_on_every_target(target: Target) -> None:
    """A record with no undeclared fields stores its `extra` as SQL NULL, not the JSON text
    'null', on every target: `WHERE extra IS NULL` finds it (MariaDB and MySQL used to
    store 'null' through SQLAlchemy's JSON type)."""
    warehouse = open_warehouse(target.url, schema=target.schema)
    try:
        warehouse.ensure_schema([*SYSTEM_TABLES, *POS_Z_REPORTS.tables])
        window = normalize_window([vendor_example()])
        empty = {
            name: sum(1 for v in table.column("extra").to_pylist() if v is None)
            for name, table in window.tables.items()
            if "extra" in table.column_names
        }
        load_window(warehouse, POS_Z_REPORTS, "p", window, "1")
        stored = {
            name: warehouse.query(
                f"SELECT COUNT(*) FROM {warehouse.qualified(name)} WHERE extra IS NULL"
            )[0][0]
            for name in empty
        }
    finally:
        warehouse.close()
    assert sum(empty.values()) > 0
    assert stored == empty


def test_cursors_of_a_group_move_and_count_on_every_target(target: Target) -> None:
    """set_cursors moves the cursors of stored and new partitions in one go, adds rows and
    windows to what each had, and a partition named twice counts both moves."""
    warehouse = open_warehouse(target.url, schema=target.schema)
    try:
        warehouse.ensure_schema([*SYSTEM_TABLES])
        warehouse.set_cursor("s", "old", "1", rows=5, windows=1)
        with warehouse.transaction():
            warehouse.set_cursors("s", [CursorMove("old", "2", 3, 2), CursorMove("new", "9", 4, 1)])
        warehouse.set_cursors("s", [CursorMove("twice", "a", 1, 1), CursorMove("twice", "b", 2, 1)])
        warehouse.set_cursors("other", [CursorMove("old", None, 0, 0)])
        states = {(s.stream, s.partition): s for s in warehouse.states()}
        got = {k: (s.cursor, s.rows_loaded, s.windows_loaded) for k, s in states.items()}
        assert got == {
            ("s", "old"): ("2", 8, 3),
            ("s", "new"): ("9", 4, 1),
            ("s", "twice"): ("b", 3, 2),
            ("other", "old"): (None, 0, 0),
        }
        assert all(s.updated_at is not None for s in states.values())
    finally:
        warehouse.close()


def test_outcomes_of_many_partitions_land_on_stored_and_new_rows_on_every_target(
    target: Target,
) -> None:
    """record_outcomes stamps stored partitions and adds rows for new ones, keeping their
    cursors and counts; when every partition is stored (the INSERT of new rows skipped) the
    outcomes still land and no row is added."""
    warehouse = open_warehouse(target.url, schema=target.schema)
    try:
        warehouse.ensure_schema([*SYSTEM_TABLES])
        warehouse.set_cursor("s", "old", "1", rows=5, windows=1)
        with warehouse.transaction():
            warehouse.record_outcomes("s", [("old", "ok", None), ("new", "failed", "boom")])

        def got() -> dict[str, tuple[Any, ...]]:
            return {
                s.partition: (s.cursor, s.rows_loaded, s.last_status, s.last_error)
                for s in warehouse.states()
            }

        assert got() == {"old": ("1", 5, "ok", None), "new": (None, 0, "failed", "boom")}
        with warehouse.transaction():
            warehouse.record_outcomes("s", [("old", "failed", "late"), ("new", "ok", None)])
            warehouse.set_cursors("s", [CursorMove("old", "2", 1, 1), CursorMove("new", "9", 4, 1)])
        assert got() == {"old": ("2", 6, "failed", "late"), "new": ("9", 4, "ok", "boom")}
    finally:
        warehouse.close()


def test_a_declared_column_is_added_to_an_existing_table(target: Target) -> None:
    """Additive schema evolution: a new declared column appears; existing rows keep theirs."""
    v1 = Table("evolving", (text("k", nullable=False),), key=("k",))
    v2 = Table("evolving", (text("k", nullable=False), integer("n")), key=("k",))
    first = open_warehouse(target.url, schema=target.schema)
    try:
        first.ensure_schema([v1])
        with first.transaction():
            first.insert(v1, rows_to_arrow(v1, [("a",)]))
    finally:
        first.close()
    second = open_warehouse(target.url, schema=target.schema)
    try:
        second.ensure_schema([v2])
        with second.transaction():
            second.upsert(v2, rows_to_arrow(v2, [("a", 1), ("b", 2)]))
    finally:
        second.close()
    assert sorted(target.rows(v2)) == [("a", 1), ("b", 2)]


def test_missing_marks_are_set_and_cleared_by_listing_on_every_target(target: Target) -> None:
    """mark_missing stamps the scope's rows a listing did not show, leaves other scopes
    alone, and clears the mark of a row a later listing shows again."""
    listed = Table(
        "listed",
        (integer("site", nullable=False), integer("k", nullable=False), timestamp("missing_since")),
        key=("site", "k"),
    )
    at = datetime(2026, 1, 2, tzinfo=UTC)
    warehouse = open_warehouse(target.url, schema=target.schema)
    try:
        warehouse.ensure_schema([listed])
        rows = [(1, 1, None), (1, 2, None), (1, 3, None), (2, 2, None)]
        with warehouse.transaction():
            warehouse.upsert(listed, rows_to_arrow(listed, rows))
        with warehouse.transaction():
            assert warehouse.mark_missing(listed, {"site": 1}, [(1, 1)], at) == 2
        with warehouse.transaction():
            assert warehouse.mark_missing(listed, {"site": 1}, [(1, 1), (1, 3)], at) == 0
        got = {(r[0], r[1]): r[2] is not None for r in target.rows(listed)}
        assert got == {(1, 1): False, (1, 2): True, (1, 3): False, (2, 2): False}
    finally:
        warehouse.close()


def test_missing_marks_take_a_catalogue_larger_than_a_statements_parameters(
    target: Target,
) -> None:
    """A listing of more keys than one statement may bind (PostgreSQL: 65,535 parameters,
    two per key here) stamps the unlisted row and clears the relisted one, as a small one."""
    listed = Table(
        "listed",
        (integer("site", nullable=False), integer("k", nullable=False), timestamp("missing_since")),
        key=("site", "k"),
    )
    n = 33_000
    at = datetime(2026, 1, 2, tzinfo=UTC)
    warehouse = open_warehouse(target.url, schema=target.schema)
    try:
        warehouse.ensure_schema([listed])
        with warehouse.transaction():
            warehouse.upsert(listed, rows_to_arrow(listed, [(1, k, None) for k in range(n)]))
        with warehouse.transaction():
            assert (
                warehouse.mark_missing(listed, {"site": 1}, [(1, k) for k in range(1, n)], at) == 1
            )
        with warehouse.transaction():
            again = [(1, k) for k in range(n) if k != 7]
            assert warehouse.mark_missing(listed, {"site": 1}, again, at) == 1
        marked = sorted(r[1] for r in target.rows(listed) if r[2] is not None)
        assert marked == [7]
    finally:
        warehouse.close()


def test_sql_server_ddl_and_merge_compile() -> None:
    """Without a server here, the SQL Server DDL and MERGE upsert are compiled and checked."""
    dialect = mssql.dialect()  # type: ignore[no-untyped-call]  # untyped in SQLAlchemy
    metadata = sa.MetaData(schema="sitoo")
    t = sa_table(POS_TABLE, metadata)
    ddl = str(CreateTable(t).compile(dialect=dialect))
    assert "registerid VARCHAR(255) NOT NULL" in ddl
    assert "moneysalestotal NUMERIC(18, 2) NULL" in ddl
    assert "dateadded DATETIMEOFFSET NOT NULL" in ddl
    assert "extra NVARCHAR(max) NULL" in ddl
    assert "CONSTRAINT pk_pos_z_reports PRIMARY KEY (registerid, zreportid)" in ddl
    merge = str(merge_statement(t, POS_TABLE, dialect).compile(dialect=dialect))
    assert merge.startswith(
        "MERGE INTO sitoo.pos_z_reports WITH (HOLDLOCK) AS target USING (SELECT"
    )
    assert (
        "ON target.registerid = source.registerid AND target.zreportid = source.zreportid" in merge
    )
    assert "WHEN MATCHED THEN UPDATE SET target.manufacturerid = source.manufacturerid" in merge
    assert "WHEN NOT MATCHED THEN INSERT (registerid, zreportid," in merge
    assert merge.rstrip().endswith(";")


def test_a_missing_driver_names_the_extra_to_install() -> None:
    """A target whose driver is not installed says which extra brings it, installed from
    the clone (there is no PyPI release)."""
    with pytest.raises(ConfigError, match=r"pip install '\.\[mssql\]' from the sitoo_sync clone"):
        open_warehouse("mssql+pyodbc://user:pw@dsn")


def test_plain_urls_use_the_drivers_sitoo_sync_ships() -> None:
    """postgresql:// means psycopg 3 and mysql:// means PyMySQL, the drivers of the extras."""
    assert make_engine("postgresql://u@h/db").dialect.driver == "psycopg"
    assert make_engine("postgres://u@h/db").dialect.driver == "psycopg"
    assert make_engine("mysql://u@h/db").dialect.driver == "pymysql"


def test_sqlite_keeps_money_exact() -> None:
    """SQLite has no decimal type: money is stored as exact text, never as a float."""
    from sqlalchemy.dialects import sqlite

    t = sa_table(POS_TABLE, sa.MetaData())
    ddl = str(CreateTable(t).compile(dialect=sqlite.dialect()))
    assert "moneysalestotal VARCHAR(40)" in ddl


@pytest.mark.parametrize("name", ["postgres", "mysql", "sqlite"])
def test_processes_creating_one_schema_at_once_all_succeed(name: str, tmp_path: Path) -> None:
    """Several writers that find a fresh schema at the same moment all create it without error."""
    with target_for(name, tmp_path) as target:
        start = threading.Barrier(6)
        failures: list[BaseException] = []

        def create() -> None:
            warehouse = open_warehouse(target.url, schema=target.schema)
            try:
                start.wait()
                warehouse.ensure_schema([*SYSTEM_TABLES, *POS_Z_REPORTS.tables])
            except BaseException as exc:
                failures.append(exc)
            finally:
                warehouse.close()

        threads = [threading.Thread(target=create) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert failures == []
        assert target.rows(POS_TABLE) == []


def test_a_sqlite_ddl_lock_is_waited_for_and_not_past_its_bound(tmp_path: Path) -> None:
    """The upkeep's lock file beside a SQLite file is waited for while another holds it,
    taken once it is freed, and after its bound the upkeep runs without it, logged."""
    path = tmp_path / "w.sqlite.ddl.lock"
    out = io.StringIO()
    configure_logging(fmt="json", level="INFO", secrets=[], stream=out)
    with path.open("a+") as other:
        fcntl.flock(other.fileno(), fcntl.LOCK_EX)
        entered = threading.Event()

        def wait_for_it() -> None:
            with holding_file(path, wait=30):
                entered.set()

        waiter = threading.Thread(target=wait_for_it)
        waiter.start()
        assert not entered.wait(0.3)  # held by the other: still waiting
        fcntl.flock(other.fileno(), fcntl.LOCK_UN)
        assert entered.wait(5)
        waiter.join()
        fcntl.flock(other.fileno(), fcntl.LOCK_EX)
        started = time.monotonic()
        with holding_file(path, wait=0.2):
            assert 0.2 <= time.monotonic() - started < 5
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [e["event"] for e in events] == ["lock_wait", "lock_wait", "lock_not_had"]
    assert events[-1]["lock"] == path.name
    assert events[-1]["level"] == "warning"


def test_a_lock_file_that_cannot_be_opened_is_a_warehouse_error_naming_it(tmp_path: Path) -> None:
    """A lock file beside the database that cannot be made (here its directory is a file;
    on a host, a read-only file system) is a WarehouseError naming it, which the CLI says
    in one line, for the stream locks and the schema upkeep's lock alike."""
    (tmp_path / "plain").write_text("")
    path = tmp_path / "plain" / "w.sqlite.ddl.lock"
    with pytest.raises(WarehouseError, match=r"cannot open the lock file .*w\.sqlite\.ddl\.lock"):
        try_file(path)
    with pytest.raises(WarehouseError, match="that directory must be writable"), holding_file(path):
        pass


def test_existing_keys_are_exactly_the_stored_ones_on_every_target(target: Target) -> None:
    """existing_keys answers, of a batch's keys, exactly those a table holds (a register's
    other ids, another register's same id and duplicate asks excluded), in one query on
    PostgreSQL (typed arrays joined with `unnest`), in IN lists elsewhere."""
    import pyarrow as pa

    from sitoo_sync.normalize.journal_entries import JOURNAL_ENTRIES

    warehouse = open_warehouse(target.url, schema=target.schema)
    try:
        warehouse.ensure_schema([JOURNAL_ENTRIES])
        stored = rows_to_arrow(
            JOURNAL_ENTRIES,
            [("{A}", i, "login", None, NOW, None, None, None, None) for i in (1, 2, 3, 2**40)],
        )
        with warehouse.transaction():
            warehouse.insert(JOURNAL_ENTRIES, stored)
        asked = pa.table(
            {
                "registerid": pa.array(["{A}", "{A}", "{B}", "{A}", "{A}"], pa.string()),
                "id": pa.array([2, 4, 1, 2**40, 1], pa.int64()),
            }
        )
        got = warehouse.existing_keys(JOURNAL_ENTRIES, asked)
        assert sorted(zip(*(c.to_pylist() for c in got.columns), strict=True)) == [
            ("{A}", 1),
            ("{A}", 2),
            ("{A}", 2**40),
        ]
        assert got.schema == asked.schema
        none = warehouse.existing_keys(JOURNAL_ENTRIES, asked.slice(0, 0))
        assert none.num_rows == 0
    finally:
        warehouse.close()


#: A table of every kind, for values that a bulk path could mangle.
AWKWARD = Table(
    "awkward_values",
    (
        integer("id", nullable=False),
        text("label"),
        boolean("flag"),
        money("amount"),
        decimal("rate"),
        timestamp("at"),
        day("on_day"),
        json_column("data"),
    ),
    key=("id",),
)
AWKWARD_ROWS = [
    (
        1,
        "",
        True,
        Decimal("-0.01"),
        Decimal("-123.456"),
        datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        date(1969, 12, 31),
        "{}",
    ),
    (2, None, None, None, None, None, None, None),
    (
        3,
        'say "hi",\nnew line\r\n and\ttab',
        False,
        Decimal("9999999999999999.99"),
        Decimal("0.000"),
        datetime(2026, 3, 29, 1, 0, 0, 1, tzinfo=UTC),
        date(2026, 2, 28),
        '{"a": "x,\\"y\\"\\n", "b": [1, 2.5, null]}',
    ),
    (
        4,
        "\\.",
        True,
        Decimal("0.00"),
        Decimal("1.5"),
        datetime(2000, 1, 1, tzinfo=UTC),
        date(1, 1, 1),
        '{"s": "just a string"}',
    ),
    (
        5,
        "NULL",
        False,
        Decimal("12.30"),
        None,
        datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC),
        None,
        '{"n": null}',
    ),
    (
        6,
        "\\N åäö 🧾 ,;|",
        True,
        Decimal("-9999999999999999.99"),
        Decimal("-0.001"),
        None,
        date(2026, 12, 6),
        "[]",
    ),
]


def test_awkward_values_round_trip_on_every_target(target: Target) -> None:
    """Inserted and then upserted rows read back exactly: an empty string stays apart from
    NULL, and quotes, separators, line breaks, `\\.` and `\\N`, money at the edges of
    DECIMAL(18,2), times before 1970 and to the microsecond and JSON text survive each bulk
    path (PostgreSQL's is CSV written by Arrow)."""
    warehouse = open_warehouse(target.url, schema=target.schema)
    try:
        warehouse.ensure_schema([AWKWARD])
        with warehouse.transaction():
            warehouse.insert(AWKWARD, rows_to_arrow(AWKWARD, AWKWARD_ROWS[:4]))
        # rows 1-2 come again with other rows' values; 5-6 are new
        changed = [(1, *AWKWARD_ROWS[3][1:]), (2, *AWKWARD_ROWS[0][1:]), *AWKWARD_ROWS[4:]]
        with warehouse.transaction():
            warehouse.upsert(AWKWARD, rows_to_arrow(AWKWARD, changed))
    finally:
        warehouse.close()
    expected = {r[0]: r for r in [*AWKWARD_ROWS[:4], *changed]}
    kinds = [c.kind for c in AWKWARD.columns]
    want = sorted(
        tuple(canonical(k, v) for k, v in zip(kinds, r, strict=True)) for r in expected.values()
    )
    assert sorted(target.rows(AWKWARD)) == want


def test_postgres_csv_pieces_make_the_whole_table_once() -> None:
    """PostgreSQL's COPY sends a batch as CSV in pieces of about `chunk_bytes`: together they
    are every row once, in order, and an empty batch sends nothing."""
    import io

    import pyarrow.csv as pa_csv

    from sitoo_sync.warehouse.pg_copy import csv_chunks

    data = rows_to_arrow(AWKWARD, AWKWARD_ROWS)
    whole = io.BytesIO()
    pa_csv.write_csv(data, whole, pa_csv.WriteOptions(include_header=False))
    pieces = list(csv_chunks(data, chunk_bytes=1))
    assert len(pieces) == len(AWKWARD_ROWS)
    assert b"".join(pieces) == whole.getvalue()
    assert b"".join(csv_chunks(data)) == whole.getvalue()
    assert list(csv_chunks(data.slice(0, 0))) == []


def test_stored_keys_asked_at_once_by_many_partitions_are_each_exactly_theirs(
    target: Target,
) -> None:
    """Sixteen registers asking at once which of their keys are stored (on a server their
    asks share one statement) each get exactly their stored keys: not an id in their range
    that is not stored, not another register's."""
    from concurrent.futures import ThreadPoolExecutor

    import pyarrow as pa

    from sitoo_sync.normalize.journal_entries import JOURNAL_ENTRIES

    registers = [f"{{R{i:02d}}}" for i in range(16)]
    stored = [(r, i) for n, r in enumerate(registers) for i in range(1, 30) if i % (n % 3 + 2)]
    warehouse = open_warehouse(target.url, schema=target.schema)
    try:
        warehouse.ensure_schema([JOURNAL_ENTRIES])
        rows = [(r, i, "login", None, NOW, None, None, None, None) for r, i in stored]
        with warehouse.transaction():
            warehouse.insert(JOURNAL_ENTRIES, rows_to_arrow(JOURNAL_ENTRIES, rows))

        def ask(register: str) -> set[tuple[Any, ...]]:
            ids = list(range(5, 40))  # past the stored ones, and some never stored
            keys = pa.table(
                {
                    "registerid": pa.array([register] * len(ids), pa.string()),
                    "id": pa.array(ids, pa.int64()),
                }
            )
            return warehouse.stored_keys(JOURNAL_ENTRIES, keys)

        with ThreadPoolExecutor(16) as pool:
            got = dict(zip(registers, pool.map(ask, registers), strict=True))
        for register in registers:
            assert got[register] == {(r, i) for r, i in stored if r == register and i >= 5}
    finally:
        warehouse.close()


def test_duckdb_commits_of_a_backfill_leave_checkpoints_to_a_large_wal(tmp_path: Path) -> None:
    """Commits that add up to more than DuckDB's default 16 MB of WAL do not checkpoint
    (each checkpoint would compress the last row groups again); closing the file does."""
    path = tmp_path / "wal.duckdb"
    warehouse = open_warehouse(f"duckdb:///{path}")
    table = Table("wal_rows", (integer("id", "Row id."), text("body", "Filler.")), key=("id",))
    warehouse.ensure_schema([table])
    body = "x" * 1000
    wal = Path(f"{path}.wal")
    sizes = []
    for group in range(8):  # ~24 MB of rows, 3 MB a commit
        ids = range(group * 3000, (group + 1) * 3000)
        with warehouse.transaction():
            warehouse.insert(table, rows_to_arrow(table, [(i, body) for i in ids]))
        sizes.append(wal.stat().st_size)
    assert sizes == sorted(sizes), "a commit checkpointed"
    assert sizes[-1] > 20 * 1024 * 1024
    warehouse.close()
    assert not wal.exists() or wal.stat().st_size == 0
    reopened = open_warehouse(f"duckdb:///{path}")
    assert reopened.distinct_values(table, "body") == [body]
    reopened.close()
