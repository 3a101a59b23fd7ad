"""Configuration and target errors on every command: one line, the right exit code, no
traceback, nothing created."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from sitoo_sync.cli import _parser, main
from sitoo_sync.simulator import Simulator
from tests.support import use_simulator

COMMANDS = [["run", "--once"], ["run"], ["status"], ["reset", "pos_z_reports"]]
CREDENTIALS = {"SITOO_API_ID": "1500-1", "SITOO_API_PASSWORD": "x"}


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (
            {"SITOO_SCHEDULES": "not json"},
            "sitoo-sync: configuration error: SITOO_SCHEDULES: expected JSON such as "
            '{"pos_z_reports": "15m"}, or pairs such as pos_z_reports=15m,journal_entries=5m '
            "(got 'not json')",
        ),
        (
            {"SITOO_SCHEDULES": '{"pos_z_reports": '},
            "sitoo-sync: configuration error: SITOO_SCHEDULES: not valid JSON; expected JSON",
        ),
        (
            {"SITOO_API_BASE_URL": "https://api.mysitoo.com/v2/accounts/{acount_id}"},
            "sitoo-sync: configuration error: SITOO_API_BASE_URL: the only placeholder is "
            "{account_id}, got {acount_id} (got 'https://api.mysitoo.com/v2/accounts/{acount_id}')\n",
        ),
        (
            {"SITOO_TARGET_URL": "sitoo.duckdb"},
            "sitoo-sync: configuration error: SITOO_TARGET_URL: must be a URL such as "
            "duckdb:///sitoo.duckdb (got 'sitoo.duckdb')\n",
        ),
        (
            {"SITOO_API_PASSWORD": "", "SITOO_API_PASSWORD_FILE": "/nonexistent/pw"},
            "sitoo-sync: configuration error: SITOO_API_PASSWORD_FILE: cannot read "
            "/nonexistent/pw: No such file or directory\n",
        ),
        (  # an empty secret file (a mount gone wrong) is named, not "SITOO_API_PASSWORD is not set"
            {"SITOO_API_PASSWORD": "", "SITOO_API_PASSWORD_FILE": "/dev/null"},
            "sitoo-sync: configuration error: SITOO_API_PASSWORD_FILE: /dev/null is empty "
            "(write the API password into it)\n",
        ),
        (
            {"SITOO_PERSONAL_DATA": "hash", "SITOO_PERSONAL_DATA_KEY": "k3y"},
            "sitoo-sync: configuration error: SITOO_PERSONAL_DATA_KEY: at least 16 characters, "
            "random (got 3; e.g. `openssl rand -hex 32`)\n",
        ),
        (
            {"SITOO_TARGET_URL": "duckdb:///{tmp}/no/dir/x.duckdb"},
            "sitoo-sync: configuration error: SITOO_TARGET_URL: the directory {tmp}/no/dir does "
            "not exist (create it first, or fix the path in duckdb:///{tmp}/no/dir/x.duckdb)\n",
        ),
    ],
)
def test_a_configuration_error_is_one_line_exit_2_and_creates_nothing(
    command: list[str],
    env: dict[str, str],
    expected: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Each command refuses the setting in one line naming it (and, for a file, its path),
    exit 2, no traceback; no DuckDB file, lock file or directory is made."""
    monkeypatch.chdir(tmp_path)
    for name, value in {**CREDENTIALS, **env}.items():
        if value:
            monkeypatch.setenv(name, value.replace("{tmp}", str(tmp_path)))
        else:
            monkeypatch.delenv(name, raising=False)
    assert main(command) == 2
    err = capsys.readouterr().err
    assert err.startswith(expected.replace("{tmp}", str(tmp_path)))
    assert len(err.splitlines()) == 1
    assert err.count("(got ") <= 1
    assert list(tmp_path.iterdir()) == []


def test_schedules_in_pairs_or_the_toml_way_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """SITOO_SCHEDULES also takes `stream=schedule` pairs, quoted TOML-style or not, and a
    comma inside a cron expression stays in it."""
    from sitoo_sync.settings import load_settings

    monkeypatch.setenv("SITOO_SCHEDULES", 'pos_z_reports = "15m"\njournal_entries=0,30 * * * *')
    assert load_settings().schedules == {
        "pos_z_reports": "15m",
        "journal_entries": "0,30 * * * *",
    }


