"""Store z-reports: normalization, the day-window strategy, and end to end on the simulator."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from sitoo_sync.cli import main
from sitoo_sync.errors import DisabledStream, FatalApiError
from sitoo_sync.normalize.store_z_reports import normalize_window
from sitoo_sync.settings import Settings
from sitoo_sync.simulator import SimConfig, Simulator
from sitoo_sync.streams.cursors import DayWindows, WindowContext
from tests.conftest import SyncFn
from tests.support import FIXTURES, query, settings_for

STOCKHOLM = ZoneInfo("Europe/Stockholm")
# 00:30 in Stockholm on 21 November: the aggregation for the 20th ran at 22:00 yesterday.
NOW = datetime(2026, 11, 20, 23, 30, tzinfo=UTC)
STRATEGY = DayWindows(param="day", config_path="/store-z-reports/config")


def vendor_example() -> dict[str, Any]:
    text = (FIXTURES / "store_z_reports_vendor_example.json").read_text()
    records: list[dict[str, Any]] = json.loads(text, parse_float=Decimal)
    return records[0]


# ---- normalization ---------------------------------------------------------------------


def test_vendor_example_lifts_data_beside_the_header() -> None:
    """The header fields and the `data` figures become one typed row."""
    window = normalize_window([vendor_example()])
    assert window.rejects == []
    [row] = window.tables["store_z_reports"].to_pylist()
    assert row["store_zreport_id"] == "b86a9d9e-6d58-4dce-a75f-ff63cdc459bc"
    assert row["store_id"] == "200"
    assert row["day_created"] == date(2021, 3, 17)
    assert row["date_created"] == datetime.fromtimestamp(1615977763, UTC)
    assert row["moneysalestotal"] == Decimal("2248.00")
    assert row["moneycash_in"] == Decimal("48778.00")
    assert row["numreceipts"] == 5
    assert row["extra"] is None


def test_vendor_example_children_and_register_links() -> None:
    """Data lists become store_z_report_* rows; register_zreports become link rows."""
    window = normalize_window([vendor_example()])
    links = window.tables["store_z_report_registers"].to_pylist()
    assert [(r["position"], r["registerid"], r["zreportid"]) for r in links] == [
        (0, "{3CCB9848-155A-49E1-7CA8-5F7F78FC3067}", 24),
        (1, "{562A1F6B-68E6-2028-2F71-A177E0E75214}", 28),
    ]
    [vat] = window.tables["store_z_report_vat_groups"].to_pylist()
    assert (vat["section"], vat["vatvalue"], vat["moneytotalvat"]) == (
        "sales",
        Decimal("25"),
        Decimal("449.60"),
    )
    [discount] = window.tables["store_z_report_discounts"].to_pylist()
    assert discount["vouchercode"] is None
    assert discount["moneytotal"] == Decimal("300.00")


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda r: r.pop("store_zreport_id"), "store_zreport_id: missing or empty key field"),
        (lambda r: r.update(data=[1]), "data: expected an object"),
        (lambda r: r.update(day_created="17/03/2021"), "day_created: not a date"),
        (lambda r: r["data"].update(moneysalestotal="2248.001"), "moneysalestotal: more than 2"),
        (lambda r: r.update(register_zreports=[3]), "register_zreports[0]: expected an object"),
    ],
)
def test_bad_store_reports_are_rejected_with_a_reason(
    mutate: Callable[[dict[str, Any]], object], reason: str
) -> None:
    """A broken store report is kept raw, as the API sent it, with the reason."""
    record = vendor_example()
    mutate(record)
    window = normalize_window([record])
    assert window.row_count() == 0
    [reject] = window.rejects
    assert reason in reject.reason
    assert "data" in json.loads(reject.raw) or "data" not in record


def test_unknown_fields_of_header_and_data_are_kept() -> None:
    """Fields nobody declared, in the header or in data, are kept in `extra`."""
    record = vendor_example()
    record["region"] = "north"
    record["data"]["moneybagid"] = "B-1"
    [row] = normalize_window([record]).tables["store_z_reports"].to_pylist()
    assert json.loads(row["extra"]) == {"moneybagid": "B-1", "region": "north"}


# ---- the day-window strategy -----------------------------------------------------------


def context(
    config: Mapping[str, Any] | Exception,
    *,
    now: datetime = NOW,
    asked: list[str] | None = None,
) -> WindowContext:
    def get(path: str) -> Any:
        if isinstance(config, Exception):
            raise config
        return config

    def fetch(params: Mapping[str, str | int]) -> list[Any]:
        if asked is not None:
            asked.append(str(params["day"]))
        return [{"day": params["day"]}]

    return WindowContext(fetch=fetch, get=get, now=now)


def strategy(
    grace: timedelta = timedelta(hours=1), start: date | None = None, lookback: int = 3
) -> DayWindows:
    """The stream's strategy with its own settings (what `[streams.store_z_reports]` sets)."""
    return replace(
        STRATEGY,
        grace_minutes=int(grace.total_seconds() // 60),
        start_day=start,
        lookback_days=lookback,
    )


CONFIG = {"aggregation_active": True, "hour_of_day": 22, "time_zone": "Europe/Stockholm"}


def last_final_day(now: datetime, hour: int, grace: timedelta) -> date:
    """Independent statement of the rule: a day is final once the next day's run + grace passed."""
    local_today = now.astimezone(STOCKHOLM).date()
    candidates = (local_today - timedelta(days=n) for n in range(5))
    return next(
        d
        for d in candidates
        if datetime.combine(d + timedelta(days=1), time(hour), STOCKHOLM) + grace <= now
    )


@pytest.mark.parametrize(
    ("now", "grace"),
    [
        (NOW, timedelta(hours=1)),
        (NOW, timedelta(0)),
        (datetime(2026, 11, 20, 20, 59, tzinfo=UTC), timedelta(0)),  # 21:59 local
        (datetime(2026, 11, 20, 21, 0, tzinfo=UTC), timedelta(0)),  # 22:00 local
        (datetime(2026, 7, 1, 20, 30, tzinfo=UTC), timedelta(minutes=30)),  # summer time
    ],
)
def test_a_day_is_final_after_the_next_days_run_plus_grace(now: datetime, grace: timedelta) -> None:
    """The last final day follows the aggregation hour in the configured zone."""
    today, final = strategy(grace=grace).schedule(context(CONFIG, now=now))
    assert today == now.astimezone(STOCKHOLM).date()
    assert final == last_final_day(now, 22, grace)


@pytest.mark.parametrize(
    ("config", "why"),
    [
        ({"aggregation_active": False, "hour_of_day": 22, "time_zone": "UTC"}, "switched off"),
        (FatalApiError("not found", status=404), "not configured"),
    ],
)
def test_an_account_without_aggregation_disables_the_stream(
    config: Mapping[str, Any] | Exception, why: str
) -> None:
    """Aggregation off, or no config at all, is a disabled stream, not an error."""
    with pytest.raises(DisabledStream, match=why):
        list(STRATEGY.windows(context(config), None))


def test_other_config_errors_are_failures() -> None:
    """A 500 on the config is a real failure, not a reason to look disabled."""
    with pytest.raises(FatalApiError):
        list(STRATEGY.windows(context(FatalApiError("boom", status=400)), None))


def test_first_run_reads_from_the_start_day_and_stops_the_cursor_at_the_last_final_day() -> None:
    """Days after the last final day are read but the cursor does not pass them."""
    asked: list[str] = []
    start = date(2026, 11, 10)
    windows = list(strategy(start=start).windows(context(CONFIG, asked=asked), None))
    assert asked[0] == "2026-11-10"
    assert asked[-1] == "2026-11-21"  # today, local
    assert windows[-1].cursor == "2026-11-19"
    assert [w.cursor for w in windows][:2] == ["2026-11-10", "2026-11-11"]


def test_later_runs_reread_the_lookback_then_continue() -> None:
    """With a cursor, a tick re-reads `lookback` final days and everything after them."""
    asked: list[str] = []
    windows = list(strategy(lookback=3).windows(context(CONFIG, asked=asked), "2026-11-18"))
    assert asked == [f"2026-11-{d}" for d in range(16, 22)]
    assert windows[-1].cursor == "2026-11-19"
    assert all(w.cursor >= "2026-11-18" for w in windows)


# ---- end to end ------------------------------------------------------------------------


@pytest.fixture
def store_sim() -> Iterator[Simulator]:
    """A simulator whose clock is NOW, with 70 days of history."""
    sim = Simulator.create(SimConfig(seed=8, days=70, now=int(NOW.timestamp()))).start()
    yield sim
    sim.stop()


def clock_of(sim: Simulator) -> Callable[[], datetime]:
    return lambda: datetime.fromtimestamp(sim.world.config.now, UTC)


def store_settings(sim: Simulator, tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "streams": ["store_z_reports"],
        "stream_options": {
            "store_z_reports": {"start_day": NOW.astimezone(STOCKHOLM).date() - timedelta(days=60)}
        },
    }
    values.update(overrides)
    return settings_for(sim, tmp_path / "w.duckdb", **values)


def simulator_totals(sim: Simulator) -> dict[tuple[str, date], tuple[str, Decimal, int]]:
    start = NOW.astimezone(STOCKHOLM).date() - timedelta(days=60)
    return {
        (r["store_id"], date.fromisoformat(r["day_created"])): (
            r["store_zreport_id"],
            Decimal(r["data"]["moneysalestotal"]),
            len(r["register_zreports"]),
        )
        for r in sim.world.store_z_reports(None, None, limit=None)
        if date.fromisoformat(r["day_created"]) >= start
    }


def warehouse_totals(settings: Settings) -> dict[tuple[str, date], tuple[str, Decimal, int]]:
    rows = query(
        settings,
        "SELECT s.store_id, s.day_created, s.store_zreport_id, s.moneysalestotal, "
        "(SELECT count(*) FROM store_z_report_registers r "
        " WHERE r.store_zreport_id = s.store_zreport_id) FROM store_z_reports s",
    )
    return {(r[0], r[1]): (r[2], r[3], r[4]) for r in rows}


def test_backfill_of_60_days_matches_the_simulator(
    store_sim: Simulator, tmp_path: Path, sync: SyncFn
) -> None:
    """Every store and day loads once, totals equal the simulator's, NO_STORE included."""
    settings = store_settings(store_sim, tmp_path)
    report = sync(settings, clock=clock_of(store_sim))
    assert report.ok
    expected = simulator_totals(store_sim)
    assert warehouse_totals(settings) == expected
    assert len({day for _, day in expected}) == 60  # the 60 days before today
    assert "NO_STORE" in {store for store, _ in expected}
    # Store totals also equal the sum of that store's POS z-reports of the day.
    first = next(iter(expected))
    pos = [
        r.body
        for r in store_sim.world.all_reports()
        if (r.body["store_id"] or "NO_STORE") == first[0]
        and store_sim.world.store_day(r) == first[1].isoformat()
    ]
    assert sum(Decimal(b["moneysalestotal"]) for b in pos) == expected[first][1]


def test_cursor_stops_at_the_last_final_day(
    store_sim: Simulator, tmp_path: Path, sync: SyncFn
) -> None:
    """Yesterday is loaded (already aggregated) but not final, so the cursor stays before it."""
    settings = store_settings(store_sim, tmp_path)
    sync(settings, clock=clock_of(store_sim))
    [(cursor, status)] = query(settings, "SELECT cursor, last_status FROM sync_state")
    assert cursor == last_final_day(NOW, 22, timedelta(hours=1)).isoformat() == "2026-11-19"
    assert status == "ok"
    days = {r[0] for r in query(settings, "SELECT DISTINCT day_created FROM store_z_reports")}
    assert date(2026, 11, 20) in days


def test_second_tick_rereads_only_the_lookback_and_open_days(
    store_sim: Simulator, tmp_path: Path, sync: SyncFn
) -> None:
    """A tick after a backfill asks for the config, 3 lookback days and the days after."""
    settings = store_settings(store_sim, tmp_path)
    sync(settings, clock=clock_of(store_sim))
    before = warehouse_totals(settings)
    requests = store_sim.requests_to("/store-z-reports")
    sync(settings, clock=clock_of(store_sim))
    # config + 17, 18, 19 (lookback) + 20, 21 (not final yet)
    assert store_sim.requests_to("/store-z-reports") - requests == 1 + 3 + 2
    assert warehouse_totals(settings) == before


def test_a_reaggregated_day_is_replaced_not_doubled(
    store_sim: Simulator, tmp_path: Path, sync: SyncFn
) -> None:
    """A late POS z-report and a re-run give a day a new id and totals: one row remains."""
    settings = store_settings(store_sim, tmp_path)
    sync(settings, clock=clock_of(store_sim))
    day = date(2026, 11, 18)  # final, inside the 3-day lookback
    store = "210"
    old_id = warehouse_totals(settings)[(store, day)][0]
    register = next(r for r in store_sim.world.registers if r.store_id == store)
    closed = int(datetime.combine(day, time(12), STOCKHOLM).timestamp())
    late = store_sim.world.make_report(register, closed, store_sim.world.config.now)
    store_sim.world.add_report(late)
    store_sim.world.reaggregate(store, day.isoformat())
    report = sync(settings, clock=clock_of(store_sim))
    assert report.ok
    totals = warehouse_totals(settings)
    assert totals == simulator_totals(store_sim)
    new_id, _, links = totals[(store, day)]
    assert new_id != old_id
    assert (late.body["registerid"], late.body["zreportid"]) in set(
        query(
            settings,
            f"SELECT registerid, zreportid FROM store_z_report_registers "
            f"WHERE store_zreport_id = '{new_id}'",
        )
    )
    assert links == len(
        query(
            settings, f"SELECT * FROM store_z_report_registers WHERE store_zreport_id = '{new_id}'"
        )
    )
    assert query(
        settings, f"SELECT count(*) FROM store_z_reports WHERE store_zreport_id = '{old_id}'"
    ) == [(0,)]
    for table in ("store_z_report_registers", "store_z_report_vat_groups"):
        orphans = query(
            settings,
            f"SELECT count(*) FROM {table} c ANTI JOIN store_z_reports p USING (store_zreport_id)",
        )
        assert orphans == [(0,)], table


def test_store_reports_join_their_pos_z_reports(
    store_sim: Simulator, tmp_path: Path, sync: SyncFn
) -> None:
    """Every register link of a store z-report finds its POS z-report in the warehouse."""
    settings = store_settings(store_sim, tmp_path, streams=["pos_z_reports", "store_z_reports"])
    assert sync(settings, clock=clock_of(store_sim)).ok
    links, matched = query(
        settings,
        "SELECT count(*), count(p.zreportid) FROM store_z_report_registers r "
        "LEFT JOIN pos_z_reports p USING (registerid, zreportid)",
    )[0]
    assert links > 0
    assert matched == links
    # and the join reproduces each store report's total from its POS z-reports
    mismatches = query(
        settings,
        "SELECT count(*) FROM (SELECT s.store_zreport_id, s.moneysalestotal, "
        "sum(p.moneysalestotal) AS pos_total FROM store_z_reports s "
        "JOIN store_z_report_registers r USING (store_zreport_id) "
        "JOIN pos_z_reports p USING (registerid, zreportid) GROUP BY ALL) "
        "WHERE moneysalestotal <> pos_total",
    )
    assert mismatches == [(0,)]


@pytest.mark.parametrize(("mode", "why"), [("inactive", "switched off"), ("missing", "404")])
def test_account_without_aggregation_exits_0_and_status_says_why(
    store_sim: Simulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    mode: str,
    why: str,
) -> None:
    """The run succeeds, the stream is disabled, and `status` says so with the reason."""
    store_sim.world.aggregation = mode
    for name, value in store_sim.settings_env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("SITOO_TARGET_URL", f"duckdb:///{tmp_path / 'w.duckdb'}")
    monkeypatch.setenv("SITOO_STREAMS", "store_z_reports")
    assert main(["run", "--once"]) == 0
    assert "store_z_reports (account 1500): disabled" in capsys.readouterr().out
    assert main(["status", "--json"]) == 0
    [state] = json.loads(capsys.readouterr().out)
    assert state["last_status"] == "disabled"
    assert why in state["last_status_detail"]
    assert state["last_error"] is None
    assert main(["status"]) == 0
    assert "disabled" in capsys.readouterr().out
    assert store_sim.requests_to("/store-z-reports") == 1  # the config only
