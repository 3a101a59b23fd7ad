"""How settings are read, as a new user and an operator write them: empty variables, stray
whitespace and byte-order marks, the config file's own names in errors, precedence of the
two password forms, site lists, and durations a clock cannot hold."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import pytest

from sitoo_sync.cli import main
from sitoo_sync.errors import ConfigError
from sitoo_sync.settings import load_settings
from sitoo_sync.streams.options import Option, option_values

EXAMPLE = Path(__file__).parent.parent / "config" / "sitoo-sync.example.toml"
ERROR = "sitoo-sync: configuration error: "


def _config(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / "c.toml"
    if isinstance(text, str):
        path.write_text(text)
    else:
        path.write_bytes(text)
    return path


def _error(config: Path | None = None) -> str:
    with pytest.raises(ConfigError) as raised:
        load_settings(config)
    message = str(raised.value)
    assert "\n" not in message
    return message


def test_an_empty_variable_counts_as_unset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A variable set to "" (compose's `${VAR:-}`, a template's blank) is unset: the password
    file is read, and the config file's or the default value applies, not an empty one."""
    secret = tmp_path / "pw"
    secret.write_text("from-file\n")
    config = _config(tmp_path, 'api_id = "2000-3"\nsite_ids = [3]\n')
    for name in ("SITOO_API_PASSWORD", "SITOO_API_ID", "SITOO_SITE_IDS", "SITOO_METRICS_PORT"):
        monkeypatch.setenv(name, "")
    monkeypatch.setenv("SITOO_API_PASSWORD_FILE", str(secret))
    settings = load_settings(config)
    assert settings.require_credentials() == ("2000-3", "from-file")
    assert settings.site_ids == [3]
    assert settings.metrics_port is None


def test_an_empty_stream_option_variable_counts_as_unset() -> None:
    """SITOO_<STREAM>_<OPTION>="" leaves the config file's value (or the default) in place,
    as an empty setting does, instead of failing or clearing it."""
    options = [Option("page_size", int, "rows", ge=1), Option("start", date | None, "day")]
    given = {"page_size": 50, "start": date(2026, 1, 1)}
    environ = {"SITOO_ORDERS_PAGE_SIZE": "", "SITOO_ORDERS_START": "  "}
    assert option_values("orders", options, given, environ) == given


def test_every_commented_setting_of_the_example_loads_uncommented(tmp_path: Path) -> None:
    """Each `# key = value` line of the example's plain settings, uncommented, is accepted
    (`zreports_base_url = ""`, shown as the default, was refused as not a URL)."""
    text = EXAMPLE.read_text().split("# --- Each stream's own settings")[0]
    uncommented = re.sub(r"(?m)^# (\w+ = )", r"\1", text)
    assert 'zreports_base_url = ""' in uncommented
    settings = load_settings(_config(tmp_path, uncommented.replace("api_password_file", "#")))
    assert settings.zreports_base_url is None
    assert settings.z_reports_base_url == settings.v2_base_url


def test_a_blank_optional_value_in_the_file_means_none(tmp_path: Path) -> None:
    """`api_password_file = ""` (or `target_schema = ""`) in the file is no file (no
    schema), not the working directory read as a password file."""
    config = _config(tmp_path, 'api_password = "pw"\napi_password_file = ""\ntarget_schema = " "\n')
    settings = load_settings(config)
    assert settings.api_password_file is None
    assert settings.target_schema is None


def test_a_blank_value_in_the_file_is_the_default(tmp_path: Path) -> None:
    """`metrics_host = ""` in the file is the default host (loopback), as an empty variable
    is unset: not every interface, which would expose /metrics to whoever reaches the host;
    and `log_format = ""` is the default format, not an error."""
    config = _config(tmp_path, 'metrics_host = ""\nlog_format = " "\n')
    settings = load_settings(config)
    assert settings.metrics_host == "127.0.0.1"
    assert settings.log_format == "console"


