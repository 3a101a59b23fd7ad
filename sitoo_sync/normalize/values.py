"""Pure converters from JSON values to typed Python values, one per column kind.

Each takes the raw value and returns the typed value or raises RecordRejected. `None`
passes through; whether a column may be NULL is the table's business, not the converter's.
Money never becomes a float: its text (or the exact Decimal the client parsed) becomes a
Decimal, refused only when DECIMAL(18,2) cannot hold it exactly.

A JSON number may carry any exponent (`1e999999999` parses as an exact Decimal): the
converters compare magnitudes without the decimal context (`copy_abs`, `adjusted`), whose
arithmetic would raise decimal.Overflow, or build a billion-digit integer, on such a value.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, tzinfo
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any, TypeGuard
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

from sitoo_sync.errors import RecordRejected
from sitoo_sync.normalize.tables import Kind

MONEY_PATTERN = re.compile(r"[-+]?[0-9]{1,16}\.[0-9]{2}")  # the contract's form: the fast path
MONEY_TEXT = re.compile(r"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")  # plain decimal notation
MONEY_LIMIT = Decimal("1E16")  # DECIMAL(18,2): 16 digits before the point
CENT = Decimal("0.01")
DECIMAL_LIMIT = Decimal("1E15")  # DECIMAL(18,3): 15 digits before the point
_EPOCH_MAX = 253402300799  # 9999-12-31T23:59:59Z
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1  # BIGINT
#: The vendor's spelling of "no store" (its store z-report aggregation's): every table uses it.
NO_STORE = "NO_STORE"

Converter = Callable[[Any], Any]


def to_money(value: Any) -> Decimal | None:
    """Money as a Decimal with two places: any exact decimal that DECIMAL(18,2) holds.

    The contract's form is a string with two decimals ("-10000.00"), but "11059.6", "12",
    "12.500" and a JSON number (parsed as an exact Decimal, never a float) are the same
    amounts and load as such. Rejected: what is not a number, has a non-zero third decimal
    (rounding would change the amount) or is out of DECIMAL(18,2)'s range.
    """
    if value is None:
        return None
    text = type(value) is str and MONEY_TEXT.fullmatch(value)
    exact = type(value) is int or (isinstance(value, Decimal) and value.is_finite())
    if not (text or exact):
        raise RecordRejected(f"not an amount of money: {value!r}")
    number = Decimal(value)
    if number.copy_abs() >= MONEY_LIMIT:  # abs() would overflow on 1E+999999999
        raise RecordRejected(f"out of range for DECIMAL(18,2): {value!r}")
    if number != number.quantize(CENT):
        raise RecordRejected(f"more than 2 decimal places: {value!r}")
    return number.quantize(CENT)


def to_decimal(value: Any) -> Decimal | None:
    """A rate or quantity (JSON number or decimal string) as Decimal, at most 3 places."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise RecordRejected(f"not a decimal: {value!r}")
    try:
        number = Decimal(value) if isinstance(value, str | int) else value
    except InvalidOperation:
        raise RecordRejected(f"not a decimal: {value!r}") from None
    if not isinstance(number, Decimal) or not number.is_finite():
        raise RecordRejected(f"not a decimal: {value!r}")
    if number.copy_abs() >= DECIMAL_LIMIT:  # abs() would overflow on 1E+999999999
        raise RecordRejected(f"out of range for DECIMAL(18,3): {value!r}")
    if number != number.quantize(Decimal("0.001")):
        raise RecordRejected(f"more than 3 decimal places: {value!r}")
    return number


def to_int(value: Any) -> int | None:
    """A JSON integer (2 or 2.0) that BIGINT holds; a bool or a fraction is rejected."""
    if value is None:
        return None
    whole = isinstance(value, Decimal) and value.is_finite() and value == value.to_integral_value()
    digits = isinstance(value, str) and value.lstrip("-").isdigit()
    if not (type(value) is int or whole or digits):
        raise RecordRejected(f"not an integer: {value!r}")
    if whole and not value.is_zero() and value.adjusted() > 18:
        # int() of 1E+999999999 would build its billion digits first (minutes of CPU)
        raise RecordRejected(f"out of range for BIGINT: {value!r}")
    try:
        number = int(value)
    except ValueError:  # str.isdigit() is true of "²", which int() refuses
        raise RecordRejected(f"not an integer: {value!r}") from None
    if not INT64_MIN <= number <= INT64_MAX:
        raise RecordRejected(f"out of range for BIGINT: {value!r}")
    return number


def to_int_or_none(value: Any) -> int | None:
    """An id as `to_int` reads it (an int, a digit string, an integral number), or None when
    it rejects it: for a cursor or a listing that skips what the normalizer will reject."""
    try:
        return to_int(value)
    except RecordRejected:
        return None


def to_text(value: Any) -> str | None:
    """A string; a number is accepted and kept as its text (tolerant reader)."""
    if value is None or type(value) is str:
        return value
    if isinstance(value, int | Decimal) and not isinstance(value, bool):
        return str(value)
    raise RecordRejected(f"not a string: {value!r}")


def to_bool(value: Any) -> bool | None:
    """A JSON boolean."""
    if value is None or type(value) is bool:
        return value
    raise RecordRejected(f"not a boolean: {value!r}")


def is_unix_time(value: Any) -> TypeGuard[int]:
    """Whether `value` is Unix seconds a timestamp column accepts (a record whose time is not
    is rejected, so no cursor may move by it either)."""
    return type(value) is int and 0 <= value <= _EPOCH_MAX


