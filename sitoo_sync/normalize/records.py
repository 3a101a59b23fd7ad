"""Declared-table building from JSON objects, and what a normalized window holds.

A `TableBuilder` reads each declared column from a list of JSON objects by name, converts
the column as a whole (see `columns.py`), and gathers fields nobody declared into the
table's `extra` JSON column, so a field the API adds tomorrow is kept today and becomes a
column with a one-line declaration. Errors are reported per object index, so the caller
can reject exactly the records they came from.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from sitoo_sync.errors import RecordRejected
from sitoo_sync.normalize.columns import (
    RAW_TYPES,
    Errors,
    ValueAt,
    convert_column,
    finish_column,
    finish_money,
)
from sitoo_sync.normalize.tables import KEY_TEXT_LENGTH, Kind, Table
from sitoo_sync.normalize.values import dumps_json, raw_json

EXTRA = "extra"


def _extra_json(obj: Mapping[str, Any], known: frozenset[str]) -> str:
    return dumps_json({k: obj[k] for k in sorted(obj.keys() - known)})


def _getter(objs: Sequence[Mapping[str, Any]], name: str) -> ValueAt:
    return lambda i: objs[i].get(name)


class TableBuilder:
    """Builds `table` from JSON objects, after `prefix` columns the caller supplies.

    Fast path: Arrow reads every declared column of every object in one pass (a struct
    array), then validates and casts column by column. If that pass meets a value of an
    unexpected JSON type, each column is converted on its own instead, where the per-value
    converters find and word the bad values.
    """

    def __init__(
        self, table: Table, *, prefix: tuple[str, ...], ignore: Iterable[str] = ()
    ) -> None:
        if table.column_names[: len(prefix)] != prefix:
            raise ValueError(f"{table.name}: columns must start with {prefix}")
        self.table = table
        body = table.columns[len(prefix) :]
        self.has_extra = bool(body) and body[-1].name == EXTRA
        self._fields = body[:-1] if self.has_extra else body
        self._known = frozenset(c.name for c in self._fields) | frozenset(ignore)
        #: Money columns are finished together (`finish_money`) when there are several.
        money = [c for c in self._fields if c.kind is Kind.MONEY]
        self._money = money if len(money) > 1 else []
        #: Text the targets store as VARCHAR(KEY_TEXT_LENGTH), as keys are (a replace
        #: group's, warehouse/sql_types.py): longer is a reject, not a load that fails.
        keyed = {*table.key, *table.parent_key, *table.replace_group}
        self._bounded = frozenset(
            c.name for c in self._fields if c.kind is Kind.TEXT and c.name in keyed
        )
        self._raw = pa.struct(
            [pa.field(c.name, RAW_TYPES[c.kind]) for c in self._fields if c.kind in RAW_TYPES]
        )

    def _columns(self, objs: Sequence[Mapping[str, Any]]) -> list[tuple[pa.Array, Errors]]:
        try:
            raw = pa.array(objs, type=self._raw)
            money: dict[str, tuple[pa.Array, Errors]] = {}
            if self._money:
                finished = finish_money(self._money, [raw.field(c.name) for c in self._money])
                money = dict(zip((c.name for c in self._money), finished, strict=True))
            out = []
            for col in self._fields:
                name = col.name
                if name in money:
                    out.append(money[name])
                elif col.kind not in RAW_TYPES:
                    out.append(convert_column(col, [o.get(name) for o in objs]))
                else:
                    out.append(finish_column(col, raw.field(name), _getter(objs, name)))
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            return [convert_column(c, [o.get(c.name) for o in objs]) for c in self._fields]
        return out

    def build(
        self, objs: Sequence[Mapping[str, Any]], prefix: Sequence[pa.Array], errors: Errors
    ) -> pa.Table:
        """The typed table; a failing value records `errors[i]` for its object index `i`."""
        arrays = list(prefix)
        for col, (array, column_errors) in zip(self._fields, self._columns(objs), strict=True):
            hidden = f"not a valid {col.kind} value (personal data, not shown)"
            for i, message in column_errors.items():
                # A converter's message quotes the value: not for a personal column's log line.
                shown = hidden if col.personal else message
                errors.setdefault(i, f"{self.table.name}.{col.name}: {shown}")
            if col.name in self._bounded:
                for i, length in _too_long(array).items():
                    reason = f"longer than {KEY_TEXT_LENGTH} characters ({length})"
                    errors.setdefault(i, f"{self.table.name}.{col.name}: {reason}")
            arrays.append(array)
        if self.has_extra:
            known = self._known
            extras: list[str | None] = []
            for i, obj in enumerate(objs):
                if known.issuperset(obj):
                    extras.append(None)
                    continue
                try:
                    extras.append(_extra_json(obj, known))
                except RecordRejected as exc:
                    errors.setdefault(i, f"{self.table.name}.{EXTRA}: {exc.message}")
                    extras.append(None)
            arrays.append(pa.array(extras, pa.string()))
        return pa.Table.from_arrays(arrays, names=list(self.table.column_names))


def _too_long(texts: pa.Array) -> dict[int, int]:
    """The length of each text of `texts` longer than KEY_TEXT_LENGTH, by its index."""
    lengths = pc.utf8_length(texts)
    over = pc.indices_nonzero(pc.fill_null(pc.greater(lengths, KEY_TEXT_LENGTH), False))
    return {i: lengths[i].as_py() for i in over.to_pylist()}


def require_object(value: Any, what: str) -> Mapping[str, Any]:
    """`value` as a JSON object, or a rejection naming `what`."""
    if type(value) is dict:  # what parsed JSON gives: skips the slower ABC check
        return value
    if not isinstance(value, Mapping):
        raise RecordRejected(f"expected an object, got {type(value).__name__}", field=what)
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


def reject_for(stream: str, record: Any, reason: str, key: str | None) -> Reject:
    """A Reject for `record`, its raw JSON kept exactly (U+0000 as its JSON escape). Its key
    and reason are plain text: a U+0000 in them is U+FFFD, which every target can store
    (PostgreSQL's text cannot hold U+0000, and a reject must never fail its window)."""
    raw = raw_json(record)
    if key is not None:
        key = key.replace("\x00", "\ufffd")
    return Reject(stream=stream, record_key=key, reason=reason.replace("\x00", "\ufffd"), raw=raw)


@dataclass
class NormalizedWindow:
    """The typed rows of one window per table, ready to load in one transaction.

    `parent_keys` holds the key of every parent in the window, so their child rows can be
    replaced as a set even when a parent's lists are now empty.
    """

    tables: dict[str, pa.Table]
    parent_keys: pa.Table
    rejects: list[Reject] = field(default_factory=list)
    notes: Counter[str] = field(default_factory=Counter)  # e.g. unknown entry types seen
    #: The parent keys as a set, when the normalizer had them at hand (else read from
    #: `parent_keys` on demand).
    key_set: set[tuple[Any, ...]] | None = None
    #: The bytes the window is charged, when its tables are slices of buffers it shares
    #: with other windows (normalized together); else read from its buffers.
    size: int | None = None

    def row_count(self) -> int:
        """Rows across all tables."""
        return sum(t.num_rows for t in self.tables.values())

    def nbytes(self) -> int:
        """What the window's typed rows hold in memory: the whole buffers they use (a
        filtered table may share a larger one). Only the buffers' sizes are read; counting
        the bytes the rows use (`Table.nbytes`) showed as 7 % of the GIL-holding samples
        of a concurrency-32 backfill."""
        if self.size is not None:
            return self.size
        tables = (self.parent_keys, *self.tables.values())
        size: int = sum(t.get_total_buffer_size() for t in tables)
        return size

    def keys(self) -> set[tuple[Any, ...]]:
        """The parent keys as a set of tuples."""
        if self.key_set is not None:
            return self.key_set
        columns = [c.to_pylist() for c in self.parent_keys.columns]
        return set(zip(*columns, strict=True))

    @classmethod
    def concat(cls, windows: Sequence[NormalizedWindow]) -> NormalizedWindow:
        """Several windows with disjoint parent keys as one."""
        if len(windows) == 1:
            return windows[0]
        first = windows[0]
        return cls(
            tables={
                name: pa.concat_tables([w.tables[name] for w in windows]) for name in first.tables
            },
            parent_keys=pa.concat_tables([w.parent_keys for w in windows]),
            rejects=[r for w in windows for r in w.rejects],
            notes=sum((w.notes for w in windows), Counter()),
        )

    def rows(self, table: str) -> list[tuple[Any, ...]]:
        """The rows of `table` as Python tuples (Decimal, aware datetime ...)."""
        data = self.tables[table]
        return list(zip(*(c.to_pylist() for c in data.columns), strict=True))