def test_surrounding_whitespace_is_not_part_of_a_value(monkeypatch: pytest.MonkeyPatch) -> None:
    """A trailing newline (a secret made with `kubectl create secret --from-file`, a value
    pasted with its line end) is dropped from a setting, as from the password file: the
    target is not a file named `w.duckdb\\n`, the API ID is not sent with it; the hash key
    alone is taken as it is."""
    monkeypatch.setenv("SITOO_API_ID", "10020-140\n")
    monkeypatch.setenv("SITOO_API_PASSWORD", "pw\r\n")
    monkeypatch.setenv("SITOO_TARGET_URL", " duckdb:///w.duckdb\n")
    monkeypatch.setenv("SITOO_LOG_LEVEL", "INFO ")
    settings = load_settings()
    assert settings.require_credentials() == ("10020-140", "pw")
    assert settings.target_url == "duckdb:///w.duckdb"
    assert settings.log_level == "INFO"
    # Except the hash key: hashes already stored were keyed with it as it is.
    monkeypatch.setenv("SITOO_PERSONAL_DATA", "hash")
    monkeypatch.setenv("SITOO_PERSONAL_DATA_KEY", "0123456789abcdef\n")
    key = load_settings().personal_data_key
    assert key is not None
    assert key.get_secret_value() == "0123456789abcdef\n"


