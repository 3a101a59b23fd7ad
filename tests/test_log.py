"""The logging setup: structured events, and secrets masked whatever shape they arrive in."""

from __future__ import annotations

import io
import json

from sitoo_sync.log import REDACTED, RedactSecrets, configure_logging, get_logger


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
