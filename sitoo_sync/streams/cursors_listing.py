"""Full-listing strategies beside `OffsetPages`: one unpaged request, and pages with a filter.

`WholeListing` is for an endpoint that answers everything at once: `/sites.json` (no query
parameters at all) and `/sites/{s}/pospaymenttypes.json` (a bare array, no paging; fact
sheet 7.1). `OffsetPages` would ask such an endpoint for a second page, only to find it
repeats the first.

A listing that ends short of its own `totalcount` (`WholeListing`, and `OffsetPages`: see
its `windows`) fails its partition once its records are loaded, so the rows it never
showed are not marked missing.

`StaffOnly` is `OffsetPages` that keeps only the records a predicate accepts, for a
listing the API cannot filter the way we need (users: staff only, by `role`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sitoo_sync.errors import StuckWindowError
from sitoo_sync.normalize.values import to_int_or_none
from sitoo_sync.streams.cursors import (
    OffsetPages,
    Window,
    WindowContext,
    epoch_lag,
    listing_complete,
)


@dataclass(frozen=True)
class WholeListing:
    """One request that lists everything (a bare array or an `items` envelope).

    The cursor is the time of the listing, so `status` can say how old the picture is.
    """

    fixed: tuple[tuple[str, str | int], ...] = ()

    def lag_seconds(self, stored: str | None, now: datetime) -> float | None:
        """Seconds since the last listing."""
        return epoch_lag(stored, now)

    def resume_from(self, day: date, previous: str | None = None) -> str:
        """Never used: every tick reads the whole listing."""
        raise ValueError("a full listing has no cursor to move back")

    def summary(self) -> str:
        """How it reads."""
        return "the whole listing every tick, in one request"

    def windows(self, ctx: WindowContext, stored: str | None) -> Iterator[Window]:
        """The one window of the listing."""
        params: dict[str, str | int] = dict(self.fixed)
        payload = ctx.fetch_raw(params)
        envelope = isinstance(payload, Mapping)
        items = payload.get("items") if envelope else payload
        if not isinstance(items, list):
            raise StuckWindowError("the listing has no items list")
        total = to_int_or_none(payload.get("totalcount")) if envelope else None
        yield Window(items, str(int(ctx.now.timestamp())), params)
        listing_complete(len(items), total)


@dataclass(frozen=True)
class StaffOnly(OffsetPages):
    """`OffsetPages` of users, keeping customers only when `include_customers` is set.

    Staff are users whose `role_field` is not null; customers have it null (fact sheet 8.2,
    an INFERENCE there: the role enum is not documented).
    """

    role_field: str = "role"
    include_customers: bool = False

    def summary(self) -> str:
        """How it reads."""
        return super().summary() + f", users with no `{self.role_field}` only if asked"

    def windows(self, ctx: WindowContext, stored: str | None) -> Iterator[Window]:
        """The pages, customers left out unless asked for."""
        for window in super().windows(ctx, stored):
            if self.include_customers:
                yield window
                continue
            kept = [r for r in window.records if _is_staff(r, self.role_field)]
            yield Window(kept, window.cursor, window.params, window.sweep)


def _is_staff(record: Any, role_field: str) -> bool:
    """True unless the record is an object whose role is null (a customer). A record that
    is not an object is kept, so that normalizing rejects it with its reason."""
    return not isinstance(record, Mapping) or record.get(role_field) is not None
