"""Cursor strategies: how a stream walks an endpoint from its stored cursor to the present.

A strategy is a declaration plus one generator, `windows(...)`, which yields `Window`s:
the records of one request and the cursor that is safe to store once they are loaded.
The strategies do no I/O themselves; they call the `fetch` function they are given.

`TimeWindows` — an endpoint filtered by an inclusive time range, sorted ascending on that
time, capped at `cap` items, with no paging parameter (`/pos-z-reports`):

* The stored cursor is the *resume point*: the next read starts there, inclusively.
* Every tick starts `overlap` seconds before the cursor, so late arrivals are found.
* A page shorter than `cap` is the end: the cursor becomes its newest time.
* A full page is loaded and the next read starts at its newest time (inclusively: that
  second may hold more items than the page showed). Items of that second which come back
  identical are not yielded twice: loading them again would change nothing.
* A full page whose items all share one second cannot be advanced past; that second is
  split by `split_param` (e.g. one request per register) and then stepped over.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from sitoo_sync.errors import StuckWindowError

Fetch = Callable[[Mapping[str, str | int]], list[Any]]
SplitValues = Callable[[list[Any]], Iterable[str]]


@dataclass(frozen=True)
class Window:
    """One request's records and the cursor to store when they are loaded."""

    records: list[Any]
    cursor: int
    params: Mapping[str, str | int]


def _times(records: list[Any], field: str) -> list[int]:
    """The cursor field of each record that has a usable one (bad records are rejected later)."""
    return [
        t
        for r in records
        if isinstance(r, Mapping) and type(t := r.get(field)) is int  # noqa: RUF100
    ]


def _key(record: Any, key: tuple[str, ...]) -> tuple[Any, ...]:
    if not isinstance(record, Mapping):
        return ()
    return tuple(record.get(k) for k in key)


@dataclass(frozen=True)
class TimeWindows:
    """Inclusive time-range windows over an ascending, capped endpoint."""

    field: str
    lo_param: str
    hi_param: str
    cap: int
    split_param: str

    def windows(
        self,
        fetch: Fetch,
        cursor: int | None,
        *,
        overlap: int,
        start: int = 0,
        split_values: SplitValues,
        key: tuple[str, ...] = (),
    ) -> Iterator[Window]:
        """Windows from `cursor - overlap` (or `start`) to the newest item."""
        resume = cursor if cursor is not None else start
        lo = max(start, resume - overlap) if cursor is not None else start
        seen: dict[tuple[Any, ...], Any] = {}  # the last full page's items at second `lo`
        while True:
            params: dict[str, str | int] = {self.lo_param: lo}
            page = fetch(params)
            times = _times(page, self.field)
            fresh = [r for r in page if not seen or seen.get(_key(r, key)) != r] if key else page
            newest = max(times, default=lo)
            if len(page) < self.cap:
                yield Window(fresh, max(resume, newest), params)
                return
            oldest = min(times, default=lo)
            if oldest < newest:
                # Seconds before `newest` are complete; `newest` is re-read next time.
                resume = max(resume, newest)
                yield Window(fresh, resume, params)
                lo = newest
                if key:
                    seen = {
                        _key(r, key): r
                        for r in page
                        if isinstance(r, Mapping) and r.get(self.field) == newest
                    }
                continue
            # One second alone fills the page: split it, then step past it.
            second = newest
            yield from self._split(fetch, second, page, resume, split_values)
            resume = max(resume, second + 1)
            lo = second + 1

    def _split(
        self,
        fetch: Fetch,
        second: int,
        page: list[Any],
        resume: int,
        split_values: SplitValues,
    ) -> Iterator[Window]:
        values = sorted(set(split_values(page)))
        if not values:
            raise StuckWindowError(
                f"{self.cap} items share {self.field}={second} and nothing is known to split "
                f"them by {self.split_param}"
            )
        for i, value in enumerate(values):
            params: dict[str, str | int] = {
                self.lo_param: second,
                self.hi_param: second,
                self.split_param: value,
            }
            part = fetch(params)
            if len(part) >= self.cap:
                raise StuckWindowError(
                    f"{self.cap} items share {self.field}={second} even for "
                    f"{self.split_param}={value}; cannot split further without skipping"
                )
            # The cursor may only step past the second once its last part is in.
            done = i == len(values) - 1
            yield Window(part, max(resume, second + 1) if done else max(resume, second), params)