def test_a_password_file_from_any_editor_is_read_as_the_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A password file saved with a byte-order mark and CRLF (Windows Notepad) is the
    password alone; `#`, `$`, quotes, inner spaces and non-ASCII letters are kept as written."""
    secret = tmp_path / "pw"
    secret.write_bytes(b"\xef\xbb\xbf" + "p\u00e4#$\"' ss\r\n".encode())
    monkeypatch.setenv("SITOO_API_PASSWORD_FILE", str(secret))
    monkeypatch.setenv("SITOO_API_ID", "1-2")
    assert load_settings().require_credentials() == ("1-2", "p\u00e4#$\"' ss")


def test_a_config_file_saved_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    """A TOML file that starts with a UTF-8 byte-order mark loads (it was "not valid TOML:
    Invalid statement (at line 1, column 1)")."""
    config = _config(tmp_path, b'\xef\xbb\xbfapi_id = "2000-3"\r\nconcurrency = 8\r\n')
    settings = load_settings(config)
    assert (settings.api_id, settings.concurrency) == ("2000-3", 8)


def test_the_environments_password_file_beats_the_files_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SITOO_API_PASSWORD_FILE in the environment wins over `api_password` in the config
    file, as the environment wins over the file for every setting."""
    secret = tmp_path / "pw"
    secret.write_text("from-env-file\n")
    config = _config(tmp_path, 'api_id = "1-2"\napi_password = "from-toml"\n')
    monkeypatch.setenv("SITOO_API_PASSWORD_FILE", str(secret))
    assert load_settings(config).require_credentials() == ("1-2", "from-env-file")
    monkeypatch.setenv("SITOO_API_PASSWORD", "from-env")  # the same source: the password
    assert load_settings(config).require_credentials() == ("1-2", "from-env")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "concurrency = 65\n",
            "concurrency in {path}: Input should be less than or equal to 64 (got 65)",
        ),
        (
            'site_ids = "all"\n',
            "site_ids in {path}: expected site ids (eshopid) such as 1,2; "
            "leave it unset for every site of the account (got 'all')",
        ),
        (
            'api_password_file = "/nonexistent/pw"\n',
            "api_password_file in {path}: cannot read /nonexistent/pw: No such file or directory",
        ),
    ],
)
def test_a_value_from_the_config_file_is_named_as_its_key_in_that_file(
    text: str, expected: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bad value the config file set is named as that file's key and path, not as a
    SITOO_* variable the operator never set (and would look for in the unit file)."""
    config = _config(tmp_path, text)
    assert _error(config) == expected.format(path=config)
    monkeypatch.setenv("SITOO_CONCURRENCY", "0")  # the environment's own is still its name
    assert "SITOO_CONCURRENCY: Input should be greater" in _error(config)


@pytest.mark.parametrize(
    ("key", "meant"),
    [("concurency", "concurrency"), ("SITOO_API_ID", "api_id"), ("schedule", "schedules")],
)
def test_an_unknown_key_in_the_file_names_the_file_and_the_key_it_looks_like(
    key: str, meant: str, tmp_path: Path
) -> None:
    """A misspelt key, or one written as its environment name, is refused with the file's
    path and the key meant, as a misspelt variable is warned about."""
    config = _config(tmp_path, f"{key} = 8\n")
    assert _error(config) == f"unknown setting {key!r} in {config} (did you mean {meant!r}?)"


def test_a_site_named_twice_is_synced_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SITOO_SITE_IDS=1,2,1 (or a list repeating a site) is sites 1 and 2: a repeated site
    was synced twice in each tick, its requests and rows counted twice."""
    monkeypatch.setenv("SITOO_SITE_IDS", " 1, 2,,1 ")
    assert load_settings().site_ids == [1, 2]
    monkeypatch.delenv("SITOO_SITE_IDS")
    assert load_settings(_config(tmp_path, "site_ids = [4, 4, 3]\n")).site_ids == [4, 3]


@pytest.mark.parametrize("value", ["all", "[1,2]", "1 2", "0", "-3"])
def test_site_ids_that_are_not_site_ids_are_one_error_saying_how(
    value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`all`, a JSON list, ids split by spaces or an id below 1 are one error quoting the
    whole value and saying the form, and that leaving it unset means every site."""
    monkeypatch.setenv("SITOO_SITE_IDS", value)
    assert _error() == (
        "SITOO_SITE_IDS: expected site ids (eshopid) such as 1,2; leave it unset for every "
        f"site of the account (got {value!r})"
    )


@pytest.mark.parametrize(
    "env",
    [
        {"SITOO_HTTP_TIMEOUT_SECONDS": "inf"},
        {"SITOO_HTTP_TIMEOUT_SECONDS": "1e300"},
        {"SITOO_HTTP_BACKOFF_BASE_SECONDS": "1e300", "SITOO_HTTP_BACKOFF_MAX_SECONDS": "inf"},
    ],
    ids=["timeout-inf", "timeout-1e300", "backoff-1e300"],
)
def test_a_wait_no_clock_can_hold_is_refused(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`inf` or 1e300 seconds for a request's timeout or backoff is a configuration error
    naming the setting: it ended `run --once` in an OverflowError traceback at the first
    request (or the first retry)."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert _error().startswith(f"{next(iter(env))}: Input should be ")


def test_a_password_given_where_its_file_belongs_is_not_printed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """SITOO_API_PASSWORD_FILE set to the password itself (no such file) is one line that
    does not quote it and says where the password goes; a path is still shown."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SITOO_API_ID", "1-2")
    monkeypatch.setenv("SITOO_API_PASSWORD_FILE", "Hunter2-s3cret")
    assert main(["run", "--once"]) == 2
    err = capsys.readouterr().err
    assert "Hunter2-s3cret" not in err
    assert err == (
        ERROR + "SITOO_API_PASSWORD_FILE: no such file in the working directory (the name "
        "is not shown: if it is the password itself, set SITOO_API_PASSWORD instead)\n"
    )
    assert list(tmp_path.iterdir()) == []


def test_a_bad_entry_of_a_table_setting_names_its_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A wrong-typed entry of the `[schedules]` table (or of SITOO_SCHEDULES' JSON) names
    the stream it is for, not only the table: it has sixteen."""
    config = _config(tmp_path, '[schedules]\npos_z_reports = "15m"\norders = 5\n')
    assert _error(config) == (
        f"schedules in {config}: orders: Input should be a valid string (got 5)"
    )
    monkeypatch.setenv("SITOO_SCHEDULES", '{"users": ["1h"]}')
    assert _error(config) == "SITOO_SCHEDULES: users: Input should be a valid string (got ['1h'])"
