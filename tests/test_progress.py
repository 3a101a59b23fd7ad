"""Progress of a long `run --once`: off a terminal, a `backfill_progress` event every few
seconds per stream, with where the cursor stands and an estimate of the time left."""

from __future__ import annotations

import io
import json
import re
import sys
from datetime import UTC, datetime

import pytest

from sitoo_sync.log import configure_logging, get_logger
from sitoo_sync.progress import Progress
from sitoo_sync.results import PartitionResult


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


def test_a_log_line_on_a_terminal_clears_the_progress_line_and_draws_it_again_below(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """With a live progress line on the terminal, a log line never runs into it: the line is
    cleared first, the event written, and the progress drawn again under it; after `done()`
    log lines are written as they are."""
    configure_logging(fmt="console", level="INFO")  # to the process's stderr
    progress = Progress(sys.stderr, live=True)
    progress(PartitionResult("pos_z_reports", "1500", windows=1, rows=7))
    log = get_logger("tests")
    log.info("something_happened")
    progress.done()
    log.info("afterwards")
    err = capsys.readouterr().err
    shown = re.escape("  pos_z_reports: 1 window, 7 rows")
    clear = re.escape("\r\033[K")
    assert re.search(f"{clear}{shown}{clear}[^\n]*something_happened[^\n]*\n{shown}\n", err)
    assert clear not in re.escape(err.rsplit("\n", 2)[-2])  # the line with `afterwards`
    assert "afterwards" in err.rsplit("\n", 2)[-2]


def test_on_a_terminal_the_line_is_drawn_at_most_every_draw_seconds_and_last_at_done() -> None:
    """Batches committed within DRAW_SECONDS of the last drawing are not drawn (describing
    walks every partition); `done()` draws the line once more when it left one out."""
    ticks = iter([0.0, 0.05, 0.1, 0.3, 0.35, 0.4])
    screen = io.StringIO()
    progress = Progress(screen, live=True, clock=lambda: next(ticks))
    try:
        for n in range(1, 6):
            progress(PartitionResult("journal_entries", "r1", windows=n, rows=10 * n))
        drawn = screen.getvalue().split("\r\033[K")[1:]
        assert drawn == [
            "  journal_entries: 1 window, 10 rows",
            "  journal_entries: 4 windows, 40 rows",
        ]
    finally:
        progress.done()
    assert screen.getvalue().split("\r\033[K")[-1] == "  journal_entries: 5 windows, 50 rows\n"
