"""`sitoo-sync verify`: each check finds its anomaly and nothing on clean data, on every target."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from sitoo_sync.cli import main
from sitoo_sync.normalize.cash_registers import CASH_REGISTERS
from sitoo_sync.normalize.columns import rows_to_arrow
from sitoo_sync.simulator import SimConfig, Simulator
from sitoo_sync.verify import Scope, VerifyRun, run_verify
from sitoo_sync.verify.checks import Check
from sitoo_sync.verify.findings import VERIFY_FINDINGS, Finding, Severity, finding_rows
from sitoo_sync.verify.report import finding_line
from sitoo_sync.verify.source import Source, to_day, to_utc
from sitoo_sync.warehouse import open_warehouse
from sitoo_sync.warehouse.base import REJECTS, Warehouse
from sitoo_sync.warehouse.duckdb import DuckDBWarehouse
from sitoo_sync.warehouse.sql_types import UtcDateTime
from sitoo_sync.warehouse.sqla import SqlWarehouse
from tests.clones import copy_of
from tests.support import sync_simulated_world
from tests.targets import Target, grouped_targets, target_for

NOW = datetime(2026, 11, 20, 23, 30, tzinfo=UTC)
CLEAN = {"seed": 12, "days": 20, "cash_differences": False}
INJECTED = {
    "inject_missing_report": True,
    "inject_grand_total_jump": True,
    "inject_store_mismatch": True,
    "inject_missing_receipt": True,
    "silent_register_days": 4,
    "dark_register_days": 4,
}


@dataclass
class World:
    """A simulated world synced into a target, and the simulator's registers."""

    target: Target
    registers: list[str]
    sim: Simulator

    def verify(self, scope: Scope | None = None, *, write: bool = False) -> VerifyRun:
        warehouse = open_warehouse(self.target.url, schema=self.target.schema)
        try:
            return run_verify(warehouse, scope or Scope(), write=write)
        finally:
            warehouse.close()


def synced(target: Target, tmp: Path, **knobs: Any) -> World:
    """A fresh simulated world (clean plus `knobs`), synced once into `target`."""
    config = SimConfig(now=int(NOW.timestamp()), **{**CLEAN, **knobs})
    sim = sync_simulated_world(config, target, tmp, store_days=20)
    return World(target, [r.registerid for r in sim.world.registers], sim)


@pytest.fixture(scope="module", params=grouped_targets("verify"))
def target(request: pytest.FixtureRequest) -> str:
    """Each target in turn: every world of this module is synced into one of its kind."""
    return str(request.param)


@contextmanager
def world_in(target: str, tmp: pytest.TempPathFactory, **knobs: Any) -> Iterator[World]:
    """A world synced into a fresh target (a file, or a schema dropped afterwards)."""
    with target_for(target, tmp.mktemp(target)) as fresh:
        yield synced(fresh, tmp.mktemp("sim"), **knobs)


