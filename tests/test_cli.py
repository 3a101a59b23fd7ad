"""The `sitoo-sync` commands: help, error messages, exit codes, status, demo, secrecy."""

from __future__ import annotations

import base64
import io
import json
import re
import socket
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from sitoo_sync.cli import main
from sitoo_sync.demo import NEXT_SQL
from sitoo_sync.progress import Progress
from sitoo_sync.results import PartitionResult
from sitoo_sync.simulator import SimConfig, Simulator
from tests.support import use_simulator


@pytest.mark.parametrize("command", ["run", "demo", "status", "reset", "simulator", "bench"])
def test_every_command_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    """`sitoo-sync COMMAND --help` explains the command and exits 0."""
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert f"sitoo-sync {command}" in out
    assert len(out.splitlines()) > 4


def test_top_level_help_lists_commands_and_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    """The top-level help names every command, the config sources and the exit codes."""
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for word in ("run", "demo", "status", "simulator", "bench", "SITOO_CONFIG", "Exit codes"):
        assert word in out


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "SITOO_API_ID is not set"),
        ({"SITOO_API_ID": "1500-1"}, "SITOO_API_PASSWORD is not set"),
        ({"SITOO_API_ID": "nodash", "SITOO_API_PASSWORD": "x"}, "SITOO_ACCOUNT_ID is not set"),
        (
            {"SITOO_OVERLAP_SECONDS": "ten"},
            "SITOO_OVERLAP_SECONDS: Input should be a valid integer",
        ),
        ({"SITOO_OVERLAP_SECONDS": "-1"}, "SITOO_OVERLAP_SECONDS: Input should be greater than"),
        ({"SITOO_SITE_IDS": "1,two"}, "SITOO_SITE_IDS"),
        ({"SITOO_LOG_FORMAT": "xml"}, "SITOO_LOG_FORMAT"),
        ({"SITOO_API_BASE_URL": "ftp://x"}, "SITOO_API_BASE_URL: must start with http"),
        (
            {"SITOO_API_ID": "1500-1", "SITOO_API_PASSWORD": "x", "SITOO_STREAMS": "nope"},
            "SITOO_STREAMS: unknown stream 'nope'; known: cash_registers, journal_entries",
        ),
        (
            {"SITOO_API_ID": "1500-1", "SITOO_API_PASSWORD": "x", "SITOO_TARGET_URL": "mongo://x"},
            "SITOO_TARGET_URL: no driver for mongo://",
        ),
        ({"SITOO_CONFIG": "/nonexistent/sitoo.toml"}, "config file not found"),
        (
            {"SITOO_API_ID": "1500-1", "SITOO_API_PASSWORD": "x", "SITOO_SCHEDULES": "nope=5m"},
            "SITOO_SCHEDULES: unknown stream 'nope'; known: cash_registers, journal_entries",
        ),
        (
            {
                "SITOO_API_ID": "1500-1",
                "SITOO_API_PASSWORD": "x",
                "SITOO_SCHEDULES": '{"pos_z_reports": "every tuesday"}',
            },
            "SITOO_SCHEDULES: pos_z_reports: 'every tuesday' is neither",
        ),
        (
            {
                "SITOO_API_ID": "1500-1",
                "SITOO_API_PASSWORD": "x",
                "SITOO_STREAMS": "pos_z_reports",
                "SITOO_SCHEDULES": "store_z_reports=sometimes",
            },
            "SITOO_SCHEDULES: store_z_reports: 'sometimes' is neither",
        ),
    ],
)
def test_configuration_errors_are_one_clear_line_and_exit_2(
    env: dict[str, str],
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A missing or invalid setting prints one line naming it, exit code 2, no traceback,
    and leaves nothing behind (no target file, no lock file)."""
    monkeypatch.chdir(tmp_path)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert main(["run", "--once"]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_a_bad_schedule_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The service refuses a schedule it cannot read, naming the stream, exit 2."""
    monkeypatch.setenv("SITOO_API_ID", "1500-1")
    monkeypatch.setenv("SITOO_API_PASSWORD", "x")
    monkeypatch.setenv("SITOO_SCHEDULES", '{"pos_z_reports": "every tuesday"}')
    assert main(["run"]) == 2
    assert "SITOO_SCHEDULES: pos_z_reports: 'every tuesday' is neither" in capsys.readouterr().err


def test_toml_file_is_read_and_environment_overrides_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Values come from the TOML file unless an environment variable says otherwise."""
    from sitoo_sync.settings import load_settings

    secret = tmp_path / "password"
    secret.write_text("from-file\n")
    config = tmp_path / "sitoo.toml"
    config.write_text(
        'api_id = "2000-3"\nsite_ids = [1, 4]\noverlap_seconds = 60\n'
        f'api_password_file = "{secret}"\n'
    )
    monkeypatch.setenv("SITOO_OVERLAP_SECONDS", "900")
    settings = load_settings(config)
    assert settings.api_id == "2000-3"
    assert settings.resolved_account_id == "2000"
    assert settings.site_ids == [1, 4]
    assert settings.overlap_seconds == 900
    assert settings.api_password is not None
    assert settings.api_password.get_secret_value() == "from-file"
    assert "from-file" not in repr(settings)
    monkeypatch.setenv("SITOO_SITE_IDS", "7, 8")
    assert load_settings(config).site_ids == [7, 8]


def test_unknown_key_in_the_config_file_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A typo in the TOML file is reported by name rather than silently ignored."""
    config = tmp_path / "sitoo.toml"
    config.write_text('api_idd = "x"\n')
    assert main(["--config", str(config), "run", "--once"]) == 2
    assert "unknown setting 'api_idd'" in capsys.readouterr().err


def test_sixty_unknown_keys_are_named_a_few_and_counted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Sixty unknown keys, at the top of the config file or in a stream's section, are one
    short line naming the first five and how many more, not all sixty."""
    keys = "".join(f"key_{i:02} = 1\n" for i in range(60))
    config = tmp_path / "sitoo.toml"
    for text, named in (
        (keys, "unknown settings 'key_00', 'key_01', 'key_02', 'key_03', 'key_04' and 55 more"),
        (
            f"[streams.pos_z_reports]\n{keys}",
            "[streams.pos_z_reports]: unknown setting 'key_00', 'key_01', 'key_02', 'key_03', "
            "'key_04' and 55 more (known: ",
        ),
    ):
        config.write_text(text)
        assert main(["--config", str(config), "run", "--once"]) == 2
        [line] = capsys.readouterr().err.splitlines()
        assert named in line
        assert "key_05" not in line
        assert len(line) < 200, line


@pytest.mark.parametrize(
    ("sites", "streams", "expected"),
    [
        # A first site the account lacks ("99") stops `run` at its start, exit 2: see
        # tests/test_start_checks.py. A later one is left to its streams:
        (
            "1,99",
            "stores",
            ["stores (2 sites): 1 failed, 1 ok, ", "  99: failed -- Site not found"],
        ),
    ],
)
def test_a_site_the_account_does_not_have_fails_the_run_by_name(
    sites: str,
    streams: str,
    expected: list[str],
    sim: Simulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """SITOO_SITE_IDS naming a site the account lacks (a typo) is a failed run that says so
    (the site's listing answers 404), not a quiet "ok, 0 rows"; beside a site that syncs, the
    stream's summary counts how its partitions ended ("1 failed, 1 ok"), not "failed, ok"."""
    use_simulator(monkeypatch, sim, tmp_path / "w.duckdb")
    monkeypatch.setenv("SITOO_SITE_IDS", sites)
    monkeypatch.setenv("SITOO_STREAMS", streams)
    assert main(["run", "--once"]) == 1
    out = capsys.readouterr().out
    for line in expected:
        assert line in out


def test_a_site_of_the_account_without_registers_lists_none_and_fails_nothing(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A site the account has but no register is on (a web shop) lists no registers: every
    site /sites.json lists is synced by default, and that one fails nothing."""
    with Simulator.create(SimConfig(seed=5, days=1, registers_per_store=0)) as sim:
        use_simulator(monkeypatch, sim, tmp_path / "w.duckdb")
        monkeypatch.delenv("SITOO_SITE_IDS", raising=False)  # every site /sites.json lists
        monkeypatch.setenv("SITOO_STREAMS", "cash_registers,journal_entries")
        assert main(["run", "--once"]) == 0
    out = capsys.readouterr().out
    assert "cash_registers (2 sites): ok" in out


def test_run_once_then_status(
    sim: Simulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`run --once` exits 0 and prints a summary; `status --json` shows the cursor and rows."""
    use_simulator(monkeypatch, sim, tmp_path / "w.duckdb")
    assert main(["run", "--once"]) == 0
    out = capsys.readouterr().out
    assert "pos_z_reports (account 1500): ok, 1 window, " in out
    assert main(["status", "--json"]) == 0
    states = {s["stream"]: s for s in json.loads(capsys.readouterr().out)}
    assert states["store_z_reports"]["last_status"] == "ok"
    state = states["pos_z_reports"]
    assert state["stream"] == "pos_z_reports"
    assert state["partition"] == "1500"
    newest = max(r.dateadded for r in sim.world.all_reports())
    assert state["cursor"] == str(newest)
    assert state["rows_loaded"] > len(sim.world.all_reports())
    assert state["last_success_at"] is not None
    assert state["last_error"] is None
    assert state["last_status"] == "ok"
    expected_lag = datetime.now(UTC).timestamp() - newest
    assert expected_lag - 60 < state["lag_seconds"] <= expected_lag
    assert main(["status"]) == 0
    table = capsys.readouterr().out
    assert "pos_z_reports" in table
    assert "cursor" in table.splitlines()[0]


def test_status_before_any_sync(
    sim: Simulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`status` on a missing DuckDB file says so in one line, exit 1, and creates nothing;
    on a file that holds no sync yet it says that, exit 0."""
    db = tmp_path / "empty.duckdb"
    monkeypatch.setenv("SITOO_TARGET_URL", f"duckdb:///{db}")
    assert main(["status"]) == 1
    err = capsys.readouterr().err
    assert err == (
        f"sitoo-sync: no warehouse at {db} yet: run `sitoo-sync run --once` first (or point "
        "--target / SITOO_TARGET_URL at it; the demo writes duckdb:///sitoo-demo.duckdb)\n"
    )
    assert list(tmp_path.iterdir()) == []
    duckdb.connect(str(db)).close()  # a DuckDB file never synced into
    assert main(["status"]) == 0
    assert "nothing synced yet" in capsys.readouterr().out


@pytest.mark.parametrize(
    "url",
    ["postgresql://bob:hunter2@127.0.0.1:1/x", "mysql://bob:hunter2@127.0.0.1:1/x"],
)
@pytest.mark.parametrize(
    "command", [["run", "--once"], ["status"], ["reset", "pos_z_reports"], ["run"]]
)
def test_an_unreachable_warehouse_is_one_clear_failure_exit_1(
    url: str,
    command: list[str],
    sim: Simulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A server that refuses connections is one line naming it with the password masked and
    the driver's reason, exit 1, no traceback and no SQLAlchemy help link."""
    use_simulator(monkeypatch, sim, tmp_path / "unused.duckdb")
    monkeypatch.setenv("SITOO_TARGET_URL", url)
    if command == ["run"]:  # the service logs each failed tick and keeps going: stop it
        from sitoo_sync.service import Service

        def tick_then_stop(service: Service) -> int:
            service.tick(service.streams[0])
            return 0

        monkeypatch.setattr(Service, "run", tick_then_stop)
        monkeypatch.setenv("SITOO_STREAMS", "pos_z_reports")
        monkeypatch.setenv("SITOO_LOG_FORMAT", "json")
        assert main(command) == 0
        captured = capsys.readouterr()
        [event] = [json.loads(line) for line in captured.err.splitlines() if "tick_failed" in line]
        err = "sitoo-sync: " + event["error"] + "\n"
    else:
        assert main(command) == 1
        err = capsys.readouterr().err
    scheme = url.split("://", maxsplit=1)[0]
    assert err.startswith(f"sitoo-sync: cannot reach the warehouse at {scheme}://")
    assert "***@127.0.0.1:1/x: " in err
    assert "Connection refused" in err
    assert len(err.splitlines()) == 1
    assert "hunter2" not in err
    assert "sqlalche.me" not in err
    assert "Traceback" not in err


def test_wrong_password_is_one_clear_failure_exit_2(
    sim: Simulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A refused password is found by one request before the warehouse is touched: one line
    naming the settings, exit 2 (configuration), no table, lock or file made."""
    use_simulator(monkeypatch, sim, tmp_path / "w.duckdb")
    monkeypatch.setenv("SITOO_API_PASSWORD", "wrong-password-123")
    assert main(["run", "--once"]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith(
        f"sitoo-sync: configuration error: Sitoo refused the credentials of SITOO_API_ID "
        f"{sim.api_id}: check it and SITOO_API_PASSWORD (or SITOO_API_PASSWORD_FILE); HTTP 401"
    )
    assert len(captured.err.splitlines()) == 1
    assert "table_created" not in captured.out + captured.err
    assert "wrong-password-123" not in captured.out + captured.err
    assert sum(sim.requests.values()) == 1
    assert list(tmp_path.iterdir()) == []


def test_an_unreachable_api_ends_one_tick_at_its_first_request(
    sim: Simulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """With the API out of reach (no attempt gets an HTTP answer), `run --once` says so in
    one line after the credentials check's attempts, exit 1, and makes no table, lock or
    file, instead of every stream spending its own attempts on it."""
    use_simulator(monkeypatch, sim, tmp_path / "w.duckdb")
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("SITOO_API_BASE_URL", f"http://127.0.0.1:{port}/v2/accounts/{{account_id}}")
    monkeypatch.setenv("SITOO_JOURNALS_BASE_URL", f"http://127.0.0.1:{port}/v3")
    monkeypatch.setenv("SITOO_HTTP_MAX_ATTEMPTS", "2")
    assert main(["run", "--once"]) == 1
    err = capsys.readouterr().err
    [line] = [x for x in err.splitlines() if x.startswith("sitoo-sync:")]
    assert line.startswith("sitoo-sync: cannot reach the Sitoo API, nothing was synced: gave up")
    assert "SITOO_API_BASE_URL" in line
    assert err.count("request_retry") == 1  # the check's one retry, and no stream's
    assert list(tmp_path.iterdir()) == []


def test_no_secret_reaches_a_log_line(
    sim: Simulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """At DEBUG, with retries and errors logged, neither the password nor the auth header leaks."""
    use_simulator(monkeypatch, sim, tmp_path / "w.duckdb")
    monkeypatch.setenv("SITOO_LOG_FORMAT", "json")
    monkeypatch.setenv("SITOO_LOG_LEVEL", "DEBUG")
    sim.faults.queue("503", times=2)
    sim.faults.queue("drop")
    assert main(["run", "--once"]) == 0
    captured = capsys.readouterr()
    logs = captured.out + captured.err
    assert "request_retry" in logs
    assert "batch_loaded" in logs
    assert "window_fetched" in logs
    token = base64.b64encode(f"{sim.api_id}:{sim.password}".encode()).decode()
    assert sim.password not in logs
    assert token not in logs
    for line in captured.err.splitlines():
        json.loads(line)  # every log line is one JSON object


def test_demo_prints_rows_per_table_and_sales_per_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`demo` syncs the simulator into a DuckDB file and shows counts and checked store sales."""
    db = tmp_path / "demo.duckdb"
    assert main(["demo", "--db", str(db), "--days", "5"]) == 0
    out = capsys.readouterr().out
    assert "Rows per table:" in out
    assert "pos_z_report_vat_groups" in out
    assert "Sales per store" in out
    assert out.count("matches the simulator") == 6
    assert "SELECT" in out
    assert db.exists()
    with duckdb.connect(str(db), read_only=True) as con:
        [(entries,)] = con.sql("SELECT count(*) FROM journal_entries").fetchall()
        [(registers,)] = con.sql("SELECT count(*) FROM cash_registers").fetchall()
    # Records of a stream are told apart from the rows of its child tables, and say where.
    [journal] = [line for line in out.splitlines() if line.startswith("  journal_entries (")]
    assert journal.startswith(f"  journal_entries ({registers} registers): ok, ")
    assert f"the file holds {entries:,} records in journal_entries and " in journal
    assert "  pos_z_reports (account " in out
    assert " 1 windows" not in out
    assert "POS z-reports, every one in pos_z_reports\n" in out  # nothing rejected in 5 days
    assert f'  {sys.executable} -c "import duckdb;' in out  # a Python that has duckdb
    # Every query the demo suggests runs on the file it wrote; those on views return rows,
    # and a ranking by money ranks within each currency (a top ten of one would drop another).
    with duckdb.connect(str(db), read_only=True) as con:
        for sql in (q for q in NEXT_SQL.split(";") if q.strip()):
            relation = con.sql(sql)
            rows = relation.fetchall()
            assert rows or " v_" not in sql, sql
            if re.search(r"ORDER BY (abs\()?(amount|cash_difference)\)? DESC", sql):
                [view] = re.findall(r"FROM (v_\w+)", sql)
                ranked = con.sql(f"SELECT DISTINCT currencycode FROM {view}").fetchall()
                at = relation.columns.index("currencycode")
                assert {r[at] for r in rows} == {c for (c,) in ranked}, sql
        [(currencies,)] = con.sql(
            "SELECT count(DISTINCT currencycode) FROM v_product_sales"
        ).fetchall()
    assert currencies > 1  # what the ranking per currency is for


def test_demo_says_how_many_pos_z_reports_its_store_z_reports_list_are_rejected(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The store z-reports list every closing, the one the demo's load rejects too, and the
    demo says so rather than claim the file holds them all."""
    assert main(["demo", "--db", str(tmp_path / "demo.duckdb"), "--days", "9"]) == 0
    out = capsys.readouterr().out
    [line] = [line for line in out.splitlines() if line.startswith("  They list ")]
    assert "; 1 of them not in pos_z_reports (the load rejected 1 POS z-report, see" in line
    assert out.count("matches the simulator") == 6
    assert "store_membership           1" in out


def test_a_demo_replaces_an_earlier_demo_file_and_refuses_any_other(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A second demo with another seed replaces the first one's file, so its sales still
    match its own simulator (mixed with the first world's rows they did not); a DuckDB file
    the demo did not write, or --db in a missing directory, is refused in one line, exit 2,
    and left as it was."""
    db = tmp_path / "demo.duckdb"
    assert main(["demo", "--db", str(db), "--days", "3"]) == 0
    capsys.readouterr()
    neighbour = tmp_path / "demo.duckdb.bak.pos_z_reports.lock"  # another file's lock
    neighbour.write_text("1\n")
    assert main(["demo", "--db", str(db), "--days", "4", "--seed", "7"]) == 0
    assert neighbour.exists()
    out = capsys.readouterr().out
    assert out.count("matches the simulator") == 6
    assert "simulator says" not in out
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.sql("SELECT seed, days FROM sitoo_demo").fetchall() == [(7, 4)]
    other = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(other)) as con:
        con.execute("CREATE TABLE pos_z_reports (id INTEGER)")
    assert main(["demo", "--db", str(other)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"sitoo-sync: configuration error: --db: {other} is not a file an")
    with duckdb.connect(str(other), read_only=True) as con:
        assert con.sql("SELECT count(*) FROM pos_z_reports").fetchall() == [(0,)]
    assert main(["demo", "--db", str(tmp_path / "no" / "x.duckdb")]) == 2
    assert "--db: the directory" in capsys.readouterr().err


def test_a_command_started_with_stdout_closed_runs_without_a_traceback() -> None:
    """`sitoo-sync docs >&-` (no stdout at all) drops its output and exits 0, as print()
    does without one, instead of failing on the missing stream."""
    done = subprocess.run(  # our own CLI
        [
            sys.executable,
            "-c",
            "import os, sys; os.close(1); sys.stdout = None; "
            "from sitoo_sync.cli import main; sys.exit(main(['docs']))",
        ],
        capture_output=False,
        stderr=subprocess.PIPE,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert "Exception ignored" not in done.stderr


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_totals_a_streams_partitions_on_a_terminal_only() -> None:
    """The progress line sums every partition of the stream and says where its cursor stands
    and how long is left; off a terminal it writes nothing to the screen."""
    now = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
    ticks = iter([0.0, 10.0, 20.0, 30.0])
    screen = _Terminal()
    progress = Progress(screen, clock=lambda: next(ticks), now=lambda: now)
    day = 86400
    at = int(now.timestamp())
    progress(
        PartitionResult("journal_entries", "{A}", windows=1, rows=10, cursor=str(at - 4 * day))
    )
    progress(PartitionResult("journal_entries", "{B}", windows=2, rows=20, cursor=str(at - day)))
    progress(
        PartitionResult("journal_entries", "{A}", windows=2, rows=15, cursor=str(at - 3 * day))
    )
    progress(PartitionResult("pos_z_reports", "1500", windows=1, rows=1))
    progress.done()
    lines = [line.split("\r\033[K")[-1] for line in screen.getvalue().split("\n")]
    assert lines[0] == (
        "  journal_entries: 2 partitions, 4 windows, 35 rows, at 2026-11-18 12:00Z "
        "(3.0d behind now), about 1m left"
    )  # one day gained in 20 s: three more take a minute
    assert lines[1] == "  pos_z_reports: 1 window, 1 row"
    quiet = io.StringIO()
    Progress(quiet)(PartitionResult("pos_z_reports", "1500", windows=1, rows=7))
    assert quiet.getvalue() == ""
