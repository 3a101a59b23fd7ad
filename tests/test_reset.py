"""`sitoo-sync reset`: cursors move back, rows are kept, and the next tick reads again."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from sitoo_sync.cli import main
from sitoo_sync.errors import ConfigError
from sitoo_sync.normalize.pos_z_reports import POS_Z_REPORTS as POS_TABLE
from sitoo_sync.reset import reset_stream
from sitoo_sync.settings import Settings
from sitoo_sync.simulator import SimConfig, Simulator
from sitoo_sync.streams import STREAMS
from sitoo_sync.streams.cursors import WindowContext
from sitoo_sync.warehouse import open_warehouse
from sitoo_sync.warehouse.base import SYSTEM_TABLES, Warehouse
from tests.conftest import SyncFn
from tests.support import query, settings_for, take_lock, target_settings, use_simulator
from tests.targets import ALL_TARGETS, target_for


@pytest.fixture
def world() -> Iterator[Simulator]:
    """Ten days of z-reports and journals on four registers."""
    sim = Simulator.create(SimConfig(seed=41, days=10, registers_per_store=1)).start()
    yield sim
    sim.stop()


@pytest.fixture
def loaded(
    world: Simulator, sync: SyncFn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Settings:
    """POS z-reports loaded once into a DuckDB file, and the CLI pointed at both."""
    settings = settings_for(world, tmp_path / "w.duckdb", streams=["pos_z_reports"])
    assert sync(settings).ok
    use_simulator(monkeypatch, world, tmp_path / "w.duckdb")
    return settings


def day_before_last(sim: Simulator) -> date:
    """The UTC day two days before the simulator's clock."""
    return (datetime.fromtimestamp(sim.world.config.now, UTC) - timedelta(days=2)).date()


def test_reset_since_a_day_reloads_what_went_missing_and_keeps_the_rest(
    loaded: Settings, world: Simulator, sync: SyncFn
) -> None:
    """Rows deleted from the target after the day come back; earlier rows are untouched."""
    settings = loaded
    tables = STREAMS["pos_z_reports"].tables
    # Rows read again are stamped again (_loaded_at, _run_id): compare what they hold.
    data = "SELECT * EXCLUDE (_loaded_at, _run_id) FROM"
    full = {t.name: Counter(query(settings, f"{data} {t.name}")) for t in tables}
    since = day_before_last(world)
    start = int(datetime.combine(since, datetime.min.time(), UTC).timestamp())
    lost = f"SELECT registerid, zreportid FROM pos_z_reports WHERE epoch(dateadded) >= {start}"
    assert 0 < len(query(settings, lost)) < sum(full["pos_z_reports"].values())
    for table in reversed(tables):  # children first, as someone cleaning up a day would
        query(settings, f"DELETE FROM {table.name} WHERE (registerid, zreportid) IN ({lost})")

    assert sync(settings).ok  # an ordinary tick only re-reads the overlap: still missing
    assert len(query(settings, "SELECT * FROM pos_z_reports")) < sum(full["pos_z_reports"].values())

    assert main(["reset", "pos_z_reports", "--since", since.isoformat()]) == 0
    [(cursor, status)] = query(
        settings, "SELECT cursor, last_status FROM sync_state WHERE stream = 'pos_z_reports'"
    )
    assert (cursor, status) == (str(start), "reset")
    assert sync(settings).ok
    assert {t.name: Counter(query(settings, f"{data} {t.name}")) for t in tables} == full


