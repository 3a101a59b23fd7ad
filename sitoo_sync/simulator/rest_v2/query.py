"""Query-string parsing, start/num paging and `fields` selection shared by the REST v2 routes."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from sitoo_sync.simulator import params
from sitoo_sync.simulator.params import one

Query = Mapping[str, list[str]]
Body = dict[str, Any]


class RestError(Exception):
    """An error answer of a REST v2 route: HTTP status and the vendor's error text."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


def integer(query: Query, name: str, default: int | None = None) -> int | None:
    """`name` as an int (400 when it is not one), read as the POS routes read theirs."""
    return params.integer(query, name, default, error=RestError)


def csv(query: Query, name: str) -> list[str] | None:
    """A comma-separated filter; repeated keys are accepted too (one vendor example uses them)."""
    values = query.get(name)
    if not values:
        return None
    return [part for raw in values for part in raw.split(",") if part]


def csv_ints(query: Query, name: str) -> set[int] | None:
    """A comma-separated integer filter."""
    parts = csv(query, name)
    if parts is None:
        return None
    try:
        return {int(p) for p in parts}
    except ValueError:
        raise RestError(400, f"Invalid value for {name}") from None


def flag(query: Query, name: str) -> bool:
    """A boolean query flag (`true`/`1`; the repo types it a string enum, [dev] a boolean)."""
    return (one(query, name) or "").lower() in ("true", "1")


def select(body: Body, fields: Sequence[str] | None, default: Sequence[str] | None) -> Body:
    """`body` cut to the asked fields, else the endpoint's default set (None: every field).

    Unknown names are ignored (assumption: the docs do not say what the API does with them).
    """
    wanted = fields if fields is not None else default
    if wanted is None:
        return dict(body)
    return {name: body[name] for name in wanted if name in body}


def envelope(
    query: Query,
    rows: Sequence[Body],
    *,
    max_num: int,
    default_fields: Sequence[str] | None = None,
    shape: Callable[[Body], Body] | None = None,
) -> Body:
    """`{"totalcount", "items"}` for one start/num page (defaults 0/10; `num` silently capped)."""
    start = integer(query, "start", 0) or 0
    num = integer(query, "num", 10)
    num = 10 if num is None else num
    if start < 0 or num < 0:
        raise RestError(400, "start and num must not be negative")
    fields = csv(query, "fields")
    page = rows[start : start + min(num, max_num)]
    items = [select(shape(r) if shape else r, fields, default_fields) for r in page]
    return {"totalcount": len(rows), "items": items}


def bare(query: Query, rows: Iterable[Body]) -> list[Body]:
    """A bare array (pospaymenttypes): every row, `fields` honoured, no paging."""
    fields = csv(query, "fields")
    return [select(r, fields, None) for r in rows]
