"""Progress of a long `run --once`: off a terminal, a `backfill_progress` event every few
seconds per stream, with where the cursor stands and an estimate of the time left."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime

from sitoo_sync.log import configure_logging
from sitoo_sync.partition import PartitionResult
from sitoo_sync.progress import Progress


def test_off_a_terminal_progress_is_a_log_event_every_few_seconds() -> None:
    """Windows committed within `every` seconds make one event, not one each; the event says
    how far the stream has come and how long is left."""
    logs = io.StringIO()
    configure_logging(fmt="json", level="INFO", stream=logs)
    now = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
    at = int(now.timestamp())
    day = 86400
    ticks = iter([0.0, 1.0, 2.0, 6.0])
    screen = io.StringIO()  # not a terminal
    progress = Progress(screen, every=5.0, clock=lambda: next(ticks), now=lambda: now)
    for rows, behind in ((10, 10), (20, 9), (30, 8), (40, 7)):
        cursor = str(at - behind * day)
        progress(
            PartitionResult("pos_z_reports", "1500", windows=rows // 10, rows=rows, cursor=cursor)
        )
    events = [json.loads(line) for line in logs.getvalue().splitlines()]
    assert [e["event"] for e in events] == ["backfill_progress", "backfill_progress"]
    last = events[-1]
    assert last["stream"] == "pos_z_reports"
    assert last["rows"] == 40
    assert last["cursor_at"] == "2026-11-14T12:00:00+00:00"
    assert last["behind_seconds"] == 7 * day
    assert last["seconds_left"] == 14  # three days gained in six seconds: seven take fourteen
    assert screen.getvalue() == ""