def test_reset_of_one_register_clears_only_its_cursor(
    world: Simulator, sync: SyncFn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--partition clears one register's journal cursor; the next tick backfills it alone."""
    settings = settings_for(world, tmp_path / "w.duckdb", streams=["journal_entries"])
    assert sync(settings).ok
    before = dict(query(settings, "SELECT partition_key, cursor FROM sync_state"))
    register = sorted(before)[1]
    rows = query(settings, "SELECT count(*) FROM journal_entries")

    use_simulator(monkeypatch, world, tmp_path / "w.duckdb")
    assert main(["reset", "journal_entries", "--partition", register]) == 0
    after = dict(query(settings, "SELECT partition_key, cursor FROM sync_state"))
    assert after == {**before, register: None}

    report = sync(settings)
    assert report.ok
    reread = {r.partition: r.rows for r in report.results}
    assert reread[register] > max(v for k, v in reread.items() if k != register)
    assert query(settings, "SELECT count(*) FROM journal_entries") == rows
    assert dict(query(settings, "SELECT partition_key, cursor FROM sync_state")) == before


def test_reset_before_the_first_tick_sets_where_it_starts(
    world: Simulator, sync: SyncFn, tmp_path: Path
) -> None:
    """An account-wide stream never loaded can be told the day its backfill starts."""
    settings = settings_for(world, tmp_path / "w.duckdb", streams=["pos_z_reports"])
    since = day_before_last(world)
    warehouse = open_warehouse(settings.target_url)
    try:
        reset = reset_stream(settings, warehouse, STREAMS["pos_z_reports"], since=since)
    finally:
        warehouse.close()
    assert reset == [settings.resolved_account_id]
    assert sync(settings).ok
    start = datetime.combine(since, datetime.min.time(), UTC)
    [(oldest, count)] = query(settings, "SELECT min(dateadded), count(*) FROM pos_z_reports")
    assert start - timedelta(seconds=settings.overlap_seconds) <= oldest < start + timedelta(days=1)
    assert 0 < count < len(world.world.all_reports())


@pytest.mark.parametrize("name", ["pos_z_reports", "journal_entries", "store_z_reports"])
def test_the_first_read_after_a_reset_starts_at_the_day_less_overlap_or_lookback(
    name: str,
) -> None:
    """Each cursor strategy turns --since into a cursor whose next read covers the day."""
    day = date(2026, 11, 10)
    start = datetime(2026, 11, 10, tzinfo=UTC)
    asked: list[Mapping[str, str | int]] = []

    def fetch(params: Mapping[str, str | int]) -> list[Any]:
        asked.append(dict(params))
        return []

    ctx = WindowContext(
        fetch=fetch,
        fetch_raw=lambda params: {"items": fetch(params)},
        get=lambda _path: {"aggregation_active": True, "hour_of_day": 3, "time_zone": "UTC"},
        overlap=600,
        now=start + timedelta(days=5),
    )
    strategy = STREAMS[name].cursor
    next(iter(strategy.windows(ctx, strategy.resume_from(day))))
    first = asked[0]
    if name == "store_z_reports":
        assert first["day"] == (day - timedelta(days=3)).isoformat()
    else:
        lo = first["dateaddedfrom" if name == "pos_z_reports" else "date_from"]
        assert lo == int(start.timestamp()) - 600


def test_reset_refuses_a_stream_without_a_cursor_and_an_unknown_partition(
    loaded: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    """cash_registers (a full listing) and a partition that was never seen are usage errors."""
    assert main(["reset", "cash_registers"]) == 2
    assert "no cursor to reset" in capsys.readouterr().err
    assert main(["reset", "pos_z_reports", "--partition", "nope"]) == 2
    assert "has no partition 'nope'" in capsys.readouterr().err
    assert main(["reset", "z_reports"]) == 2
    assert "unknown stream 'z_reports'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["reset", "pos_z_reports", "--since", "last week"])
    assert "not a day" in capsys.readouterr().err


def test_reset_never_moves_a_cursor_forward(
    sync: SyncFn,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A --since past the cursor (or in the future) would skip unread data: refused, no change."""
    now = datetime(2026, 11, 10, 12, tzinfo=UTC)
    config = SimConfig(seed=42, days=5, registers_per_store=1, now=int(now.timestamp()))
    with Simulator.create(config) as sim:
        settings = settings_for(sim, tmp_path / "w.duckdb", streams=["pos_z_reports"])
        assert sync(settings, clock=lambda: now).ok
    before = query(settings, "SELECT cursor, last_status FROM sync_state")
    [(cursor, _)] = before
    read_to = datetime.fromtimestamp(int(cursor), UTC).date()  # the day of the newest report
    use_simulator(monkeypatch, sim, tmp_path / "w.duckdb")
    past = (read_to + timedelta(days=1)).isoformat()
    assert main(["reset", "pos_z_reports", "--since", past]) == 2
    assert "a reset only moves back" in capsys.readouterr().err
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    assert main(["reset", "pos_z_reports", "--since", tomorrow]) == 2
    assert "is in the future" in capsys.readouterr().err
    assert query(settings, "SELECT cursor, last_status FROM sync_state") == before
    assert main(["reset", "pos_z_reports", "--since", read_to.isoformat()]) == 0


def test_reset_waits_for_no_tick_that_holds_the_stream(
    loaded: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    """While a tick holds the stream's lock, reset changes nothing and says why in an error
    line (stderr), exit 1."""
    settings = loaded
    cursor = query(settings, "SELECT cursor FROM sync_state")
    lock = take_lock(settings, "pos_z_reports")
    assert lock is not None
    try:
        assert main(["reset", "pos_z_reports"]) == 1
    finally:
        lock.release()
    err = capsys.readouterr().err
    assert "sitoo-sync: pos_z_reports: a tick is loading it right now" in err
    assert query(settings, "SELECT cursor FROM sync_state") == cursor
    assert main(["reset", "pos_z_reports"]) == 0
    assert query(settings, "SELECT cursor FROM sync_state") == [(None,)]


@pytest.mark.parametrize("name", ALL_TARGETS)
def test_reset_then_a_tick_leaves_every_target_as_it_was(
    name: str, world: Simulator, sync: SyncFn, tmp_path: Path
) -> None:
    """Clearing a cursor on any target re-reads everything and changes no row."""
    with target_for(name, tmp_path) as target:
        settings = target_settings(world, target, streams=["pos_z_reports"])
        assert sync(settings).ok
        before = target.bag(POS_TABLE)
        warehouse = open_warehouse(target.url, schema=target.schema)
        try:
            reset_stream(settings, warehouse, STREAMS["pos_z_reports"])
            [state] = [s for s in warehouse.states() if s.stream == "pos_z_reports"]
        finally:
            warehouse.close()
        assert (state.cursor, state.last_status) == (None, "reset")
        report = sync(settings)
        assert report.ok
        assert sum(r.rows for r in report.results) >= sum(before.values())
        assert target.bag(POS_TABLE) == before


def _stored(tmp_path: Path, stream: str, cursor: str) -> tuple[Settings, Warehouse]:
    """Settings for `stream` on a DuckDB file whose site 1 holds `cursor`, and that
    warehouse, open (the caller closes it)."""
    world = Simulator.create(SimConfig(seed=41, days=1, registers_per_store=1))
    settings = settings_for(world, tmp_path / "w.duckdb", streams=[stream])
    warehouse = open_warehouse(settings.target_url)
    warehouse.ensure_schema([*SYSTEM_TABLES, *STREAMS[stream].tables])
    with warehouse.transaction():
        warehouse.set_cursor(stream, "1", cursor, rows=0)
    return settings, warehouse


@pytest.mark.parametrize(
    ("stream", "cursor"),
    [("orders", "garbage"), ("orders", '{"open": 5}'), ("products", "garbage")],
)
def test_reset_since_a_day_replaces_a_cursor_that_cannot_be_read(
    tmp_path: Path, stream: str, cursor: str
) -> None:
    """A stored cursor its strategy cannot read (damaged, or of another shape) says nothing
    of where the stream has read to: `reset --since` replaces it with the day's cursor
    instead of failing on it, so the next tick can read again."""
    settings, warehouse = _stored(tmp_path, stream, cursor)
    try:
        since = (datetime.now(UTC) - timedelta(days=3)).date()
        assert reset_stream(settings, warehouse, STREAMS[stream], since=since) == ["1"]
        (state,) = [s for s in warehouse.states() if s.stream == stream]
    finally:
        warehouse.close()
    assert state.cursor == STREAMS[stream].cursor.resume_from(since)


@pytest.mark.parametrize("name", ALL_TARGETS)
def test_reset_of_a_stream_that_never_ran_says_nothing_was_reset(
    name: str,
    world: Simulator,
    sync: SyncFn,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`reset orders` (sites named by the settings) on a target where only another stream
    ran says there was nothing to reset and exits 0, writing no row, instead of reporting
    partitions reset that no tick ever read."""
    use_simulator(monkeypatch, world, tmp_path / "w.duckdb")
    with target_for(name, tmp_path) as target:
        for key, value in target.env().items():
            monkeypatch.setenv(key, value)
        assert sync(target_settings(world, target, streams=["pos_z_reports"])).ok
        before = _states(target.url, target.schema)
        assert main(["reset", "orders"]) == 0
        assert "orders: nothing to reset" in capsys.readouterr().out
        assert _states(target.url, target.schema) == before
        assert main(["reset", "orders", "--partition", str(world.world.site_ids()[0])]) == 0
        assert "orders: nothing to reset" in capsys.readouterr().out
        assert _states(target.url, target.schema) == before


def _states(url: str, schema: str | None) -> list[Any]:
    """Every `sync_state` row of the target."""
    warehouse = open_warehouse(url, schema=schema)
    try:
        return warehouse.states()
    finally:
        warehouse.close()


@pytest.mark.parametrize(
    ("stream", "cursor"),
    [
        ("warehouse_transactions", "41500"),  # a bare id: the highest loaded, no time
        ("orders", '{"after": 41500, "newest": null, "open": []}'),
    ],
)
def test_reset_since_a_day_refuses_a_cursor_whose_time_is_unknown(
    tmp_path: Path, stream: str, cursor: str
) -> None:
    """A keyset cursor that reads well but holds no time (a bare id) may stand past any day:
    `reset --since` refuses it in one line, cursor unchanged, instead of walking from the
    day's first id and skipping what lies between (`reset` without --since stays open)."""
    settings, warehouse = _stored(tmp_path, stream, cursor)
    try:
        since = (datetime.now(UTC) - timedelta(days=3)).date()
        with pytest.raises(ConfigError, match="cannot be told by time"):
            reset_stream(settings, warehouse, STREAMS[stream], since=since)
        assert [s.cursor for s in warehouse.states() if s.stream == stream] == [cursor]
        assert reset_stream(settings, warehouse, STREAMS[stream]) == ["1"]
        assert [s.cursor for s in warehouse.states() if s.stream == stream] == [None]
    finally:
        warehouse.close()
