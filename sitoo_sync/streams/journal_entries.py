"""Journal entries (`GET {journals}/journal-entries`): every register's POS event log.

The contract (API_CONTRACT.md, "Journal entries"): one register per request
(`register_id`), `date_type=added` (the only date that finds entries an offline register
uploads late), `sort_order=asc`, inclusive `date_from`, pages of `num` (**assumed** at most
1000) continued with the `next` token from the response (**assumed** field name; absent,
null or empty ends the query). Key (`registerid`, `id`). One partition, and one cursor, per
register; registers are fetched concurrently (SITOO_CONCURRENCY).
"""

from __future__ import annotations

from datetime import date

from sitoo_sync.api.client import Api
from sitoo_sync.normalize import journal_entries as normalize
from sitoo_sync.normalize import journal_pages
from sitoo_sync.streams.base import Stream
from sitoo_sync.streams.cursors import CursorPages
from sitoo_sync.streams.options import Option
from sitoo_sync.streams.partitions import REGISTERS

JOURNAL_ENTRIES = Stream(
    name="journal_entries",
    api=Api.JOURNALS,
    path="/journal-entries",
    cursor=CursorPages(
        partition_param="register_id",
        time_field="dateadded",
        lo_param="date_from",
        next_param="next",
        next_field="next",
        fixed=(("date_type", "added"), ("sort_order", "asc"), ("num", 1000)),
    ),
    tables=normalize.TABLES,
    normalize=journal_pages.normalize_window,
    decode=journal_pages.decode_page,
    normalize_many=journal_pages.normalize_windows,
    description="Journal entries of every register, with typed receipts, items, payments, "
    "cash and staff events",
    default_schedule="5m",
    partitions=REGISTERS,
    options=(
        Option(
            "start",
            date | None,
            "first day of journal entries for a newly seen register; default: all of its history",
            aliases=("SITOO_JOURNAL_START",),
        ),
    ),
    immutable=True,  # an event log: an entry, once added, is never edited
)
