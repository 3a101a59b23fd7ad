"""Time-zone names as the API sends them: any text, including names zoneinfo cannot open."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from sitoo_sync.normalize.pos_z_reports import known_zone
from sitoo_sync.normalize.values import local_day, zone_named
from sitoo_sync.streams.cursors import DayWindows, WindowContext
from tests.support import query
from tests.test_journal_review import T0, _settings, journal_failures, receipt, stored_ids, tick

#: Names that are not zones: a folder of the tz database, a path, one too long for the file
#: system, a NUL, a zone from a newer tz database than ours.
NOT_ZONES = ["Europe", "America/", "../zoneinfo", "Z" * 300, "UTC\x00", "Mars/Olympus_Mons"]


@pytest.mark.parametrize(
    "name", NOT_ZONES, ids=["folder", "folder/", "path", "too-long", "nul", "newer"]
)
def test_a_name_that_is_no_zone_is_unknown_instead_of_an_error(name: str) -> None:
    """A name zoneinfo cannot open (a folder such as "Europe" raises IsADirectoryError, a
    long one OSError) is an unknown zone: the local day falls back to UTC, not a crash."""
    assert zone_named(name) is None
    assert known_zone(name) is None
    assert local_day(T0, name) == datetime.fromtimestamp(T0, UTC).date()


def test_a_receipt_whose_register_names_a_zone_folder_loads(tmp_path: Path) -> None:
    """A receipt whose pos-timezone is "Europe" (a folder of the tz database, not a zone)
    loads with its neighbours instead of failing the register's every tick."""
    bad = receipt(2, T0, "Tack!")
    bad["data"]["additionaldata"]["pos-timezone"] = "Europe"
    body = json.dumps({"items": [receipt(1, T0, "Hej"), bad]}).encode()
    report = tick(tmp_path / "w.duckdb", lambda _params: body)
    assert journal_failures(report) == []
    assert stored_ids(tmp_path / "w.duckdb") == [1, 2]
    rows = query(_settings(tmp_path / "w.duckdb"), "SELECT business_date FROM journal_receipts")
    assert len(rows) == 2


STORE_DAYS = DayWindows(param="day", config_path="/store-z-reports/config")


@pytest.mark.parametrize(
    "config",
    [
        {"aggregation_active": True, "hour_of_day": 1, "time_zone": "Mars/Olympus_Mons"},
        {"aggregation_active": True, "hour_of_day": 1, "time_zone": "Europe"},
        {"aggregation_active": True, "hour_of_day": 1, "time_zone": None},
        {"aggregation_active": True, "hour_of_day": 25, "time_zone": "Europe/Stockholm"},
    ],
)
def test_an_unreadable_aggregation_schedule_reads_days_as_the_worst_case(
    config: dict[str, object],
) -> None:
    """A store z-report config whose zone or hour cannot be read (a zone newer than our
    tz database) no longer fails the stream every tick: days are read up to the newest day
    anywhere, and a day is final only once it is final in every zone after the latest run."""
    now = datetime(2026, 12, 7, 12, tzinfo=UTC)
    today, last_final = STORE_DAYS.schedule(WindowContext(get=lambda _p: config, now=now))
    assert today == date(2026, 12, 8)  # already the 8th at UTC+14
    # At UTC-12 it is 00:00 on the 7th: the run at 23:00 on the 6th made the 5th final.
    assert last_final == date(2026, 12, 5)
    for zone in ("Pacific/Kiritimati", "Pacific/Pago_Pago", "Europe/Stockholm"):
        known = {"aggregation_active": True, "hour_of_day": 23, "time_zone": zone}
        own_today, own_final = STORE_DAYS.schedule(
            WindowContext(get=lambda _p, known=known: known, now=now)  # type: ignore[misc]
        )
        assert own_today <= today
        assert own_final >= last_final