def to_timestamp(value: Any) -> datetime | None:
    """Unix seconds as an aware UTC datetime."""
    if value is None:
        return None
    if is_unix_time(value):
        return datetime.fromtimestamp(value, UTC)
    raise RecordRejected(f"not a Unix timestamp: {value!r}")


def to_date(value: Any) -> date | None:
    """An ISO date string YYYY-MM-DD."""
    if value is None:
        return None
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise RecordRejected(f"not a date (YYYY-MM-DD): {value!r}")


def to_json(value: Any) -> str | None:
    """Any JSON value as compact JSON text, Decimals written as numbers exactly."""
    if value is None:
        return None
    return dumps_json(value)


@lru_cache(maxsize=512)
def _zone(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        # OSError: a folder of the tz database ("Europe"), a name too long for a file name.
        return None


def zone_named(name: Any) -> ZoneInfo | None:
    """The IANA zone `name` names, or None for anything zoneinfo cannot open (not text,
    empty, unknown, a folder, a path). Answers are remembered: a bad name on every entry of
    a page costs one file-system look-up, not one per entry."""
    if not isinstance(name, str) or not name:
        return None
    return _zone(name)


def day_in(created: int, zone: tzinfo) -> date | None:
    """The calendar day of `created` (Unix seconds a timestamp column accepts) in `zone`;
    None where that day is past 9999-12-31, which neither Python nor any target's DATE can
    hold (the column's last second, 9999-12-31T23:59:59Z, is already 10000 east of UTC)."""
    try:
        return datetime.fromtimestamp(created, zone).date()
    except OverflowError:
        return None


def local_day(created: Any, zone_name: Any) -> date | None:
    """The calendar day of `created` (Unix seconds) in the IANA zone `zone_name`, UTC if the
    zone is missing or unknown; None when `created` is not a Unix timestamp or its day
    there is past 9999-12-31 (`day_in`)."""
    if not is_unix_time(created):
        return None
    return day_in(created, zone_named(zone_name) or UTC)


CONVERTERS: Mapping[Kind, Converter] = {
    Kind.TEXT: to_text,
    Kind.INT: to_int,
    Kind.BOOL: to_bool,
    Kind.MONEY: to_money,
    Kind.DECIMAL: to_decimal,
    Kind.TIMESTAMP: to_timestamp,
    Kind.DATE: to_date,
    Kind.JSON: to_json,
}


#: Compact JSON in C, Decimals written as exact numbers (six times the standard library's
#: encoder on journal entries' `data`, which every entry stores as text).
_ENCODER = msgspec.json.Encoder(decimal_format="number")

#: PostgreSQL's jsonb keeps a number as `numeric`, which holds at most 131072 digits before
#: the point and 16383 after: one JSON number past them (1e200000) fails the whole load
#: there, on every tick. Every target rejects the record instead, so all hold the same rows.
_JSONB_MAX_ADJUSTED, _JSONB_MIN_EXPONENT = 131071, -16383


def _past_jsonb(value: Any) -> Decimal | None:
    """The first number in `value` (parsed JSON) that PostgreSQL's jsonb cannot hold."""
    if isinstance(value, Decimal):
        if not value.is_finite() or value.is_zero():
            return None
        exponent = int(value.as_tuple().exponent)  # (an int for a finite one)
        past = value.adjusted() > _JSONB_MAX_ADJUSTED or exponent < _JSONB_MIN_EXPONENT
        return value if past else None
    children = value.values() if isinstance(value, Mapping) else value
    if isinstance(value, Mapping | list | tuple):
        for child in children:
            if (found := _past_jsonb(child)) is not None:
                return found
    return None


def dumps_json(value: Any) -> str:
    """Compact UTF-8 JSON; a Decimal (how numbers with a fraction are parsed) stays an exact
    number. Values come from parsed JSON, so none is a NaN or an infinity; a value of a type
    JSON has no form for, or a number no PostgreSQL jsonb holds, is rejected."""
    try:
        text = _ENCODER.encode(value).decode()
    except (TypeError, ValueError, msgspec.EncodeError) as exc:
        raise RecordRejected(f"not representable as JSON: {exc}") from exc
    # Only a Decimal is written with an exponent, always signed (str(Decimal)): "E+"/"E-"
    # in the text is the cheap sign (two memchr scans) that one may be past jsonb.
    if ("E+" in text or "E-" in text) and (number := _past_jsonb(value)) is not None:
        shown = str(number)
        shown = shown if len(shown) <= 40 else f"{shown[:20]}...{shown[-12:]}"
        raise RecordRejected(f"a JSON number past what PostgreSQL's jsonb holds: {shown}")
    return text


#: A reject's copy of a record that `dumps_json` refuses: every Decimal written as its text.
_DECIMALS_AS_TEXT = msgspec.json.Encoder(decimal_format="string")


def raw_json(value: Any) -> str:
    """`value` as JSON text for a reject's raw copy, which every target stores as JSON: as
    `dumps_json` writes it; else with its Decimals as JSON strings (a number no jsonb holds
    must not fail the reject's own load); else, of a type JSON has no form for, the JSON
    string of its repr."""
    try:
        return dumps_json(value)
    except RecordRejected:
        pass
    try:
        return _DECIMALS_AS_TEXT.encode(value).decode()
    except (TypeError, ValueError, msgspec.EncodeError):
        return _ENCODER.encode(repr(value)).decode()
