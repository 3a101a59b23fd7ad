"""Columnar conversion: the raw JSON values of one column → one typed Arrow array.

Semantics are defined once, by the per-value converters in `values.py`. This module is
the fast path that agrees with them: when every value of a column already has the JSON
type the kind expects (all strings for money, all ints for timestamps ...), the whole
column is validated and cast inside Arrow; otherwise each value goes through its
converter, which also words the rejection reason. Money never passes through a float:
a money string is checked against the contract's pattern and cast straight to decimal128.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from datetime import date
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from sitoo_sync.errors import RecordRejected
from sitoo_sync.normalize.tables import Column, Kind, Table
from sitoo_sync.normalize.values import _EPOCH_MAX, CONVERTERS, MONEY_PATTERN, dumps_json

ARROW_TYPES: Mapping[Kind, Any] = {
    Kind.TEXT: pa.string(),
    Kind.INT: pa.int64(),
    Kind.BOOL: pa.bool_(),
    Kind.MONEY: pa.decimal128(18, 2),
    Kind.DECIMAL: pa.decimal128(18, 3),
    Kind.TIMESTAMP: pa.timestamp("us", tz="UTC"),
    Kind.DATE: pa.date32(),
    Kind.JSON: pa.string(),
}

_NONE = type(None)
#: Kinds whose column of Python ints reads as int64 first (then cast, range-checked).
_INTEGRAL = frozenset({Kind.INT, Kind.TIMESTAMP, Kind.DECIMAL})
#: The JSON types a kind's per-column fast path handles; others take the per-value path.
_FAST_TYPES: Mapping[Kind, frozenset[type]] = {
    Kind.TEXT: frozenset({str}),
    Kind.INT: frozenset({int}),
    Kind.MONEY: frozenset({str}),
    Kind.TIMESTAMP: frozenset({int}),
    Kind.DECIMAL: frozenset({int, Decimal}),
    Kind.BOOL: frozenset({bool}),
    Kind.DATE: frozenset({date}),  # `datetime` is another type: to_date refuses it
}
#: How Arrow first reads a kind's raw JSON values when all of a table's columns are read
#: in one pass. Integers go through decimal128(20, 0), which refuses a fraction, because a
#: plain int64 conversion would truncate 2.5 to 2. A decimal column is read on its own
#: (`convert_column`): the vendor sends quantities as strings ("1.000") and rates as
#: numbers (25), so no one raw type serves every decimal column. So is a timestamp column:
#: decimal128(20, 0) would take a JSON 1672386301.0 that `to_timestamp` (and every cursor,
#: `is_unix_time`) refuses, so the same record would load or be rejected by its neighbours.
RAW_TYPES: Mapping[Kind, Any] = {
    Kind.TEXT: pa.string(),
    Kind.INT: pa.decimal128(20, 0),
    Kind.MONEY: pa.string(),
    Kind.BOOL: pa.bool_(),
}
#: A decimal column's raw type when all its values are JSON numbers, or all strings.
_DECIMAL_NUMBERS = pa.decimal128(18, 3)
_MONEY_REGEX = "^" + MONEY_PATTERN.pattern + "$"
#: The decimal strings whose value Arrow's cast gives exactly as `to_decimal` would; any
#: other string (an exponent, a fourth decimal, a sign +) takes the per-value path.
_DECIMAL_TEXT_REGEX = r"^-?[0-9]{1,15}(\.[0-9]{1,3})?$"
#: The same two forms, for a column short enough to check in Python: Arrow compiles its
#: regex on every call (~25 us), Python's compiled one costs ~0.25 us a value.
_DECIMAL_TEXT = re.compile(_DECIMAL_TEXT_REGEX[1:-1])
_SHORT = 64
# Typed nulls: passing a bare None makes pyarrow guess its type, which costs a failed
# import (dateutil) on every call.
_NULL_INT = pa.scalar(None, pa.int64())

Errors = dict[int, str]
ValueAt = Callable[[int], Any]


def _flag(errors: Errors, bad: pa.Array, value_at: ValueAt, message: str) -> None:
    for i in pc.indices_nonzero(pc.fill_null(bad, False)).to_pylist():
        errors.setdefault(i, f"{message}: {value_at(i)!r}")


def _all_match(
    pattern: re.Pattern[str], regex: str, raw: pa.Array, texts: Sequence[Any] | None
) -> bool:
    """Every non-null string of `raw` is wholly `pattern` (`regex` is its anchored form for
    Arrow); `texts`, when given, are the same values as Python strings (and None)."""
    if texts is not None and len(texts) <= _SHORT:
        return all(t is None or pattern.fullmatch(t) for t in texts)
    return not pc.match_substring_regex(raw, regex).false_count


def _short_epochs(raw: pa.Array, texts: Sequence[Any] | None) -> bool:
    """`texts` is a short column of Python ints (read as int64), each a Unix timestamp."""
    if texts is None or len(texts) > _SHORT or raw.type != pa.int64():
        return False
    present = [t for t in texts if t is not None]
    return not present or (min(present) >= 0 and max(present) <= _EPOCH_MAX)


def finish_column(
    column: Column, raw: pa.Array, value_at: ValueAt, texts: Sequence[Any] | None = None
) -> tuple[pa.Array, Errors]:
    """Validate and cast a column Arrow has already read as `RAW_TYPES[kind]` (`texts`: the
    values as Python objects, when the caller has them).

    Raises ArrowInvalid when a value is out of range for the cast; callers then fall back
    to the per-value converters, which word the reason.
    """
    errors: Errors = {}
    kind = column.kind
    if kind is Kind.DECIMAL and raw.type == pa.string():
        if not _all_match(_DECIMAL_TEXT, _DECIMAL_TEXT_REGEX, raw, texts):
            raise pa.ArrowInvalid("decimal text not in plain form")
        array = pc.cast(raw, ARROW_TYPES[kind])
    elif kind is Kind.DECIMAL and raw.type == pa.int64():
        # Via the 19 digits any int64 has: a value DECIMAL(18,3) cannot hold raises.
        array = pc.cast(pc.cast(raw, pa.decimal128(19, 0)), ARROW_TYPES[kind])
    elif kind is Kind.MONEY:
        if not _all_match(MONEY_PATTERN, _MONEY_REGEX, raw, texts):
            # not the contract's form: `to_money` decides, value by value
            raise pa.ArrowInvalid("money not in the contract's form")
        array = pc.cast(raw, ARROW_TYPES[kind])
    elif kind is Kind.TIMESTAMP and _short_epochs(raw, texts):
        # Python ints, all Unix seconds: microseconds in one pass (four Arrow calls cost
        # ~30 us however short the column).
        assert texts is not None
        array = pa.array([None if t is None else t * 1_000_000 for t in texts], ARROW_TYPES[kind])
    elif kind is Kind.TIMESTAMP:
        ints = pc.cast(raw, pa.int64())
        bounds = pc.min_max(ints)
        low, high = bounds["min"].as_py(), bounds["max"].as_py()
        if low is not None and (low < 0 or high > _EPOCH_MAX):
            bad = pc.or_(pc.less(ints, 0), pc.greater(ints, _EPOCH_MAX))
            _flag(errors, bad, value_at, "not a Unix timestamp")
            ints = pc.if_else(bad, _NULL_INT, ints)
        array = pc.cast(pc.cast(ints, pa.timestamp("s", tz="UTC")), ARROW_TYPES[kind])
    elif raw.type != ARROW_TYPES[kind]:
        array = pc.cast(raw, ARROW_TYPES[kind])
    else:
        array = raw
    if not column.nullable and array.null_count:
        for i in pc.indices_nonzero(pc.is_null(array)).to_pylist():
            errors.setdefault(i, "missing required field")
    return array, errors


def finish_money(
    columns: Sequence[Column], raws: Sequence[pa.Array]
) -> list[tuple[pa.Array, Errors]]:
    """`finish_column` for a table's money columns, already read as strings: checked
    against the contract's form and cast as one array, then sliced back per column.

    A z-report has some thirty money columns of a few hundred values each, and the two
    Arrow calls a column costs (~65 us, the regex compiled each time) were most of
    building its table. Raises ArrowInvalid, as `finish_column` does, when a value is not
    in the contract's form; the caller then converts value by value.
    """
    joined = pa.concat_arrays(list(raws))
    if not _all_match(MONEY_PATTERN, _MONEY_REGEX, joined, None):
        raise pa.ArrowInvalid("money not in the contract's form")
    cast = pc.cast(joined, ARROW_TYPES[Kind.MONEY])
    out: list[tuple[pa.Array, Errors]] = []
    start = 0
    for column, raw in zip(columns, raws, strict=True):
        array = cast.slice(start, len(raw))
        start += len(raw)
        errors: Errors = {}
        if not column.nullable and array.null_count:
            for i in pc.indices_nonzero(pc.is_null(array)).to_pylist():
                errors.setdefault(i, "missing required field")
        out.append((array, errors))
    return out


def _slow(column: Column, values: Sequence[Any]) -> tuple[pa.Array, Errors]:
    convert = CONVERTERS[column.kind]
    errors: Errors = {}
    out: list[Any] = []
    for i, value in enumerate(values):
        if value is None and not column.nullable:
            errors.setdefault(i, "missing required field")
            out.append(None)
            continue
        try:
            out.append(convert(value))
        except RecordRejected as exc:
            errors.setdefault(i, exc.message)
            out.append(None)
    return pa.array(out, ARROW_TYPES[column.kind]), errors


def _json_column(column: Column, values: Sequence[Any]) -> tuple[pa.Array, Errors]:
    """A JSON column in one pass of the C encoder; the per-value path only when a value
    is refused (it then words the reason) or a required one is missing."""
    try:
        texts = [None if v is None else dumps_json(v) for v in values]
    except RecordRejected:
        return _slow(column, values)
    array = pa.array(texts, pa.string())
    if not column.nullable and array.null_count:
        return _slow(column, values)
    return array, {}


def convert_column(column: Column, values: Sequence[Any]) -> tuple[pa.Array, Errors]:
    """The typed array for `values`, and the reason per row index that failed."""
    if column.kind is Kind.JSON:
        return _json_column(column, values)
    fast = _FAST_TYPES.get(column.kind)
    types = set(map(type, values)) - {_NONE}
    raw_type = _DECIMAL_NUMBERS if column.kind is Kind.DECIMAL else RAW_TYPES.get(column.kind)
    if column.kind is Kind.DECIMAL and types == {str}:
        fast, raw_type = frozenset(types), pa.string()
    elif types == {int} and column.kind in _INTEGRAL:
        # Only Python ints: int64 reads them 6x faster than decimal128 (no fraction to
        # refuse); one past int64 raises OverflowError and the converters decide.
        raw_type = pa.int64()
    elif column.kind is Kind.DATE:
        raw_type = pa.date32()  # only `date` objects (a normalizer's), never JSON text
    if fast is not None and types <= fast:
        try:
            raw = pa.array(values, raw_type)
            return finish_column(column, raw, values.__getitem__, values)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            pass  # out of range for the fast path: let the converters decide and say why
    return _slow(column, values)


def empty_table(table: Table) -> pa.Table:
    """A table with no rows and the declared schema."""
    return pa.table(
        {c.name: pa.array([], ARROW_TYPES[c.kind]) for c in table.columns},
    )


def rows_to_arrow(table: Table, rows: Sequence[Sequence[Any]]) -> pa.Table:
    """Already-typed Python rows as an Arrow table of `table` (for small, internal batches)."""
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in table.columns]
    return pa.table(
        {
            c.name: pa.array(list(values), ARROW_TYPES[c.kind])
            for c, values in zip(table.columns, columns, strict=True)
        }
    )
