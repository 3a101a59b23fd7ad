"""Store z-reports (`GET {zreports}/store-z-reports?day=...`): one aggregate per store and day.

The contract (API_CONTRACT.md, "Store z-reports"): with `day`, every report of that day;
without it only the newest 100, so the stream always asks day by day. The aggregation
runs once a day at `hour_of_day` in `time_zone` (`/store-z-reports/config`); an account
without aggregation answers that config with `aggregation_active: false` or 404
(**assumed**), which disables the stream rather than failing it.
"""

from __future__ import annotations

from datetime import date

from sitoo_sync.api.client import Api
from sitoo_sync.normalize import store_z_reports as normalize
from sitoo_sync.streams.base import Stream
from sitoo_sync.streams.cursors import DayWindows
from sitoo_sync.streams.options import Option

STORE_Z_REPORTS = Stream(
    name="store_z_reports",
    api=Api.ZREPORTS,
    path="/store-z-reports",
    cursor=DayWindows(param="day", config_path="/store-z-reports/config"),
    tables=normalize.TABLES,
    normalize=normalize.normalize_window,
    description="Store z-reports (one aggregate per store and day) with the POS z-reports "
    "they aggregate and the same child tables as POS z-reports",
    default_schedule="1h",
    options=(
        Option(
            "start_day",
            date | None,
            "first day of store z-reports on the first run; default: 90 days back",
        ),
        Option("lookback_days", int, "final days re-read every tick", ge=0, le=366),
        Option(
            "grace_minutes",
            int,
            "wait after the daily aggregation run before a day is final",
            ge=0,
            le=24 * 60,
        ),
    ),
)
