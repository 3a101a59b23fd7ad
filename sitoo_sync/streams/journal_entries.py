"""Journal entries (`GET {journals}/journal-entries`): every register's POS event log.

The contract (API_CONTRACT.md, "Journal entries"): one register per request
(`register_id`), `date_type=added` (the only date that finds entries an offline register
uploads late), `sort_order=asc`, inclusive `date_from`, pages of `num` (**assumed** at most
1000) continued with the `next` token from the response (**assumed** field name; absent,
null or empty ends the query). Key (`registerid`, `id`). One partition, and one cursor, per
register; registers are fetched concurrently (SITOO_CONCURRENCY).

A receipt that names no time zone of its own (`pos-timezone`) is dated in its register's
site's: `receipt_zones` reads, once per tick, which site each register belongs to and every
site's zone, and the normalizer looks its register up once per window.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from datetime import date
from typing import Any

from sitoo_sync.api.client import Api
from sitoo_sync.normalize import journal_entries as normalize
from sitoo_sync.normalize import journal_pages
from sitoo_sync.streams.base import Stream, TickSources
from sitoo_sync.streams.cursors import CursorPages
from sitoo_sync.streams.options import Option
from sitoo_sync.streams.partitions import REGISTERS
from sitoo_sync.streams.site_zones import read_site_zones

#: What a site zone that failed to read costs, said where it is logged.
WAIT = (
    "the journal of a register of the site fails this tick when it meets a receipt without "
    "a pos-timezone, and is read again next tick, rather than load it dated in another zone"
)
#: What a site that has no zone costs.
NO_SITE_ZONE = "receipts without a pos-timezone of the site's registers are dated in UTC"


def receipt_zones(sources: TickSources) -> Mapping[str, Any]:
    """Once per tick, for receipts that name no zone of their own: each register's site, as
    the cash_registers table holds it (one query; the registers that stream has listed),
    and a function that reads each site's zone (streams/site_zones.py: the listing, and the
    zones it remembers) the first time a receipt needs one, from whichever thread that is.

    Read when needed, not here: a tick's registers start only after this hook, and the
    listing's round trip before them would cost every tick (most receipts name their zone).
    The journal's own partitions are never asked: a window looks its register up in these.
    A site zone the API failed to give this tick makes such a receipt wait (`normalize.site_zone`).
    """
    sites = REGISTERS.stored_sites(lambda *query: dict(sources.latest(*query)))

    def read() -> Mapping[str, Any]:
        zones = read_site_zones(sources, "journal_entries", wait=WAIT, no_zone=NO_SITE_ZONE)
        return {
            normalize.SITE_ZONES: dict(zones.zones),
            normalize.ZONES_UNREAD: zones.unread,
            normalize.LISTED_SITES: zones.sites,
        }

    return {normalize.REGISTER_SITES: sites, normalize.READ_SITE_ZONES: once(read)}


def once(read: Callable[[], Mapping[str, Any]]) -> Callable[[], Mapping[str, Any]]:
    """`read`, called by the first caller only (the others wait for its answer); an error
    it raises is raised to that caller and the next caller tries again."""
    lock = threading.Lock()
    answer: list[Mapping[str, Any]] = []

    def first() -> Mapping[str, Any]:
        with lock:
            if not answer:
                answer.append(read())
            return answer[0]

    return first


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
    tick_context=receipt_zones,
)