def test_reset_without_a_warehouse_creates_nothing_and_needs_no_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`reset` with no API ID and no warehouse file says there is no warehouse, exit 1, and
    leaves no file behind; it never asks for the account."""
    db = tmp_path / "empty.duckdb"
    monkeypatch.setenv("SITOO_TARGET_URL", f"duckdb:///{db}")
    assert main(["reset", "pos_z_reports"]) == 1
    err = capsys.readouterr().err
    assert (
        err == f"sitoo-sync: no warehouse at {db} yet: nothing to reset (check SITOO_TARGET_URL)\n"
    )
    assert list(tmp_path.iterdir()) == []


def test_reset_moves_cursors_without_credentials(
    sim: Simulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """After a sync, `reset` works with no API ID or password set: it reads no API."""
    db = tmp_path / "w.duckdb"
    use_simulator(monkeypatch, sim, db)
    monkeypatch.setenv("SITOO_STREAMS", "pos_z_reports")
    assert main(["run", "--once"]) == 0
    for name in ("SITOO_API_ID", "SITOO_API_PASSWORD"):
        monkeypatch.delenv(name)
    capsys.readouterr()
    assert main(["reset", "pos_z_reports", "--since", "2026-01-01"]) == 0
    assert capsys.readouterr().out.startswith("pos_z_reports: 1 partition reset")


def test_an_unset_account_is_named_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    """With neither the account nor the API ID set, the message says both are unset rather
    than that the account cannot be derived from an API ID."""
    from sitoo_sync.errors import ConfigError
    from sitoo_sync.settings import load_settings

    with pytest.raises(ConfigError, match=r"^neither SITOO_ACCOUNT_ID nor SITOO_API_ID is set"):
        load_settings().resolved_account_id  # noqa: B018  # the property raises


def test_usage_errors_are_one_line_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    """A bad argument on any command is one line naming it and where help is, exit 2."""
    for argv in (
        ["reset", "pos_z_reports", "--since", "bad"],
        ["frob"],
        ["status", "--x"],
        ["simulator", "--port", "99999"],
        ["demo", "--days", "0"],
    ):
        with pytest.raises(SystemExit) as usage:
            main(argv)
        assert usage.value.code == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1, err
        assert "--help)" in err
        assert "Traceback" not in err


@pytest.mark.parametrize("days", ["0", "-3"])
def test_simulator_refuses_fewer_than_one_day_as_demo_does(
    days: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """`simulator --days` below 1 is a one-line usage error, exit 2, the same as `demo`'s,
    where it used to serve a world of one day or none."""
    for command in ("demo", "simulator"):
        with pytest.raises(SystemExit) as usage:
            _parser().parse_args([command, "--days", days])  # parsed only: nothing served
        assert usage.value.code == 2
        err = capsys.readouterr().err
        assert err == (
            f"sitoo-sync {command}: argument --days: at least 1 day, got {days} "
            f"(see sitoo-sync {command} --help)\n"
        )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["simulator", "--registers-per-store", "0"], "at least 1, got 0"),
        (["simulator", "--reports", "-5"], "at least 1, got -5"),
        (["simulator", "--malformed-every", "-1"], "at least 0, got -1"),
        (["simulator", "--journal-entries", "-1"], "at least 0, got -1"),
        (["simulator", "--error-rate", "2"], "a share is 0 to 1, got 2.0"),
        (["simulator", "--latency", "-0.1"], "0 seconds or more, got -0.1"),
        (["simulator", "--latency", "nan"], "0 seconds or more, got nan"),
        (["bench", "--rounds", "0"], "at least 1, got 0"),
        (["bench", "--replicas", "1"], "at least 2, got 1"),
        (["bench", "--registers-per-store", "x"], "not a number of registers: 'x'"),
    ],
)
def test_simulator_and_bench_counts_out_of_range_are_usage_errors(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A simulator or bench count out of its range is a one-line usage error, exit 2, where
    it used to serve an empty world, fail every request, or run a round anyway."""
    with pytest.raises(SystemExit) as usage:
        _parser().parse_args(args)  # parsed only: nothing served
    assert usage.value.code == 2
    err = capsys.readouterr().err
    command, option = args[0], args[1]
    assert (
        err
        == f"sitoo-sync {command}: argument {option}: {message} (see sitoo-sync {command} --help)\n"
    )


