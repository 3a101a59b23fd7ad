"""Generic record → row mapping driven by a Table declaration, and the window's output type.

A `RowMapper` reads each declared column from a JSON object by name, converts it by kind,
and gathers fields nobody declared into the table's `extra` JSON column, so a field the
API adds tomorrow is kept today and becomes a column with a one-line declaration.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sitoo_sync.errors import RecordRejected
from sitoo_sync.normalize.tables import Table
from sitoo_sync.normalize.values import CONVERTERS, dumps_json

EXTRA = "extra"

Row = tuple[Any, ...]


class RowMapper:
    """Maps one JSON object to a row of `table`, after `prefix` columns the caller supplies."""

    def __init__(
        self, table: Table, *, prefix: tuple[str, ...], ignore: Iterable[str] = ()
    ) -> None:
        if table.column_names[: len(prefix)] != prefix:
            raise ValueError(f"{table.name}: columns must start with {prefix}")
        self.table = table
        body = table.columns[len(prefix) :]
        self.has_extra = bool(body) and body[-1].name == EXTRA
        if self.has_extra:
            body = body[:-1]
        self._fields = tuple((c.name, CONVERTERS[c.kind], c.nullable) for c in body)
        self._known = frozenset(name for name, _, _ in self._fields) | frozenset(ignore)

    def row(self, record: Mapping[str, Any], prefix: Row = ()) -> Row:
        """The typed row; raises RecordRejected naming the first bad field."""
        values: list[Any] = list(prefix)
        append = values.append
        get = record.get
        for name, convert, nullable in self._fields:
            raw = get(name)
            if raw is None:
                if not nullable:
                    raise RecordRejected(
                        "missing required field", field=f"{self.table.name}.{name}"
                    )
                append(None)
                continue
            try:
                append(convert(raw))
            except RecordRejected as exc:
                raise RecordRejected(exc.message, field=f"{self.table.name}.{name}") from None
        if self.has_extra:
            unknown = record.keys() - self._known
            append(dumps_json({k: record[k] for k in sorted(unknown)}) if unknown else None)
        return tuple(values)


def require_object(value: Any, what: str) -> Mapping[str, Any]:
    """`value` as a JSON object, or a rejection naming `what`."""
    if not isinstance(value, Mapping):
        raise RecordRejected(f"expected an object, got {type(value).__name__}", field=what)
    return value


def require_list(record: Mapping[str, Any], name: str) -> list[Any]:
    """The list at `record[name]`; absent or null is an empty list."""
    value = record.get(name)
    if value is None:
        return []
    if not isinstance(value, list):
        raise RecordRejected(f"expected a list, got {type(value).__name__}", field=name)
    return value


@dataclass(frozen=True)
class Reject:
    """A record that failed validation, kept raw with its reason."""

    stream: str
    record_key: str | None
    reason: str
    raw: str
    rejected_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def reject_id(self) -> str:
        """Stable id: the same bad record re-read is one reject, not two."""
        digest = hashlib.sha256(f"{self.stream}\n{self.raw}".encode()).hexdigest()
        return digest[:32]


@dataclass
class NormalizedWindow:
    """The rows of one window, per table, ready to load in one transaction.

    `parents` holds the keys of every parent loaded, so their child rows can be replaced as
    a set even when a parent's lists are now empty.
    """

    rows: dict[str, list[Row]] = field(default_factory=dict)
    parents: list[Row] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)

    def row_count(self) -> int:
        """Rows across all tables."""
        return sum(len(r) for r in self.rows.values())


def reject_for(stream: str, record: Any, exc: RecordRejected, key: str | None) -> Reject:
    """A Reject for `record`, its raw JSON kept exactly."""
    try:
        raw = dumps_json(record)
    except RecordRejected:
        raw = repr(record)
    return Reject(stream=stream, record_key=key, reason=exc.reason, raw=raw)
