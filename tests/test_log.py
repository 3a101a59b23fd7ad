"""The logging setup: structured events, and secrets masked whatever shape they arrive in."""

from __future__ import annotations

import io
import json
import logging
import re
import subprocess
import sys

import pytest

from sitoo_sync.cli import main
from sitoo_sync.log import REDACTED, RedactSecrets, configure_logging, get_logger
from sitoo_sync.warehouse import masked_url


def test_secret_values_keys_and_url_credentials_are_masked() -> None:
    """A known secret, a secret-named key and user:password in a URL are all replaced."""
    redact = RedactSecrets(["hunter2"])
    event = redact(
        None,
        "info",
        {
            "event": "x",
            "detail": "login with hunter2 failed",
            "api_password": "anything",
            "url": "https://user:pw@api.mysitoo.com/v2",
            "nested": {"Authorization": "Basic abc", "list": ["hunter2"]},
        },
    )
    assert event["detail"] == f"login with {REDACTED} failed"
    assert event["api_password"] == REDACTED
    assert event["url"] == f"https://{REDACTED}@api.mysitoo.com/v2"
    assert event["nested"] == {"Authorization": REDACTED, "list": [REDACTED]}


def test_a_password_given_as_a_url_parameter_is_masked_in_logs_and_messages() -> None:
    """A secret-named query parameter of a URL (`?password=`, `&api_token=`) is masked in a
    log value and in the URL an error message shows; other parameters are kept."""
    url = "postgresql://postgres@db:5432/test?sslmode=require&password=hunter2&api_token=t0k"
    event = RedactSecrets()(None, "error", {"event": "x", "error": f"cannot reach {url} now"})
    assert "hunter2" not in event["error"]
    assert "t0k" not in event["error"]
    assert f"?sslmode=require&password={REDACTED}&api_token={REDACTED} now" in event["error"]
    shown = masked_url("mysql://root:pw@db/test?passwd=zz&charset=utf8mb4")
    assert shown == f"mysql://root:{REDACTED}@db/test?passwd={REDACTED}&charset=utf8mb4"
    odbc = "mssql+pyodbc:///?odbc_connect=DRIVER%3D%7Bx%7D%3BUID%3Du%3BPWD%3Ds3cret%3BX%3D1"
    assert masked_url(odbc).endswith(f"%3BUID%3Du%3BPWD%3D{REDACTED}%3BX%3D1")
    assert masked_url("mssql:///?odbc_connect=UID=u;PWD=s3cret;X=1").endswith(
        f";PWD={REDACTED};X=1"
    )
    plain = "https://h/x?passthrough=1&tokenizer=2&bypass=3&token"
    assert masked_url(plain) == plain  # names that only contain a secret's word are kept


def test_json_events_are_one_object_per_line_with_context() -> None:
    """In JSON mode an event is a constant name plus its context fields, secrets masked."""
    out = io.StringIO()
    configure_logging(fmt="json", level="INFO", secrets=["pw-123"], stream=out)
    get_logger("t").info("window_loaded", stream="pos_z_reports", rows=3, note="pw-123")
    get_logger("t").debug("not_shown")
    [line] = out.getvalue().splitlines()
    event = json.loads(line)
    assert event["event"] == "window_loaded"
    assert event["stream"] == "pos_z_reports"
    assert event["rows"] == 3
    assert event["note"] == REDACTED
    assert event["level"] == "info"


FOREIGN = """
import logging, sys, threading, warnings
from datetime import UTC, datetime

from apscheduler.events import EVENT_JOB_MAX_INSTANCES
from apscheduler.schedulers.background import BackgroundScheduler

from sitoo_sync.log import configure_logging, get_logger

configure_logging(fmt="json", level="INFO", secrets=["pw-123"])
get_logger("ours").info("window_loaded", rows=3)
logging.getLogger("some.library").warning("login as %s with pw-123", "bob")
logging.getLogger("sqlalchemy.pool").error("lost postgresql://app:hunter2@db/x")
logging.getLogger("httpx").info('HTTP Request: GET https://api "HTTP/1.1 200 OK"')
warnings.warn("this thing is going away", UserWarning, stacklevel=1)

# A job still running when it is due again: APScheduler warns that it skipped the run.
release, skipped = threading.Event(), threading.Event()
scheduler = BackgroundScheduler(timezone=UTC)
scheduler.add_listener(lambda event: skipped.set(), EVENT_JOB_MAX_INSTANCES)
scheduler.add_job(release.wait, "interval", seconds=1, next_run_time=datetime.now(UTC))
scheduler.start()
assert skipped.wait(120), "no run was skipped"
release.set()
scheduler.shutdown()
raise RuntimeError("unexpected, with pw-123 in it")
"""