def test_a_configuration_error_is_json_when_json_logs_are_asked_for(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """With SITOO_LOG_FORMAT=json, even a setting that fails to load is reported as one JSON
    event, since a log shipper reads every line."""
    monkeypatch.setenv("SITOO_LOG_FORMAT", "json")
    monkeypatch.setenv("SITOO_SCHEDULES", "not json")
    assert main(["run", "--once"]) == 2
    captured = capsys.readouterr()
    [line] = captured.err.splitlines()
    event = json.loads(line)
    assert event["event"] == "command_failed"
    assert event["exit_code"] == 2
    assert "SITOO_SCHEDULES" in event["message"]
    assert captured.out == ""


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("foo://bar", "no driver for foo://"),
        ("duckdb://", "not a DuckDB URL: 'duckdb://'"),
        ("duckdb:///{tmp}/no/dir/x.duckdb", "the directory {tmp}/no/dir does not exist"),
    ],
)
def test_an_unusable_target_option_is_named_as_the_option(
    target: str,
    reason: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`status --target URL` with a URL it cannot use names `--target`, not the
    SITOO_TARGET_URL it replaces, in one line, exit 2."""
    monkeypatch.setenv("SITOO_TARGET_URL", f"duckdb:///{tmp_path / 'w.duckdb'}")
    assert main(["status", "--target", target.replace("{tmp}", str(tmp_path))]) == 2
    err = capsys.readouterr().err
    expected = f"sitoo-sync: configuration error: --target: {reason}".replace(
        "{tmp}", str(tmp_path)
    )
    assert err.startswith(expected), err
    assert err.count("\n") == 1, err
    assert list(tmp_path.iterdir()) == []


def test_a_port_taken_or_a_missing_directory_is_one_line_exit_2(
    sim: Simulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The simulator's --port or the service's SITOO_METRICS_PORT already in use, and verify's
    --metrics-file in a directory that does not exist, are one line naming the setting, exit
    2, no traceback (each was an OSError traceback)."""
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    use_simulator(monkeypatch, sim, tmp_path / "w.duckdb")
    try:
        assert main(["simulator", "--port", str(port)]) == 2
        err = capsys.readouterr().err
        assert err.startswith(
            f"sitoo-sync: configuration error: --port: cannot listen on 127.0.0.1:{port}"
        )
        assert err.count("\n") == 1, err
        monkeypatch.setenv("SITOO_METRICS_PORT", str(port))
        assert main(["run"]) == 2
        err = capsys.readouterr().err
        assert f"SITOO_METRICS_PORT: cannot listen on 127.0.0.1:{port}" in err
        assert "Traceback" not in err
    finally:
        taken.close()
    assert main(["verify", "--metrics-file", str(tmp_path / "no" / "f.prom")]) == 2
    err = capsys.readouterr().err
    missing = tmp_path / "no"
    assert err == f"sitoo-sync: configuration error: --metrics-file: the directory {missing} " + (
        "does not exist\n"
    )


def test_a_misspelt_environment_variable_is_warned_about_with_the_name_it_looks_like(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A SITOO_* variable no setting or stream option reads (SITOO_CONCURENCY) is named in
    a warning with the known name it looks like; known ones, stream options and their
    aliases, SITOO_CONFIG and the test suite's SITOO_TEST_* raise none; the command goes on."""
    from sitoo_sync.streams import unknown_environment

    environ = {
        "SITOO_CONCURENCY": "8",
        "SITOO_CONCURRENCY": "8",
        "SITOO_JOURNAL_START": "2026-01-01",
        "SITOO_STORE_Z_REPORTS_LOOKBACK_DAYS": "3",
        "SITOO_CONFIG": "x.toml",
        "SITOO_TEST_POSTGRES_URL": "postgresql://x",
        "SITOO_WHATEVER": "1",
        "SITOO_Concurrency": "7",  # read: names are matched whatever their case
        "SITOO_CONFIG_FILE": "x.toml",
        "SITOO_SYNC_SERVICE_HOST": "10.0.0.1",  # Kubernetes' link to a Service sitoo-sync
        "PATH": "/bin",
    }
    assert unknown_environment(environ) == {
        "SITOO_CONCURENCY": "SITOO_CONCURRENCY",
        "SITOO_CONFIG_FILE": "SITOO_CONFIG",
        "SITOO_WHATEVER": None,
    }
    monkeypatch.setenv("SITOO_CONCURENCY", "8")
    monkeypatch.setenv("SITOO_TARGET_URL", f"duckdb:///{tmp_path / 'none.duckdb'}")
    assert main(["status"]) == 1  # no warehouse yet: the command ran
    err = capsys.readouterr().err
    [warning] = [line for line in err.splitlines() if "unknown_setting" in line]
    assert "variable=SITOO_CONCURENCY" in warning
    assert "did_you_mean=SITOO_CONCURRENCY" in warning


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "cannot read config file {path}: Is a directory"),
        (b'log_level = "INFO"\n\xff\n', "config file {path} is not valid TOML: 'utf-8' codec"),
        (
            b"[streams.store_z_reports]\nlookbak_days = 3\n",
            "[streams.store_z_reports]: unknown setting 'lookbak_days'",
        ),
        (b"[streams.bogus]\nx = 1\n", "[streams.bogus]: no such stream"),
    ],
    ids=["a-directory", "not-utf8", "misspelt-stream-key", "unknown-stream"],
)
def test_a_bad_config_file_stops_run_at_its_start_in_one_line(
    content: bytes | None,
    expected: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A config file that is a directory or not UTF-8, or whose stream table has a misspelt
    key or names no stream, stops `run` (the service) at its start: one line, exit 2,
    nothing created (a misspelt stream key used to fail that stream's every tick)."""
    path = tmp_path / "c.toml"
    if content is None:
        path.mkdir()
    else:
        path.write_bytes(content)
    monkeypatch.chdir(tmp_path)
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    assert main(["--config", str(path), "run"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("sitoo-sync: configuration error: " + expected.format(path=path)), err
    assert err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.toml"]


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("foo://bar", "no driver for foo://"),
        ("bar", "not a URL: 'bar'"),
        ("duckdb:///{tmp}/no/dir/x.duckdb", "the directory {tmp}/no/dir does not exist"),
    ],
)
def test_bench_refuses_an_unusable_target_before_generating_anything(
    target: str, reason: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`bench --target URL` with a URL it cannot use stops at once (no simulator started,
    nothing written) with one line naming --target, exit 2."""
    assert main(["bench", "--target", target.replace("{tmp}", str(tmp_path))]) == 2
    captured = capsys.readouterr()
    expected = f"sitoo-sync: configuration error: --target: {reason}".replace(
        "{tmp}", str(tmp_path)
    )
    assert captured.err.startswith(expected), captured.err
    assert captured.err.count("\n") == 1, captured.err
    assert "Generating" not in captured.out
    assert list(tmp_path.iterdir()) == []


def test_a_relative_duckdb_path_meant_absolute_is_told_of_the_fourth_slash(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`duckdb:///var/lib/x.duckdb` is relative (three slashes): when that directory is
    missing here but exists from the root, the one-line error shows the four-slash URL."""
    monkeypatch.chdir(tmp_path)
    absolute = tmp_path / "data"
    absolute.mkdir()
    url = f"duckdb://{absolute}/w.duckdb"  # the path's own leading slash: three in all
    monkeypatch.setenv("SITOO_TARGET_URL", url)
    assert main(["status"]) == 2
    err = capsys.readouterr().err
    assert f"an absolute path takes four slashes: duckdb:///{absolute}/w.duckdb" in err
    assert err.count("\n") == 1, err


def test_reset_of_a_misspelled_stream_names_the_one_meant(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`reset pos_zreports` is one line, exit 2, that guesses pos_z_reports and lists only
    the streams a reset can move (those with a cursor), before any warehouse is opened."""
    monkeypatch.setenv("SITOO_TARGET_URL", "duckdb:////nonexistent/dir/w.duckdb")
    assert main(["reset", "pos_zreports"]) == 2
    assert capsys.readouterr().err == (
        "sitoo-sync: configuration error: unknown stream 'pos_zreports' (did you mean "
        "pos_z_reports?); streams with a cursor: journal_entries, pos_z_reports, "
        "store_z_reports, orders, warehouse_transactions, products, warehouse_items\n"
    )


RUNS = [["run", "--once"], ["run"]]  # what checks the streams before the warehouse


@pytest.mark.parametrize(
    ("command", "toml", "expected"),
    [
        *[
            (command, 'streams = ["journal_entrie"]', "streams in {file}: unknown stream ")
            for command in RUNS
        ],
        *[
            (command, 'schedules = { pos_z_reportz = "5m" }', "schedules in {file}: unknown ")
            for command in RUNS
        ],
        *[
            (
                command,
                'target_url = "duckdb:///{tmp}/x.duckdb?threads=2"',
                "target_url in {file}: a DuckDB URL takes no options (?threads=2)",
            )
            for command in COMMANDS
        ],
    ],
)
def test_a_setting_the_config_file_gave_is_named_as_the_file_wrote_it(
    command: list[str],
    toml: str,
    expected: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """An error found after the settings loaded (an unknown stream, a target URL's options)
    names `key in FILE` when the file set it, not an environment variable nobody set."""
    config = tmp_path / "sitoo.toml"
    config.write_text(toml.replace("{tmp}", str(tmp_path)) + "\n")
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    assert main(["--config", str(config), *command]) == 2
    err = capsys.readouterr().err
    assert err.startswith("sitoo-sync: configuration error: " + expected.format(file=config))
    assert len(err.splitlines()) == 1


def test_a_setting_the_environment_gave_is_named_by_its_variable_over_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Where the environment overrides the file, the error names the variable; an error
    about an unset setting keeps its own words."""
    config = tmp_path / "sitoo.toml"
    config.write_text('streams = ["journal_entrie"]\n')
    monkeypatch.setenv("SITOO_STREAMS", "foo")
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    assert main(["--config", str(config), "run", "--once"]) == 2
    assert capsys.readouterr().err.startswith(
        "sitoo-sync: configuration error: SITOO_STREAMS: unknown stream 'foo'; "
    )
    monkeypatch.setenv("SITOO_STREAMS", "pos_z_reports")
    monkeypatch.delenv("SITOO_API_ID")
    assert main(["--config", str(config), "run", "--once"]) == 2
    assert capsys.readouterr().err.startswith(
        "sitoo-sync: configuration error: SITOO_API_ID is not set"
    )
