"""The POS APIs' query parameters as the simulator reads them, and its error answer.

(The REST v2 API's are in rest_v2/query.py: its errors have another shape.)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping


class ApiProblem(Exception):
    """An error answer: status and the vendor's error text."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


def one(query: Mapping[str, list[str]], name: str) -> str | None:
    """The last value of `name` in the query (None when absent)."""
    values = query.get(name)
    return values[-1] if values else None


def integer(
    query: Mapping[str, list[str]],
    name: str,
    default: int | None = None,
    *,
    error: Callable[[int, str], Exception] = ApiProblem,
) -> int | None:
    """`name` as an integer (`default` when absent or empty); a 400 when it is not one, as
    `error` answers it (the REST v2 routes' is RestError)."""
    raw = one(query, name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise error(400, f"Invalid value for {name}: {raw}") from None


def csv(query: Mapping[str, list[str]], name: str) -> set[str] | None:
    """`name` as a set of its comma-separated values (None when absent)."""
    raw = one(query, name)
    if raw is None:
        return None
    return {part for part in raw.split(",") if part}
