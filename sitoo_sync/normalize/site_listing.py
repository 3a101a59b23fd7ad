"""What every full listing of a site adds to its rows: the site, and when it was seen.

REST v2 collections per site (stores, warehouses, payment types, product groups,
manufacturers, categories, users) carry no site of their own and no time of listing. The
site is the partition and the time the tick's; `first_seen_at` is kept from the first
listing (`Table.keep_on_update`), and `missing_since` is cleared on every listed row, so
a row the sync marked missing is un-marked when a listing shows it again.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sitoo_sync.normalize.tables import Column, integer, timestamp

SITE_ID = "site_id"


def site_column(what: str) -> Column:
    """The `site_id` column of a per-site listing of `what`."""
    return integer(
        SITE_ID,
        f"The site (eshop ID) whose listing showed the {what}; the sync's partition. Ours.",
        nullable=False,
    )


def seen_columns(what: str) -> tuple[Column, ...]:
    """first_seen_at, last_seen_at and missing_since of a listed `what`."""
    return (
        timestamp("first_seen_at", f"When a listing first showed the {what} (UTC). Ours."),
        timestamp("last_seen_at", f"When a listing last showed the {what} (UTC). Ours."),
        timestamp(
            "missing_since",
            f"Since when listings no longer show the {what} (UTC); NULL while it is listed. "
            "Ours: the row is kept.",
        ),
    )


def seen(record: Mapping[str, Any], context: Mapping[str, Any]) -> dict[str, Any]:
    """The record seen now: first/last seen at the tick's time, not missing."""
    now = context.get("now")
    at = int(now.timestamp()) if now is not None else None
    return {**record, "first_seen_at": at, "last_seen_at": at, "missing_since": None}


def site_listed(record: Mapping[str, Any], context: Mapping[str, Any]) -> dict[str, Any]:
    """The record with its site (the partition) and seen now."""
    site = context.get("partition")
    return {**seen(record, context), SITE_ID: int(site) if site else None}


def site_of(context: Mapping[str, Any]) -> int | None:
    """The site of the context's partition (`site_in`)."""
    return site_in(str(context.get("partition") or ""))


def site_in(partition: str) -> int | None:
    """The site a partition `site` or `site/warehouse` names, or None when it names none."""
    head = partition.partition("/")[0]
    return int(head) if head.isdigit() else None