def test_every_line_of_every_library_is_one_json_object_with_secrets_masked() -> None:
    """With JSON logs, stdlib logging, warnings, APScheduler and an uncaught exception each
    give one JSON line with a timestamp and level, secrets masked; httpx INFO is quiet."""
    result = subprocess.run(
        [sys.executable, "-c", FOREIGN], capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 1, result.stderr
    assert result.stdout == ""
    events = [json.loads(line) for line in result.stderr.splitlines()]
    for event in events:
        assert event["timestamp"].endswith("Z")
        assert event["level"] in {"info", "warning", "error", "critical"}
    assert events[0]["event"] == "window_loaded"
    by_logger = {e["logger"]: e for e in events if "logger" in e}
    assert by_logger["some.library"]["event"] == f"login as bob with {REDACTED}"
    assert by_logger["some.library"]["level"] == "warning"
    assert by_logger["sqlalchemy.pool"]["event"] == f"lost postgresql://{REDACTED}@db/x"
    assert "httpx" not in by_logger
    warning = by_logger["py.warnings"]
    assert warning["event"].endswith("UserWarning: this thing is going away")
    assert (
        "skipped: maximum number of running instances"
        in by_logger["apscheduler.scheduler"]["event"]
    )
    crash = events[-1]
    assert (crash["event"], crash["level"]) == ("unhandled_exception", "critical")
    assert f"RuntimeError: unexpected, with {REDACTED} in it" in crash["exception"]
    assert "pw-123" not in result.stderr
    assert "hunter2" not in result.stderr


def test_console_lines_of_other_libraries_read_like_our_events() -> None:
    """In console mode a stdlib record gets the same timestamp and level columns as ours,
    and names its logger."""
    out = io.StringIO()
    configure_logging(fmt="console", level="INFO", stream=out)
    get_logger("t").info("window_loaded", rows=3)
    logging.getLogger("some.library").warning("disk %s is slow", "sda")
    ours, theirs = out.getvalue().splitlines()
    assert re.match(r"\d{4}-\d\d-\d\dT[\d:.]+Z \[info\s*\] window_loaded\s+", ours)
    assert re.match(r"\d{4}-\d\d-\d\dT[\d:.]+Z \[warning\s*\] disk sda is slow", theirs)
    assert theirs.endswith("[some.library]")


def test_every_console_event_is_one_line_whatever_wrote_it() -> None:
    """At DEBUG, a library's multi-line message (tzlocal's "contents:\n Etc/UTC\n"), our
    event with a multi-line field, and an exception with its traceback and stack are each
    one console line, nothing of them lost."""
    out = io.StringIO()
    configure_logging(fmt="console", level="DEBUG", stream=out)
    logging.getLogger("tzlocal").debug("/etc/timezone found, contents:\n Etc/UTC\n")
    log = get_logger("t")
    log.error("tick_failed", error="connection refused\n\tIs the server running?")
    try:
        raise RuntimeError("boom\nsecond line")
    except RuntimeError:
        log.exception("unhandled_exception", stack_info=True)
    lines = out.getvalue().splitlines()
    assert len(lines) == 3, lines
    assert "/etc/timezone found, contents: Etc/UTC" in lines[0]
    assert lines[0].endswith("[tzlocal]")
    assert "Is the server running?" in lines[1]
    assert "RuntimeError: boom" in lines[2]
    assert "second line" in lines[2]
    assert "Traceback (most recent call last)" in lines[2]
    assert "Stack (most recent call last)" in lines[2]


def test_the_cli_own_lines_are_json_events_with_json_logs(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """With JSON logs, `run --once`'s one-line error is a `command_failed` event carrying the
    message and exit code, and nothing is printed around it."""
    monkeypatch.setenv("SITOO_LOG_FORMAT", "json")
    monkeypatch.setenv("SITOO_STREAMS", "pos_z_reports")
    assert main(["run", "--once"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    [line] = captured.err.splitlines()
    event = json.loads(line)
    assert event["event"] == "command_failed"
    assert event["message"].startswith("sitoo-sync: configuration error: SITOO_API_ID is not set")
    assert (event["level"], event["exit_code"]) == ("error", 2)


def test_a_long_cursor_is_cut_in_log_lines() -> None:
    """A keyset cursor holding thousands of open ids reaches a log line cut to a readable
    length that says how long it was; a short one is shown whole."""
    from sitoo_sync.commit import shown_cursor

    long = '{"after": 5, "open": [' + ", ".join(str(i) for i in range(2000)) + "]}"
    shown = shown_cursor(long)
    assert shown is not None
    assert len(shown) < 160
    assert shown.endswith(f"({len(long)} chars)")
    assert shown_cursor("1763700000") == "1763700000"
    assert shown_cursor(None) is None


def test_a_database_errors_quoted_row_is_dropped_from_any_field() -> None:
    """The DETAIL and CONTEXT lines of a PostgreSQL error, which quote the row, leave a log
    field; its other lines stay."""
    message = (
        'new row for relation "people" violates check constraint "people_id_check"\n'
        "DETAIL:  Failing row contains (1, anna@example.com).\n"
        'CONTEXT:  COPY people, line 1: "1\tanna@example.com"\n'
        "[SQL: COPY people (id, email) FROM STDIN]"
    )
    event = RedactSecrets()(None, "error", {"error": message, "nested": [message]})
    expected = (
        'new row for relation "people" violates check constraint "people_id_check"\n'
        "[SQL: COPY people (id, email) FROM STDIN]"
    )
    assert event == {"error": expected, "nested": [expected]}
