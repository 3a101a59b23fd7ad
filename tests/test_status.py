"""`sitoo-sync status`: reads only, shows what failed before any partition existed, prints
cursors as dates, and `--check` turns a failing or late stream into exit 1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sitoo_sync.cli import main
from sitoo_sync.settings import load_settings
from sitoo_sync.simulator import Simulator
from sitoo_sync.status import detail_text, stream_problems
from sitoo_sync.warehouse import open_warehouse
from tests.support import use_simulator


def _table(capsys: pytest.CaptureFixture[str]) -> list[list[str]]:
    """The status table's rows and check lines split on runs of two spaces (the last runs'
    table, after a blank line, left out)."""
    import re

    blocks = capsys.readouterr().out.split("\n\n")
    lines = [line for b in blocks if "last run" not in b.split("\n")[0] for line in b.splitlines()]
    return [re.split(r"\s{2,}", line.strip()) for line in lines]


def test_a_failed_register_listing_shows_as_a_failing_partition_until_it_recovers(
    sim: Simulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """When the journal's register listing fails on the first run, status shows the failure
    (partition *) and --check exits 1; once a later run succeeds, both are clean again."""
    db = tmp_path / "w.duckdb"
    use_simulator(monkeypatch, sim, db)
    monkeypatch.setenv("SITOO_STREAMS", "journal_entries")
    monkeypatch.setenv("SITOO_HTTP_MAX_ATTEMPTS", "2")
    sim.faults.queue("503", times=50, path="cashregisters", after=1)  # the check gets through
    assert main(["run", "--once"]) == 1
    capsys.readouterr()
    assert main(["status", "--check"]) == 1
    rows = _table(capsys)
    [failed] = [r for r in rows if r[:3] == ["journal_entries", "*", "failed"]]
    assert "gave up after 2 attempts" in failed[-1]
    assert rows[-1][0].startswith("check: journal_entries: failing (*): gave up after 2 attempts")

    sim.faults.clear()
    assert main(["run", "--once"]) == 0
    capsys.readouterr()
    assert main(["status", "--check"]) == 0
    rows = _table(capsys)
    assert not [r for r in rows if r[1:2] == ["*"]]
    assert rows[-1] == ["check: every enabled stream is ok"]


def test_a_check_that_fails_exits_1_also_when_its_reader_leaves_early(
    sim: Simulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`status --check | head -1` must not turn a failing check into success: with its
    stdout's reader gone before it writes, the command still exits 1, without a traceback."""
    use_simulator(monkeypatch, sim, tmp_path / "w.duckdb")
    monkeypatch.setenv("SITOO_STREAMS", "journal_entries")
    monkeypatch.setenv("SITOO_HTTP_MAX_ATTEMPTS", "2")
    sim.faults.queue("503", times=50, path="cashregisters", after=1)
    assert main(["run", "--once"]) == 1
    capsys.readouterr()
    read, write = os.pipe()
    os.close(read)  # the reader has left
    try:
        done = subprocess.run(  # our own CLI
            [sys.executable, "-m", "sitoo_sync", "status", "--check"],
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        os.close(write)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert "BrokenPipe" not in done.stderr


def test_status_prints_cursors_as_dates_and_reads_another_target(
    sim: Simulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The table shows an epoch cursor as its UTC time (JSON keeps the raw value beside a
    readable one); --target reads a file other than SITOO_TARGET_URL's."""
    db = tmp_path / "w.duckdb"
    use_simulator(monkeypatch, sim, db)
    monkeypatch.setenv("SITOO_STREAMS", "pos_z_reports")
    assert main(["run", "--once"]) == 0
    capsys.readouterr()
    monkeypatch.setenv("SITOO_TARGET_URL", f"duckdb:///{tmp_path / 'elsewhere.duckdb'}")
    assert main(["status", "--target", f"duckdb:///{db}"]) == 0
    [header, row] = _table(capsys)
    newest = max(r.dateadded for r in sim.world.all_reports())
    cursor = row[header.index("cursor")]
    assert cursor == f"{datetime.fromtimestamp(newest, UTC):%Y-%m-%d %H:%M:%S}Z"
    assert main(["status", "--json", "--target", f"duckdb:///{db}"]) == 0
    [state] = json.loads(capsys.readouterr().out)
    assert state["cursor"] == str(newest)
    assert state["cursor_text"] == cursor
    assert not (tmp_path / "elsewhere.duckdb").exists()


def test_check_finds_a_stream_late_by_three_of_its_intervals(
    sim: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stream whose last success is older than three schedule intervals is late (the rule
    /healthz applies); a stream never synced is late too."""
    db = tmp_path / "w.duckdb"
    use_simulator(monkeypatch, sim, db)
    monkeypatch.setenv("SITOO_STREAMS", "pos_z_reports")
    assert main(["run", "--once"]) == 0
    monkeypatch.setenv("SITOO_SCHEDULES", "pos_z_reports=10m")
    settings = load_settings()
    warehouse = open_warehouse(settings.target_url)
    try:
        states = warehouse.states()
    finally:
        warehouse.close()
    now = datetime.now(UTC)
    assert stream_problems(settings, states, now + timedelta(minutes=29)) == []
    [late] = stream_problems(settings, states, now + timedelta(minutes=31))
    assert late.startswith("pos_z_reports: late: last success 31.0m ago, limit 30.0m")
    assert stream_problems(settings, [], now) == [
        "pos_z_reports: late: last success never, limit 30.0m"
    ]


def test_a_long_detail_is_cut_at_a_word_with_an_ellipsis() -> None:
    """The table never cuts a word in half; a short detail is shown whole."""
    detail = (
        "Sitoo refused the credentials; check SITOO_API_ID and SITOO_API_PASSWORD "
        "(Authorization required)"
    )
    shown = detail_text(detail)
    assert len(shown) <= 80
    assert shown.endswith(" ...")
    kept = shown.removesuffix(" ...")
    assert detail.startswith(kept)
    assert detail[len(kept)] == " "
    assert detail_text("short reason") == "short reason"


def test_log_lines_give_an_epoch_cursor_as_a_readable_time(
    sim: Simulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`partition_synced` carries the cursor and, for an epoch cursor, `cursor_at` in ISO."""
    use_simulator(monkeypatch, sim, tmp_path / "w.duckdb")
    monkeypatch.setenv("SITOO_STREAMS", "pos_z_reports")
    monkeypatch.setenv("SITOO_LOG_FORMAT", "json")
    assert main(["run", "--once"]) == 0
    events = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    [synced] = [e for e in events if e["event"] == "partition_synced"]
    cursor_at = datetime.fromtimestamp(int(synced["cursor"]), UTC).isoformat()
    assert synced["cursor_at"] == cursor_at


def test_log_lines_give_a_json_cursor_as_the_time_it_stands_for(
    sim: Simulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """For the JSON cursors of products, warehouse_items and orders, `cursor_at` in the log
    and the cursor in `status` (table and `cursor_text`) are the time the cursor stands for
    (the last complete listing's start, the newest order), while sync_state keeps the JSON
    cursor itself."""
    use_simulator(monkeypatch, sim, tmp_path / "w.duckdb")
    monkeypatch.setenv("SITOO_STREAMS", "products,warehouse_items,orders")
    monkeypatch.setenv("SITOO_LOG_FORMAT", "json")
    assert main(["run", "--once"]) == 0
    events = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    logged = {
        (e["stream"], e["partition"]): e["cursor_at"]
        for e in events
        if e["event"] == "partition_synced"
    }
    assert main(["status", "--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    stored = {(s["stream"], s["partition"]): s["cursor"] for s in records}
    texts = {(s["stream"], s["partition"]): s["cursor_text"] for s in records}
    assert main(["status"]) == 0
    [header, *rows] = _table(capsys)
    shown = {(r[0], r[1]): r[header.index("cursor")] for r in rows}
    assert {stream for stream, _ in logged} == {"products", "warehouse_items", "orders"}
    assert logged.keys() == stored.keys()
    for (stream, partition), cursor_at in logged.items():
        cursor = json.loads(stored[stream, partition])  # stored as JSON, as before
        at = cursor["newest"] if stream == "orders" else cursor["listed_at"]
        assert cursor_at == datetime.fromtimestamp(at, UTC).isoformat(), (stream, partition)
        readable = f"{datetime.fromtimestamp(at, UTC):%Y-%m-%d %H:%M:%S}Z"
        assert texts[stream, partition] == readable, (stream, partition)
        assert shown[stream, partition] == readable, (stream, partition)


def test_check_finds_registers_no_tick_has_synced_since_they_were_listed(
    sim: Simulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """After a first backfill that was interrupted, registers the listing showed more than
    three journal intervals ago with no sync_state row make `status --check` fail naming
    them, though every register that did sync is fresh; registers listed just now do not."""
    import duckdb

    db = tmp_path / "w.duckdb"
    use_simulator(monkeypatch, sim, db)
    monkeypatch.setenv("SITOO_STREAMS", "cash_registers,journal_entries")
    assert main(["run", "--once"]) == 0
    registers = sorted(r.registerid for r in sim.world.registers)
    with duckdb.connect(str(db)) as con:  # two registers' journals never reached
        con.execute(
            "DELETE FROM sync_state WHERE stream = 'journal_entries' AND partition_key IN (?, ?)",
            registers[:2],
        )
    capsys.readouterr()
    assert main(["status", "--check"]) == 0  # listed just now: their first tick may be due
    with duckdb.connect(str(db)) as con:
        con.execute("UPDATE cash_registers SET first_seen_at = first_seen_at - INTERVAL 1 HOUR")
    capsys.readouterr()
    assert main(["status", "--check"]) == 1
    [line] = [x for x in capsys.readouterr().out.splitlines() if x.startswith("check: ")]
    assert line.startswith("check: journal_entries: never synced: 2 partitions (")
    assert all(r in line for r in registers[:2])
