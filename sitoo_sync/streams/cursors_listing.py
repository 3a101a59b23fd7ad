"""Full-listing strategies beside `OffsetPages`: one unpaged request, and pages with a filter.

`WholeListing` is for an endpoint that answers everything at once: `/sites.json` (no query
parameters at all) and `/sites/{s}/pospaymenttypes.json` (a bare array, no paging; fact
sheet 7.1). `OffsetPages` would ask a bare array for a second page forever, since it has no
`totalcount` to stop at.

`ListingPages` is `OffsetPages` as the contract's tolerant reader needs it for a listing
whose rows it does not show get `missing_since`: a bare array may be only the first page
(an endpoint that pages by start/num, maybe 10 at a time whatever `num` asks), so it is
paged on until a page comes back empty; a `totalcount` sent as digits counts; and a page
that repeats the one before (an endpoint that ignores `start`) ends the listing instead of
being asked for forever. A listing that ends short of its own `totalcount` (`WholeListing`
too) fails its partition once its records are loaded, so the rows it never showed are not
marked missing.

`StaffOnly` is `ListingPages` that keeps only the records a predicate accepts, for a
listing the API cannot filter the way we need (users: staff only, by `role`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sitoo_sync.errors import StuckWindowError
from sitoo_sync.normalize.values import to_int_or_none
from sitoo_sync.streams.cursors import OffsetPages, Window, WindowContext, epoch_lag


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
        _complete(len(items), total)


@dataclass(frozen=True)
class ListingPages(OffsetPages):
    """`OffsetPages` that takes every shape of page the contract allows (module docstring):
    a page ends the listing when it is empty, reaches the count, or repeats the last page."""

    def windows(self, ctx: WindowContext, stored: str | None) -> Iterator[Window]:
        """One window per page of the listing."""
        listed_at = str(int(ctx.now.timestamp()))
        start = 0
        last: tuple[int, Any, Any] | None = None  # the last page's size, first and last item
        while True:
            params: dict[str, str | int] = {
                **dict(self.fixed),
                self.start_param: start,
                self.num_param: self.page_size,
            }
            payload = ctx.fetch_raw(params)
            envelope = isinstance(payload, Mapping)
            items = payload.get("items") if envelope else payload
            if not isinstance(items, list):
                raise StuckWindowError("the listing has no items list")
            total = to_int_or_none(payload.get(self.total_field)) if envelope else None
            if items and (len(items), items[0], items[-1]) == last:
                _complete(start, total)  # `start` ignored: the page before was all it shows
                return
            yield Window(items, listed_at, params)
            start += len(items)
            if not items or (total is not None and start >= total):
                return
            last = (len(items), items[0], items[-1])


def _complete(shown: int, total: int | None) -> None:
    """StuckWindowError when a listing that ends after `shown` records says it has more:
    what it showed is loaded, and the rows it did not show are not marked missing."""
    if total is not None and shown < total:
        raise StuckWindowError(
            f"the listing showed {shown} of its totalcount {total}; rows it did not show "
            "are not marked missing"
        )


@dataclass(frozen=True)
class StaffOnly(ListingPages):
    """`ListingPages` of users, keeping customers only when `include_customers` is set.

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
