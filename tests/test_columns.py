"""The columnar fast paths agree with the per-value converters that define the meaning."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from sitoo_sync.normalize.columns import convert_column
from sitoo_sync.normalize.tables import day, decimal, integer, json_column, money, timestamp
from sitoo_sync.normalize.values import dumps_json, to_decimal

QUANTITY = decimal("quantity", "A quantity.")


@pytest.mark.parametrize(
    "values",
    [
        ["1.000", "-0.5", "12", None, "123456789012345.123"],  # the vendor's strings: fast
        [1, Decimal("2.5"), None],  # JSON numbers: fast
        ["1.5000", "1e3", " 2.5"],  # forms only the per-value path reads
        ["1.000", 25],  # strings and numbers mixed
    ],
)
def test_decimal_columns_load_exactly_what_to_decimal_reads(values: list[Any]) -> None:
    """Whichever path a decimal column takes, every value loads as `to_decimal` reads it."""
    array, errors = convert_column(QUANTITY, values)
    assert errors == {}
    assert array.to_pylist() == [to_decimal(v) for v in values]


def test_a_bad_decimal_string_is_named_and_the_rest_still_load() -> None:
    """A string that is no decimal, or has a fourth decimal that counts, is rejected with
    its reason; the other values of the column still load."""
    array, errors = convert_column(QUANTITY, ["1.000", "abc", "0.0001"])
    assert array.to_pylist() == [Decimal("1.000"), None, None]
    assert errors == {1: "not a decimal: 'abc'", 2: "more than 3 decimal places: '0.0001'"}


def test_a_json_column_is_compact_text_with_exact_numbers() -> None:
    """JSON columns hold compact text, Decimals written as the exact numbers they were."""
    column = json_column("data", "Some JSON.")
    values = [{"a": Decimal("1.10"), "b": [1, "x", None, True]}, None, "å"]
    array, errors = convert_column(column, values)
    assert errors == {}
    assert array.to_pylist() == ['{"a":1.10,"b":[1,"x",null,true]}', None, '"å"']
    assert array.to_pylist()[0] == dumps_json(values[0])


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda name: integer(name, ""), id="int"),
        pytest.param(lambda name: timestamp(name, ""), id="timestamp"),
    ],
)
def test_an_integer_past_bigint_is_a_reason_not_a_crash(make: Any) -> None:
    """A whole number past BIGINT (which int64 cannot hold) is refused with a reason, and
    the column's other values still load: a bad record never stops the run."""
    array, errors = convert_column(make("n"), [2**63, 1_700_000_000, None])
    assert list(errors) == [0]
    assert array.to_pylist()[0] is None
    assert array.to_pylist()[1] is not None


def test_a_column_of_python_ints_reads_exactly_what_the_converters_read() -> None:
    """The int64 fast path for a column of ints gives what `to_int`/`to_decimal` give."""
    values: list[Any] = [0, -(2**63), 2**63 - 1, None, 25]
    array, errors = convert_column(integer("n", ""), values)
    assert errors == {}
    assert array.to_pylist() == values
    rates, errors = convert_column(decimal("rate", ""), [25, 6, None])
    assert errors == {}
    assert rates.to_pylist() == [Decimal("25.000"), Decimal("6.000"), None]


def test_a_column_of_dates_a_normalizer_made_loads_as_they_are() -> None:
    """`date` objects (a business day a normalizer computed) load as they are; a datetime
    among them is refused with to_date's reason, as before."""
    from datetime import UTC, date, datetime

    array, errors = convert_column(day("d", ""), [date(2026, 7, 1), None])
    assert errors == {}
    assert array.to_pylist() == [date(2026, 7, 1), None]
    _, errors = convert_column(
        day("d", ""), [datetime(2026, 7, 1, 12, tzinfo=UTC), date(2026, 7, 1)]
    )
    assert list(errors) == [0]


@pytest.mark.parametrize(
    ("make", "values"),
    [
        (
            money,
            [
                "12.50",
                "+1.00",
                "-0.00",
                "1.00\n",
                "\uff11.00",
                "1e2",
                "12.5",
                None,
                "9" * 16 + ".99",
            ],
        ),
        (decimal, ["1.000", "-2.5", "1.0000", "+1", "1e2", " 1", None, "9" * 15 + ".999"]),
        (timestamp, [1_700_000_000, 0, -1, None, 253_402_300_800, 253_402_300_799]),
    ],
)
def test_a_short_column_reads_as_a_long_one_does(make: Any, values: list[Any]) -> None:
    """A short column (checked in Python) and a long one (checked by Arrow) give the same
    values and the same reasons, each form of value taken alone and all together."""
    column = make("x")
    for short in [[v] for v in values] + [values]:
        long = short * (70 // len(short) + 1)
        got, errors = convert_column(column, short)
        got_long, errors_long = convert_column(column, long)
        assert got.to_pylist() == got_long.to_pylist()[: len(short)]
        assert errors == {i: r for i, r in errors_long.items() if i < len(short)}
