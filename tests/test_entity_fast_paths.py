"""The generic normalizer's whole-column paths give what the value-by-value paths give."""

from __future__ import annotations

import random
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest

from sitoo_sync.normalize import records
from sitoo_sync.normalize.columns import finish_column, finish_money
from sitoo_sync.normalize.pos_z_reports import ACCOUNT_ZONE
from sitoo_sync.normalize.pos_z_reports import normalize_window as pos_z_reports
from sitoo_sync.normalize.records import EXTRA, TableBuilder
from sitoo_sync.normalize.tables import Column, Kind, Table, integer, json_column, money

LEDGER = Table(
    name="ledger",
    columns=(
        integer("id", "Key.", nullable=False),
        money("gross", "Money."),
        money("net", "Money."),
        Column("vat", Kind.MONEY, False, "Money that must be there."),
        json_column(EXTRA, "Undeclared fields."),
    ),
    key=("id",),
)


def _lists(rng: random.Random) -> Any:
    """A z-report's list as the API may send it: absent, null, empty, or some objects."""
    shape = rng.choice(["absent", "null", "empty", "some"])
    if shape == "some":
        return [{"name": f"g{i}", "moneysales": f"{i}.50"} for i in range(rng.randint(1, 4))]
    return {"absent": ..., "null": None, "empty": []}[shape]


def _window(rng: random.Random, size: int) -> list[dict[str, Any]]:
    """POS z-reports whose every list and nested list takes one of `_lists`' shapes."""
    records = []
    for n in range(size):
        record: dict[str, Any] = {"registerid": "{r}", "zreportid": n, "dateadded": 1}
        for spec in pos_z_reports.lists:
            items = _lists(rng)
            if items is not ...:
                record[spec.field] = items
        for payment in record.get("paymentssales") or []:
            payment["subpayments"] = [
                {"name": f"s{i}", "moneypayment": "1.00"} for i in range(rng.randint(0, 2))
            ]
        records.append(record)
    return records


def test_whole_lists_are_the_walked_lists_in_the_same_order() -> None:
    """Taking every list whole gives each child table the objects, owners, sections and
    positions the object-by-object walk gives, in its order, across absent, null, empty
    and filled lists of several sections of one table."""
    rng = random.Random(7)
    for size in (0, 1, 5, 40):
        parents: list[Any] = _window(rng, size)
        whole = pos_z_reports._whole_lists(parents)
        assert whole is not None
        walked = pos_z_reports._walked_lists(parents, {})
        for table in {spec.table.name for spec in pos_z_reports.lists}:
            got, want = whole[table], walked.get(table)
            if want is None:  # no parents: the walk made no table
                assert got.objs == []
                continue
            assert got.objs == want.objs
            assert (got.owners, got.sections, got.positions) == (
                want.owners,
                want.sections,
                want.positions,
            )
            assert got.within == want.within


def test_a_list_that_holds_no_objects_rejects_its_record_alone() -> None:
    """A list holding a non-object, or a value that is not a list, rejects the record that
    sent it with the list named; the other records load all their child rows."""
    rng = random.Random(3)
    records = _window(rng, 6)
    for record in records:
        record["vatgroupssales"] = [{"vatvalue": 25, "moneysales": "1.00"}]
    records[2]["vatgroupssales"] = [{"vatvalue": 25}, "not an object"]
    records[4]["productgroupsrefund"] = {"an": "object, not a list"}
    out = pos_z_reports(records, {ACCOUNT_ZONE: "UTC"})
    reasons = {r.record_key: r.reason for r in out.rejects}
    assert reasons == {
        "{r}/2": "vatgroupssales[1]: expected an object, got str",
        "{r}/4": "productgroupsrefund: expected a list, got dict",
    }
    vat = out.tables["pos_z_report_vat_groups"]
    assert sorted(set(vat.column("zreportid").to_pylist())) == [0, 1, 3, 5]


def test_money_columns_finished_together_are_each_finished_alone() -> None:
    """A table's money columns checked and cast as one array give each column the values
    and missing-value reasons `finish_column` gives it alone."""
    raws = [
        pa.array(["1.50", None, "-2.00"]),
        pa.array(["0.00", "12345678.99", None]),
        pa.array([None, "3.10", "4.00"]),
    ]
    columns = [money("a"), money("b"), Column("c", Kind.MONEY, False, "")]
    together = finish_money(columns, raws)
    for column, raw, (array, errors) in zip(columns, raws, together, strict=True):
        alone, alone_errors = finish_column(column, raw, raw.__getitem__)
        assert array.to_pylist() == alone.to_pylist()
        assert errors == alone_errors
    assert together[2][1] == {0: "missing required field"}


def test_a_bad_money_value_rejects_its_record_and_names_its_column() -> None:
    """Among several money columns, a value not in the contract's form rejects its own
    record with the column named; every other record's money loads exactly."""
    builder = TableBuilder(LEDGER, prefix=())
    objs = [
        {"id": 1, "gross": "10.00", "net": "8.00", "vat": "2.00"},
        {"id": 2, "gross": "10.00", "net": "8.0.0", "vat": "2.00"},
        {"id": 3, "gross": "5.00", "net": "4.00"},
    ]
    errors: dict[int, str] = {}
    table = builder.build(objs, [], errors)
    assert errors == {
        1: "ledger.net: not an amount of money: '8.0.0'",
        2: "ledger.vat: missing required field",
    }
    assert table.column("gross").to_pylist() == [
        Decimal("10.00"),
        Decimal("10.00"),
        Decimal("5.00"),
    ]
    assert table.column("net").to_pylist()[0] == Decimal("8.00")


@pytest.mark.parametrize("columns", [0, 1, 3])
def test_a_clean_table_is_built_whole_whatever_its_money_columns(
    columns: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A table of clean values, with no, one or several money columns, is read in one Arrow
    pass: the value-by-value converters are never called."""
    table = Table(
        name="t",
        columns=(
            integer("id", "Key.", nullable=False),
            *(money(f"m{i}", "Money.") for i in range(columns)),
            json_column(EXTRA, "Undeclared fields."),
        ),
        key=("id",),
    )
    objs = [{"id": n, **{f"m{i}": f"{n}.{i}0" for i in range(columns)}} for n in range(5)]

    def not_called(*_args: Any) -> Any:
        raise AssertionError("the value-by-value path was taken")

    monkeypatch.setattr(records, "convert_column", not_called)
    errors: dict[int, str] = {}
    built = TableBuilder(table, prefix=()).build(objs, [], errors)
    assert errors == {}
    assert built.column("id").to_pylist() == list(range(5))