@pytest.fixture(scope="module")
def pristine(target: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """The clean world synced once into a target no test reads or changes: `clean`,
    `tampered` and `silent` are each a copy of it (the same seeded world, synced once)."""
    with world_in(target, tmp_path_factory) as world:
        yield world


@contextmanager
def copy_in(world: World, tmp: pytest.TempPathFactory) -> Iterator[World]:
    """`world` in a copy of its target (a file, or a schema dropped afterwards)."""
    with copy_of(world.target, tmp.mktemp("copy")) as copy:
        yield replace(world, target=copy)


@pytest.fixture(scope="module")
def clean(pristine: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """The clean world: every drawer balances, nothing injected."""
    with copy_in(pristine, tmp_path_factory) as world:
        yield world


@pytest.fixture(scope="module")
def injected(target: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """The world with every simulator anomaly injected once."""
    with world_in(target, tmp_path_factory, **INJECTED) as world:
        yield world


@pytest.fixture(scope="module")
def injected_run(injected: World) -> VerifyRun:
    """`verify` of the injected world, run once for the tests that only read its findings
    (no test changes that world's data)."""
    return injected.verify()


def found(run: VerifyRun, check: str) -> list[Finding]:
    return [f for f in run.findings if f.check == check]


def test_clean_data_passes_every_check(clean: World) -> None:
    """The simulator's clean data breaks no rule, and every check runs."""
    run = clean.verify()
    assert run.findings == []
    statuses = {r.check.name: r.status for r in run.results}
    assert set(statuses.values()) == {"passed"}


# (check, register index, zreportid or None) each injected anomaly must produce, and only it.
EXPECTED = {
    "missing report": ("numbering_gap", 0, 4),
    # its orders (the sales happened) fall in the next z-report's period, which states less
    "missing report's day of orders": ("orders", 0, 4),
    "broken grand total": ("grand_total", 0, 5),
    "store report that disagrees": ("store_figures", None, None),
    # its moneysalestotal (+1.00) no longer matches its own sales lines either
    "store report that disagrees with its VAT groups": ("vat_groups", None, None),
    "store report that disagrees with its product groups": ("product_groups", None, None),
    "receipt missing from a journal": ("journal_receipts", 0, 4),
    "register without z-reports": ("silence", 1, None),
    "register gone dark": ("silence", 2, None),
}


@pytest.mark.parametrize("anomaly", list(EXPECTED))
def test_each_injected_anomaly_is_found(
    injected: World, injected_run: VerifyRun, anomaly: str
) -> None:
    """Each anomaly the simulator injects is found by its check, at its register and report."""
    check, index, zreportid = EXPECTED[anomaly]
    register = None if index is None else injected.registers[index]
    hits = [
        f
        for f in found(injected_run, check)
        if f.registerid == register and f.zreportid == zreportid
    ]
    assert len(hits) == 1, hits
    if check in ("store_figures", "vat_groups", "product_groups"):
        assert (hits[0].store_id, hits[0].difference) == ("200", Decimal("1.00"))
        assert hits[0].store_zreport_id
    if check == "grand_total":
        assert hits[0].difference == Decimal("100.00")


def test_injected_world_has_nothing_else(injected_run: VerifyRun) -> None:
    """The injected anomalies are all the findings: no check fires on their side effects."""
    run = injected_run
    assert len(run.findings) == len(EXPECTED)
    assert run.findings[0].check == "grand_total"  # critical first


def test_store_findings_name_their_store_z_report(injected: World, injected_run: VerifyRun) -> None:
    """A finding on a store z-report names it in store_zreport_id, the report's own key."""
    hits = found(injected_run, "store_figures")
    assert len(hits) == 1
    rows = _rows(
        injected,
        "SELECT store_id, day_created FROM {store_z_reports} WHERE store_zreport_id = :id",
        {"id": hits[0].store_zreport_id},
    )
    assert [(str(r[0]), to_day(r[1])) for r in rows] == [(hits[0].store_id, hits[0].day)]


def test_an_older_findings_table_gains_the_store_z_report_column(
    target: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A verify_findings made before store_zreport_id existed gets the column in place: its
    rows stay, and a new run's store finding is written with its store z-report."""
    older = replace(
        VERIFY_FINDINGS,
        columns=tuple(c for c in VERIFY_FINDINGS.columns if c.name != "store_zreport_id"),
    )
    old = Finding("store_figures", Severity.ERROR, "from before", store_id="200")
    new = Finding("store_figures", Severity.ERROR, "now", store_id="200", store_zreport_id="s-1")
    check = Check("store_figures", Severity.ERROR, "", (), lambda _s, _c: [new])
    monkeypatch.setattr("sitoo_sync.verify.run.CHECKS", (check,))
    with target_for(target, tmp_path) as fresh:
        warehouse = open_warehouse(fresh.url, schema=fresh.schema)
        try:
            warehouse.ensure_schema([older])
            at = VERIFY_FINDINGS.column_names.index("store_zreport_id")
            rows = [r[:at] + r[at + 1 :] for r in finding_rows("old", NOW, [old])]
            with warehouse.transaction():
                warehouse.insert(older, rows_to_arrow(older, rows))
            run = run_verify(warehouse, Scope())
        finally:
            warehouse.close()
        got = {
            r[0]: dict(zip(VERIFY_FINDINGS.column_names, r, strict=True))
            for r in fresh.rows(VERIFY_FINDINGS)
        }
    assert set(got) == {"old", run.run_id}
    assert (got["old"]["details"], got["old"]["store_zreport_id"]) == ("from before", None)
    assert (got[run.run_id]["details"], got[run.run_id]["store_zreport_id"]) == ("now", "s-1")


def test_findings_are_written_to_their_table(injected: World) -> None:
    """verify_findings gets one row per finding, in rank order, with exact figures."""
    run = injected.verify(write=True)
    rows = [r for r in injected.target.rows(VERIFY_FINDINGS) if r[0] == run.run_id]
    rows.sort(key=lambda r: r[1])
    names = VERIFY_FINDINGS.column_names
    got = [dict(zip(names, r, strict=True)) for r in rows]
    assert [(g["check_name"], g["severity"], g["registerid"]) for g in got] == [
        (f.check, f.severity.label, f.registerid) for f in run.findings
    ]
    figures = [(g["expected"], g["actual"], g["difference"]) for g in got]
    assert figures == [
        tuple(
            None if v is None else Decimal(v).quantize(Decimal("0.01"))
            for v in (f.expected, f.actual, f.difference)
        )
        for f in run.findings
    ]


def test_since_and_store_narrow_the_checks(injected: World) -> None:
    """--since leaves out older z-reports; --store only judges that store's registers."""
    later = injected.verify(Scope(since=(NOW - timedelta(days=10)).date()))
    assert {f.check for f in later.findings} == {"silence"}
    other = injected.verify(Scope(store="300"))
    assert other.findings == []


@dataclass(frozen=True)
class Tamper:
    """Change one value of one row in the warehouse, to break one rule."""

    table: str
    column: str
    key: Callable[[World], dict[str, Any]]
    change: Callable[[Any], Any]


def _report(index: int, zreportid: int) -> Callable[[World], dict[str, Any]]:
    return lambda w: {"registerid": w.registers[index], "zreportid": zreportid}


def _line(index: int, zreportid: int) -> Callable[[World], dict[str, Any]]:
    return lambda w: {**_report(index, zreportid)(w), "section": "sales", "position": 0}


def _store_line(store: str, nth: int) -> Callable[[World], dict[str, Any]]:
    """The first sales line of store `store`'s `nth` store z-report (by day)."""

    def key(w: World) -> dict[str, Any]:
        ids = [
            str(r[0])
            for r in _rows(
                w,
                "SELECT store_zreport_id FROM {store_z_reports} WHERE store_id = :store "
                "ORDER BY day_created",
                {"store": store},
            )
        ]
        return {"store_zreport_id": ids[nth], "section": "sales", "position": 0}

    return key


def _cash_counted(index: int, zreportid: int) -> Callable[[World], dict[str, Any]]:
    def key(w: World) -> dict[str, Any]:
        register = w.registers[index]
        body = w.sim.world.pos_z_report(register, zreportid)
        assert body is not None
        closed = body.body["datecreated"]
        entry = next(
            e
            for e in w.sim.world.journal.entries(register)
            if e["type"] == "cash-counted" and e["datecreated"] == closed - 60
        )
        return {"registerid": register, "id": entry["id"]}

    return key


ONE = Decimal("1.00")
# check -> the tamper that breaks its rule, and the (register, zreportid) it must name
TAMPERS: dict[str, tuple[Tamper, int, int]] = {
    "summary": (
        Tamper("pos_z_reports", "moneysummarysubtotal", _report(0, 6), lambda v: v + ONE),
        0,
        6,
    ),
    "cash_drawer": (
        Tamper("pos_z_reports", "moneycash_expected", _report(0, 7), lambda v: v + ONE),
        0,
        7,
    ),
    "cash_difference": (
        Tamper("pos_z_reports", "moneycash_diff", _report(0, 8), lambda v: v + ONE),
        0,
        8,
    ),
    "vat_groups": (
        Tamper("pos_z_report_vat_groups", "moneytotal", _line(0, 9), lambda v: v + ONE),
        0,
        9,
    ),
    "product_groups": (
        Tamper("pos_z_report_product_groups", "numtotal", _line(0, 10), lambda v: v + 1),
        0,
        10,
    ),
    "payments": (
        Tamper("pos_z_report_payments", "moneytotal", _line(0, 11), lambda v: v + ONE),
        0,
        11,
    ),
    "journal_cash": (
        Tamper("journal_cash_events", "moneycash", _cash_counted(0, 12), lambda v: v + ONE),
        0,
        12,
    ),
    "numbering_conflict": (
        Tamper("pos_z_reports", "datecreated", _report(3, 8), lambda v: v - timedelta(days=2)),
        3,
        8,
    ),
    "store_membership": (
        Tamper("store_z_report_registers", "zreportid", _report(3, 14), lambda v: 999),
        3,
        999,
    ),
}


# check -> the tamper that breaks its rule in a store z-report's lines, and the store
STORE_TAMPERS: dict[str, tuple[Tamper, str]] = {
    "vat_groups": (
        Tamper("store_z_report_vat_groups", "moneytotal", _store_line("200", 5), lambda v: v + ONE),
        "200",
    ),
    "product_groups": (
        Tamper("store_z_report_product_groups", "numtotal", _store_line("200", 6), lambda v: v + 1),
        "200",
    ),
    "payments": (
        Tamper("store_z_report_payments", "moneytotal", _store_line("300", 7), lambda v: v + ONE),
        "300",
    ),
}


# A closing at 23:30 UTC, 00:30 the next day in Stockholm: its business_date is the next
# day. With its summary broken, it must be found on (and --since) that business day.
MIDNIGHT = (
    Tamper(
        "pos_z_reports",
        "datecreated",
        _report(1, 5),
        lambda v: v.replace(hour=23, minute=30, second=0, microsecond=0),
    ),
    Tamper("pos_z_reports", "business_date", _report(1, 5), lambda v: v + timedelta(days=1)),
    Tamper("pos_z_reports", "moneysummarysubtotal", _report(1, 5), lambda v: v + ONE),
)

# One POS z-report's moneysalestotal 10.00 too high, for the sign of its findings.
TEN = Decimal("10.00")
TOO_HIGH = Tamper("pos_z_reports", "moneysalestotal", _report(2, 12), lambda v: v + TEN)


def _tamper(world: World, tamper: Tamper) -> dict[str, Any]:
    """Read the value, change it, write it back: the same SQL on every target. Returns the
    key of the row changed."""
    warehouse = open_warehouse(world.target.url, schema=world.target.schema)
    try:
        key = tamper.key(world)
        where = " AND ".join(f"{k} = :{k}" for k in key)
        with warehouse.transaction():
            source = Source(warehouse)
            (old,) = next(
                iter(
                    list(
                        source.rows(
                            f"SELECT {tamper.column} FROM {{{tamper.table}}} WHERE {where}", key
                        )
                    )
                )
            )
        if isinstance(old, str):  # SQLite keeps money, days and times as text
            if tamper.column == "datecreated":
                old = to_utc(old)
            elif tamper.column == "business_date":
                old = to_day(old)
            else:
                old = Decimal(old)
        elif isinstance(old, datetime):
            old = to_utc(old)
        new = tamper.change(old)
        sql = source.sql(f"UPDATE {{{tamper.table}}} SET {tamper.column} = :new WHERE {where}")
        _execute(warehouse, sql, {**key, "new": new})
    finally:
        warehouse.close()
    return key


def _execute(warehouse: Warehouse, sql: str, params: dict[str, Any]) -> None:
    """Run one statement with `:name` parameters in a transaction of its own, any target."""
    with warehouse.transaction():
        if isinstance(warehouse, DuckDBWarehouse):
            warehouse.con.execute(sql.replace(":", "$"), params)
            return
        assert isinstance(warehouse, SqlWarehouse)
        params = dict(params)
        for k, v in params.items():
            if warehouse.dialect == "sqlite" and isinstance(v, Decimal):
                params[k] = str(v)
            if isinstance(v, date) and not isinstance(v, datetime):
                params[k] = v.isoformat() if warehouse.dialect == "sqlite" else v
        binds = [
            sa.bindparam(k, v, type_=UtcDateTime() if isinstance(v, datetime) else None)
            for k, v in params.items()
        ]
        warehouse.conn.execute(sa.text(sql).bindparams(*binds))


def _run_sql(world: World, sql: str, params: dict[str, Any]) -> None:
    """One statement of `{table}` SQL with `:name` parameters, on the world's target."""
    warehouse = open_warehouse(world.target.url, schema=world.target.schema)
    try:
        _execute(warehouse, Source(warehouse).sql(sql), params)
    finally:
        warehouse.close()


def _rows(world: World, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
    """The rows of a `{table}` query with `:name` parameters, read from the world's target."""
    warehouse = open_warehouse(world.target.url, schema=world.target.schema)
    try:
        with warehouse.transaction():
            return list(Source(warehouse).rows(sql, params))
    finally:
        warehouse.close()


def _reject_a_report_without_its_registerid(world: World, index: int = 4) -> None:
    """Register `index`'s z-report 6 as a reject that lost its registerid: gone from
    pos_z_reports, in rejects under `registerid=<missing>/zreportid=6` with its other
    identifiers."""
    register = world.registers[index]
    warehouse = open_warehouse(world.target.url, schema=world.target.schema)
    try:
        source = Source(warehouse)
        key = {"r": register}
        with warehouse.transaction():
            ((manufacturerid, registerkey),) = list(
                source.rows(
                    "SELECT manufacturerid, registerkey FROM {pos_z_reports} "
                    "WHERE registerid = :r AND zreportid = 6",
                    key,
                )
            )
        delete = "DELETE FROM {pos_z_reports} WHERE registerid = :r AND zreportid = 6"
        _execute(warehouse, source.sql(delete), key)
        raw = {"zreportid": 6, "manufacturerid": manufacturerid, "registerkey": registerkey}
        row = (
            f"reject-{index}-6",
            "pos_z_reports",
            "registerid=<missing>/zreportid=6",
            "registerid: missing or empty key field",
            json.dumps(raw),
            NOW,
            NOW,
            1,
        )
        with warehouse.transaction():
            warehouse.insert(REJECTS, rows_to_arrow(REJECTS, [row]))
    finally:
        warehouse.close()


#: Register 5's z-report 6 is rejected without its registerid, and register 3's z-report 1
#: carries register 5's registerkey: only its manufacturerid tells register 5.
SHARED_KEY = (5, 3)


def _share_registerkey(world: World, index: int, owner: int) -> None:
    """Give register `index`'s z-report 1 the registerkey of register `owner`'s z-reports."""
    _run_sql(
        world,
        "UPDATE {pos_z_reports} SET registerkey = (SELECT MAX(registerkey) FROM "
        "{pos_z_reports} WHERE registerid = :owner) WHERE registerid = :r AND zreportid = 1",
        {"r": world.registers[index], "owner": world.registers[owner]},
    )


#: A register the listing shows in register 0's store since 10 days before NOW, that never
#: sent anything.
NEVER_REPORTED = "{00000000-0000-0000-0000-0000000000AA}"
NEVER_REPORTED_LISTED = NOW - timedelta(days=10)
#: One the listing shows there since the sync (first_seen_at NOW): installed today.
NEWLY_LISTED = "{00000000-0000-0000-0000-0000000000BB}"


def _list_a_register_that_never_reported(
    world: World, registerid: str, listed: datetime | None = None
) -> None:
    """Copy register 0's cash_registers row under `registerid` (same warehouse, store),
    first listed at `listed` (default: when the sync listed register 0)."""
    warehouse = open_warehouse(world.target.url, schema=world.target.schema)
    try:
        names = CASH_REGISTERS.column_names
        source = Source(warehouse)
        sql = source.sql(
            f"INSERT INTO {{cash_registers}} ({', '.join(names)}) SELECT :new, "
            f"{', '.join(names[1:])} FROM {{cash_registers}} WHERE registerid = :old"
        )
        _execute(warehouse, sql, {"new": registerid, "old": world.registers[0]})
        if listed is not None:
            sql = source.sql(
                "UPDATE {cash_registers} SET first_seen_at = :at WHERE registerid = :r"
            )
            _execute(warehouse, sql, {"r": registerid, "at": listed})
    finally:
        warehouse.close()


#: POS z-report 3 of register 5, and store 210's 3rd store z-report: no payment lines at all.
NO_PAYMENTS = (5, 3, "210", 2)


def _drop_payment_lines(world: World) -> str:
    """Delete every payment and sub-payment line of the NO_PAYMENTS reports; returns the
    store z-report's id."""
    index, zreportid, store, nth = NO_PAYMENTS
    pos = {"r": world.registers[index], "z": zreportid}
    report = _store_line(store, nth)(world)["store_zreport_id"]
    for kind in ("payments", "subpayments"):
        _run_sql(
            world,
            f"DELETE FROM {{pos_z_report_{kind}}} WHERE registerid = :r AND zreportid = :z",
            pos,
        )
        _run_sql(
            world,
            f"DELETE FROM {{store_z_report_{kind}}} WHERE store_zreport_id = :s",
            {"s": report},
        )
    return str(report)


@dataclass
class Tampered:
    """The verify run of a tampered world, the world, and each store z-report tampered."""

    run: VerifyRun
    world: World
    store_reports: dict[str, str]
    no_payments: str  # the store z-report without payment lines


@pytest.fixture(scope="module")
def tampered(pristine: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tampered]:
    """A clean world with one value changed per rule the simulator cannot break, verified."""
    with copy_in(pristine, tmp_path_factory) as world:
        for tamper, _, _ in TAMPERS.values():
            _tamper(world, tamper)
        for tamper in MIDNIGHT:
            _tamper(world, tamper)
        _tamper(world, TOO_HIGH)
        _list_a_register_that_never_reported(world, NEVER_REPORTED, NEVER_REPORTED_LISTED)
        _reject_a_report_without_its_registerid(world)
        _share_registerkey(world, SHARED_KEY[1], SHARED_KEY[0])
        _reject_a_report_without_its_registerid(world, SHARED_KEY[0])
        store_reports = {
            check: str(_tamper(world, tamper)["store_zreport_id"])
            for check, (tamper, _) in STORE_TAMPERS.items()
        }
        no_payments = _drop_payment_lines(world)
        yield Tampered(world.verify(), world, store_reports, no_payments)


@pytest.mark.parametrize("check", list(TAMPERS))
def test_each_rule_broken_in_the_warehouse_is_found(
    tampered: Tampered, check: str, injected: World
) -> None:
    """A value changed in the warehouse is found by the check whose rule it breaks."""
    _, index, zreportid = TAMPERS[check]
    register = injected.registers[index]  # same seed: the same registers in every world
    hits = [
        f
        for f in found(tampered.run, check)
        if f.registerid == register and f.zreportid == zreportid
    ]
    assert hits, [f for f in tampered.run.findings if f.check == check]


@pytest.mark.parametrize("check", list(STORE_TAMPERS))
def test_store_z_report_lines_are_checked_like_pos_ones(tampered: Tampered, check: str) -> None:
    """A store z-report's VAT groups, product groups and payments are held to the same rules
    as a POS z-report's, and a broken one is named by its store and store z-report."""
    store, report = STORE_TAMPERS[check][1], tampered.store_reports[check]
    hits = [
        f
        for f in found(tampered.run, check)
        if f.store_id == store and f.registerid is None and f.store_zreport_id == report
    ]
    assert len(hits) == 1, [f for f in tampered.run.findings if f.check == check]


def test_a_report_whose_payment_lines_are_lost_is_flagged_for_its_total(
    tampered: Tampered,
) -> None:
    """A POS or store z-report with takings but no payment lines at all (a payments list
    lost on its way in) is a payments finding: 0.00 expected from its lines, its whole
    moneysummarytotal actual."""
    index, zreportid, _, _ = NO_PAYMENTS
    register = tampered.world.registers[index]
    hits = [
        f
        for f in found(tampered.run, "payments")
        if (f.registerid, f.zreportid) == (register, zreportid)
        or f.store_zreport_id == tampered.no_payments
    ]
    assert len(hits) == 2, hits
    for hit in hits:
        assert hit.expected == Decimal("0.00")
        assert hit.actual is not None
        assert hit.actual != 0
        assert "lists no payments" in hit.details


def test_cli_exit_codes_and_json(
    injected: World,
    clean: World,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """0 when clean, 1 with findings (JSON lists them), 2 with one line on bad usage."""
    if injected.target.name != "duckdb":
        pytest.skip("the CLI is the same on every target; DuckDB stands for them")
    monkeypatch.setenv("SITOO_TARGET_URL", clean.target.url)
    assert main(["verify"]) == 0
    assert "findings: none" in capsys.readouterr().out
    monkeypatch.setenv("SITOO_TARGET_URL", injected.target.url)
    metrics = tmp_path / "verify.prom"
    assert main(["verify", "--json", "--metrics-file", str(metrics)]) == 1
    payload = json.loads(capsys.readouterr().out)
    assert len(payload["findings"]) == len(EXPECTED)
    assert payload["findings"][0]["severity"] == "critical"
    assert {c["name"]: c["status"] for c in payload["checks"]}["orders"] == "failed"
    text = metrics.read_text()
    assert 'sitoo_verify_findings{check="grand_total",severity="critical"} 1.0' in text
    assert 'sitoo_verify_findings{check="summary",severity="error"} 0.0' in text
    with pytest.raises(SystemExit) as usage:
        main(["verify", "--since", "yesterday"])
    assert usage.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "--since" in err
    assert "Traceback" not in err
    assert main(["verify", "--store", "nowhere"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "nowhere" in err


def test_verify_of_an_empty_or_wrong_server_schema_fails_and_creates_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`verify` pointed at a server schema with no sitoo-sync tables (a typo in
    SITOO_TARGET_SCHEMA) says there is nothing to verify, exit 1, and creates neither the
    schema nor its findings table; it used to pass with no findings, keeping an alert green."""
    import sqlalchemy as sa

    with target_for("postgres", tmp_path) as target:
        wrong = f"{target.schema}_typo"
        monkeypatch.setenv("SITOO_TARGET_URL", target.url)
        monkeypatch.setenv("SITOO_TARGET_SCHEMA", wrong)
        assert main(["verify"]) == 1
        err = capsys.readouterr().err
        assert err.startswith(
            f"sitoo-sync: nothing to verify: no sitoo-sync tables in schema {wrong}"
        )
        engine = sa.create_engine(target.url.replace("postgresql://", "postgresql+psycopg://", 1))
        try:
            with engine.connect() as conn:
                assert wrong not in sa.inspect(conn).get_schema_names()
        finally:
            engine.dispose()


def test_a_closing_after_utc_midnight_belongs_to_its_business_day(tampered: Tampered) -> None:
    """A z-report closed at 00:30 local time (23:30 UTC the day before) is found on its
    business_date, and --since that day still judges it."""
    register = tampered.world.registers[1]

    def midnight(run: VerifyRun) -> list[Finding]:
        return [f for f in found(run, "summary") if (f.registerid, f.zreportid) == (register, 5)]

    hits = midnight(tampered.run)  # its subtotal, and the total built on it
    assert hits
    assert len({f.day for f in hits}) == 1
    hit = hits[0]
    ((created, business),) = _rows(
        tampered.world,
        "SELECT datecreated, business_date FROM {pos_z_reports} "
        "WHERE registerid = :r AND zreportid = 5",
        {"r": register},
    )
    closed = to_utc(created)
    assert closed is not None
    assert (closed.hour, closed.minute) == (23, 30)
    assert to_day(business) == closed.date() + timedelta(days=1) == hit.day
    assert len(midnight(tampered.world.verify(Scope(since=hit.day)))) == len(hits)


def test_one_error_has_one_sign_in_every_check(tampered: Tampered) -> None:
    """A POS z-report's moneysalestotal 10.00 too high is difference +10.00 in every check
    that judges that report; store_figures, which judges the store z-report, shows that
    report 10.00 short (-10.00); a VAT group or payment line too high is negative alike."""
    register = tampered.world.registers[2]
    of_report = {
        f.check: f.difference
        for f in tampered.run.findings
        if (f.registerid, f.zreportid) == (register, 12)
    }
    assert of_report == {
        "journal_receipts": TEN,
        "vat_groups": TEN,
        "product_groups": TEN,
        "orders": TEN,
    }
    store = [
        f
        for f in found(tampered.run, "store_figures")
        if f.difference == -TEN and "moneysalestotal is" in f.details
    ]
    assert len(store) == 1, found(tampered.run, "store_figures")
    # a line 1.00 too high (the source side): -1.00, whichever lines they are
    lines = {
        check: {f.difference for f in found(tampered.run, check) if f.zreportid == zreportid}
        for check, (_, _, zreportid) in TAMPERS.items()
        if check in ("vat_groups", "payments")
    }
    assert lines == {"vat_groups": {-ONE}, "payments": {-ONE}}


def test_a_listed_register_that_never_reported_is_silent(tampered: Tampered) -> None:
    """A register in cash_registers with no z-report, receipt or entry at all is flagged as
    silent, in the store its listing gives it, for the days its store has data since it was
    first listed (not the store's whole history)."""
    hits = [f for f in found(tampered.run, "silence") if f.registerid == NEVER_REPORTED]
    assert len(hits) == 1, found(tampered.run, "silence")
    assert hits[0].store_id == "200"
    world = tampered.world
    keys = {"a": world.registers[0], "b": world.registers[1]}
    latest = []
    warehouse = open_warehouse(world.target.url, schema=world.target.schema)
    try:
        with warehouse.transaction():
            source = Source(warehouse)
            for sql in (
                "SELECT MAX(datecreated) FROM {pos_z_reports} WHERE store_id = '200'",
                "SELECT MAX(datecreated) FROM {journal_entries} WHERE registerid IN (:a, :b)",
            ):
                ((at,),) = list(source.rows(sql, keys))
                latest.append(to_utc(at))
    finally:
        warehouse.close()
    newest = max(t for t in latest if t is not None)
    days = (newest - NEVER_REPORTED_LISTED).total_seconds() // 86400
    assert hits[0].actual == Decimal(int(days))


def test_a_gap_rejected_without_its_registerid_is_named(tampered: Tampered) -> None:
    """A missing z-report that rejects holds under `registerid=<missing>`, its register told
    by the raw record's manufacturerid and registerkey, is named as rejected, not as lost."""
    register = tampered.world.registers[4]
    hits = [
        f
        for f in found(tampered.run, "numbering_gap")
        if (f.registerid, f.zreportid) == (register, 7)
    ]
    assert len(hits) == 1, found(tampered.run, "numbering_gap")
    assert "rejected at load" in hits[0].details
    assert "not uploaded" not in hits[0].details


def _journal_only(world: World, index: int) -> None:
    """Register `index` keeps its journal entries, but has no z-report or receipt at all."""
    key = {"r": world.registers[index]}
    for table in ("pos_z_reports", "journal_receipts"):
        _run_sql(world, f"DELETE FROM {{{table}}} WHERE registerid = :r", key)


#: Register 6 (store 230): journal entries, no z-report, no receipt.
JOURNAL_ONLY = 6
#: Register 4 (store 220, Stockholm): no z-report after its 9th, and journal activity until
#: 23:30 UTC, the next day in Stockholm; its z-report 1 was loaded with the 'UTC' fallback.
FALLBACK_ZONE = 4


def _silent_past_midnight_with_one_utc_report(world: World, index: int) -> datetime:
    """Register `index` without z-reports from its 10th, its latest journal entry moved to
    23:30 UTC of its day, and its z-report 1 loaded in 'UTC': returns that entry's time."""
    key = {"r": world.registers[index]}
    _run_sql(world, "DELETE FROM {pos_z_reports} WHERE registerid = :r AND zreportid >= 10", key)
    ((entry, created),) = _rows(
        world,
        "SELECT id, datecreated FROM {journal_entries} WHERE registerid = :r "
        "AND datecreated = (SELECT MAX(datecreated) FROM {journal_entries} "
        "WHERE registerid = :r)",
        key,
    )
    latest = to_utc(created)
    assert latest is not None
    assert (latest.hour, latest.minute) < (23, 30)
    moved = latest.replace(hour=23, minute=30, second=0, microsecond=0)
    _run_sql(
        world,
        "UPDATE {journal_entries} SET datecreated = :at WHERE registerid = :r AND id = :id",
        {**key, "id": entry, "at": moved},
    )
    _run_sql(
        world,
        "UPDATE {pos_z_reports} SET business_timezone = 'UTC' WHERE registerid = :r "
        "AND zreportid = 1",
        key,
    )
    return moved


@dataclass
class Silent:
    """A clean world with registers made silent in ways the simulator cannot, verified."""

    run: VerifyRun
    world: World
    last_entry: datetime  # FALLBACK_ZONE's


@pytest.fixture(scope="module")
def silent(pristine: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Silent]:
    """A clean world with silent registers, verified."""
    with copy_in(pristine, tmp_path_factory) as world:
        _journal_only(world, JOURNAL_ONLY)
        moved = _silent_past_midnight_with_one_utc_report(world, FALLBACK_ZONE)
        _list_a_register_that_never_reported(world, NEWLY_LISTED)
        yield Silent(world.verify(), world, moved)


def test_a_register_with_only_journal_entries_is_silent_in_its_listed_store(
    silent: Silent,
) -> None:
    """A register with journal entries but no z-report or receipt is silent in the store its
    listing gives it, and --store that store finds it."""
    register = silent.world.registers[JOURNAL_ONLY]
    hits = [f for f in found(silent.run, "silence") if f.registerid == register]
    assert [f.store_id for f in hits] == ["230"], found(silent.run, "silence")
    scoped = silent.world.verify(Scope(store="230"))
    assert [f.registerid for f in found(scoped, "silence")] == [register]


def test_silence_is_dated_in_the_zone_of_the_registers_reports_not_a_utc_fallback(
    silent: Silent,
) -> None:
    """One z-report loaded with the 'UTC' fallback does not outvote the zone of the
    register's other z-reports: activity at 23:30 UTC is found on the next (Stockholm) day."""
    register = silent.world.registers[FALLBACK_ZONE]
    hits = [f for f in found(silent.run, "silence") if f.registerid == register]
    assert [f.day for f in hits] == [silent.last_entry.date() + timedelta(days=1)], hits


def test_the_verify_benchmarks_data_is_clean(tmp_path: Path) -> None:
    """`bench --verify` builds consistent data, store z-report lines and POS orders included:
    verify finds nothing on it, and the store line checks have store lines to judge."""
    from sitoo_sync.verify.bench import build

    warehouse = open_warehouse(f"duckdb:///{tmp_path / 'bench.duckdb'}")
    try:
        build(warehouse, 20, 10, 5)
        lines = {
            kind: int(warehouse.query(f"SELECT count(*) FROM store_z_report_{kind}")[0][0])
            for kind in ("vat_groups", "product_groups", "payments", "subpayments")
        }
        orders = warehouse.query("SELECT count(*) FROM orders")[0][0]
        run = run_verify(warehouse, Scope(), write=False)
    finally:
        warehouse.close()
    assert run.findings == []
    assert all(lines.values()), lines
    assert orders == 20 * 10 * 5


def test_the_verify_benchmarks_orders_are_judged(tmp_path: Path) -> None:
    """The benchmark's orders are what the orders check judges (the benchmark times it): an
    order one cent off its receipt and an order gone are both found, the gone one also as
    its receipt's missing order."""
    from sitoo_sync.verify.bench import build

    warehouse = open_warehouse(f"duckdb:///{tmp_path / 'bench.duckdb'}")
    try:
        build(warehouse, 20, 10, 5)
        first, second = (
            warehouse.query(
                "SELECT orderid, registerid FROM orders WHERE registerid = ? "
                "AND business_date = DATE '2025-01-05' ORDER BY orderid LIMIT 2",
                [registerid],
            )[0]
            for registerid in ("{REG-0003}", "{REG-0007}")
        )
        warehouse.execute(
            "UPDATE orders SET moneytotal_vat = moneytotal_vat + 0.01 WHERE orderid = ?",
            [first[0]],
        )
        warehouse.execute("DELETE FROM orders WHERE orderid = ?", [second[0]])
        run = run_verify(warehouse, Scope(), write=False)
    finally:
        warehouse.close()
    found = sorted((f.registerid, f.zreportid or 0, f.difference) for f in run.findings)
    assert {f.check for f in run.findings} == {"orders"}, run.findings
    assert [(r, z) for r, z, _ in found] == [
        ("{REG-0003}", 5),
        ("{REG-0007}", 0),
        ("{REG-0007}", 5),
    ]
    assert found[0][2] == Decimal("-0.01")  # the z-report states a cent less than the orders
    assert found[1][2] == -1  # one receipt without its order
    assert (found[2][2] or 0) > 0  # the z-report states the sale the orders lack


def test_a_register_listed_today_is_not_silent(silent: Silent) -> None:
    """A register first listed by the latest sync that has not reported yet is not silent:
    its silence is measured from its first listing, not from its store's first data."""
    assert [f for f in found(silent.run, "silence") if f.registerid == NEWLY_LISTED] == []


def test_a_shared_identifier_does_not_block_a_unique_one(tampered: Tampered) -> None:
    """A reject without its registerid whose registerkey two registers share is still named
    as rejected when its manufacturerid belongs to one of them only."""
    register = tampered.world.registers[SHARED_KEY[0]]
    hits = [
        f
        for f in found(tampered.run, "numbering_gap")
        if (f.registerid, f.zreportid) == (register, 7)
    ]
    assert len(hits) == 1, found(tampered.run, "numbering_gap")
    assert "rejected at load" in hits[0].details


def test_silence_of_a_register_that_never_closed_counts_its_days(silent: Silent) -> None:
    """A register with journal activity but never a z-report has the days from its first to
    its last journal entry as `actual`, as every silence finding has its days."""
    world = silent.world
    ((first, last),) = _rows(
        world,
        "SELECT MIN(datecreated), MAX(datecreated) FROM {journal_entries} WHERE registerid = :r",
        {"r": world.registers[JOURNAL_ONLY]},
    )
    start, end = to_utc(first), to_utc(last)
    assert start is not None
    assert end is not None
    hits = [
        f for f in found(silent.run, "silence") if f.registerid == world.registers[JOURNAL_ONLY]
    ]
    assert [f.actual for f in hits] == [Decimal(int((end - start).total_seconds() // 86400))]


def test_a_listed_pos_z_report_that_is_missing_names_its_store_z_report_once(
    tampered: Tampered,
) -> None:
    """The text line of a store z-report listing an unknown POS z-report names that store
    z-report once, in its where part, not again in its details."""
    hits = [f for f in found(tampered.run, "store_membership") if f.zreportid == 999]
    assert len(hits) == 1, found(tampered.run, "store_membership")
    report = hits[0].store_zreport_id
    assert report
    assert finding_line(hits[0]).count(report) == 1


def test_verify_says_what_it_judged(clean: World, tmp_path: Path) -> None:
    """The summary, --json and the metrics file count the z-reports in scope, and a scope
    holding none says the checks passed for want of anything to judge, not "all passed"."""
    from sitoo_sync.verify.report import as_json, summary_lines, write_metrics

    keys = clean.sim.world.valid_keys()
    run = clean.verify()
    assert run.coverage.pos_reports == len(keys)
    assert run.coverage.registers == len({registerid for registerid, _ in keys})
    assert run.coverage.store_reports > 0
    line = list(summary_lines(run))[1]
    assert line.startswith(f"  checked: {len(keys)} POS z-reports of {run.coverage.registers} ")
    assert json.loads(as_json(run))["coverage"]["pos_z_reports"] == len(keys)
    write_metrics(run, tmp_path / "v.prom")
    text = (tmp_path / "v.prom").read_text()
    assert f'sitoo_verify_z_reports_checked{{kind="pos"}} {float(len(keys))}' in text
    after = (NOW + timedelta(days=2)).date()
    later = clean.verify(Scope(since=after))
    assert later.coverage.empty
    assert list(summary_lines(later))[1] == (
        f"  checked: nothing, no z-report in the warehouse from {after} on; the checks passed "
        "for want of anything to judge"
    )


def test_verify_of_a_warehouse_without_z_reports_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A warehouse that syncs no z-reports (SITOO_STREAMS without them) is one line, exit 1:
    every check skipped and "findings: none", exit 0, kept a monitoring alert green."""
    import duckdb

    db = tmp_path / "w.duckdb"
    with duckdb.connect(str(db)) as con:
        con.execute("CREATE TABLE sync_state (stream VARCHAR)")
    monkeypatch.setenv("SITOO_TARGET_URL", f"duckdb:///{db}")
    assert main(["verify"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        f"sitoo-sync: nothing to verify: no POS or store z-reports in duckdb:///{db} yet (sync "
        "them first: `sitoo-sync run --once`, with pos_z_reports and store_z_reports in "
        "SITOO_STREAMS if it is set)\n"
    )


def test_fail_on_sets_the_severity_that_fails_the_command(
    injected: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """With only warnings found (silent registers), `verify` exits 1 by default but 0 with
    `--fail-on error`; a critical finding fails every --fail-on, and the findings are
    listed either way."""
    if injected.target.name != "duckdb":
        pytest.skip("the CLI is the same on every target; DuckDB stands for them")
    monkeypatch.setenv("SITOO_TARGET_URL", injected.target.url)
    since = (NOW - timedelta(days=10)).date().isoformat()  # leaves only silence warnings
    assert main(["verify", "--since", since]) == 1
    capsys.readouterr()
    assert main(["verify", "--since", since, "--fail-on", "error"]) == 0
    assert "WARNING  silence" in capsys.readouterr().out
    assert main(["verify", "--fail-on", "critical"]) == 1
    assert "CRITICAL grand_total" in capsys.readouterr().out


def test_store_reports_before_the_pos_backfill_began_are_not_judged(tmp_path: Path) -> None:
    """POS z-reports backfilled from a later day than the store z-reports (`reset
    pos_z_reports --since`): the store reports' listings of a register's closings before its
    first one in the warehouse are history, as in numbering_gap, not hundreds of
    store_membership errors; one missing after it is still named."""
    with target_for("duckdb", tmp_path) as fresh:
        world = synced(fresh, tmp_path)
        register = world.registers[0]
        for where in ("zreportid <= 3", "zreportid = 6"):
            _run_sql(
                world,
                f"DELETE FROM {{pos_z_reports}} WHERE registerid = :r AND {where}",
                {"r": register},
            )
        hits = [
            (f.registerid, f.zreportid, f.details)
            for f in world.verify().findings
            if f.check == "store_membership"
        ]
    assert hits == [
        (
            register,
            6,
            "lists z-report 6 of this register, which is not in pos_z_reports (not synced yet, "
            "or never uploaded)",
        )
    ]
