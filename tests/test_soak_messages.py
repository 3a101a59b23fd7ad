"""Found in a soak: one-line errors say what to do, not only what went wrong."""

from __future__ import annotations

from sitoo_sync.warehouse import unreachable


def test_an_unreachable_database_server_says_what_to_check() -> None:
    """A refused connection names the masked URL, the driver's reason and what to check,
    on one line."""
    exc = OSError('connection to server at "127.0.0.1", port 5999 failed: Connection refused')
    message = str(unreachable("postgresql://sitoo:hunter2@127.0.0.1:5999/w", exc))
    assert message.startswith(
        "cannot reach the warehouse at postgresql://sitoo:***@127.0.0.1:5999/w: "
    )
    assert "Connection refused" in message
    assert "check the target URL" in message
    assert "hunter2" not in message
    assert len(message.splitlines()) == 1
