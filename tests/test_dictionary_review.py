"""The data dictionary read against a real sync: what a BI engineer reads is what the
warehouse holds, and what the descriptions claim holds in the synced rows."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from sitoo_sync.dictionary import all_tables, dbt_sources, markdown, only_when, type_name
from sitoo_sync.normalize.records import EXTRA
from sitoo_sync.normalize.tables import Kind, Table
from sitoo_sync.simulator import SimConfig
from sitoo_sync.streams import STREAMS
from sitoo_sync.verify import Scope, run_verify
from sitoo_sync.views import VIEWS
from sitoo_sync.warehouse import open_warehouse
from tests.support import sync_simulated_world
from tests.targets import Target, target_for

NOW = datetime(2024, 5, 20, tzinfo=UTC)
TABLES = {t.name: t for t in all_tables()}

#: How each dictionary type is stored, per target (a key's text is VARCHAR(255) on SQL ones).
PHYSICAL = {
    "duckdb": {
        "text": "VARCHAR",
        "varchar(255)": "VARCHAR",
        "bigint": "BIGINT",
        "boolean": "BOOLEAN",
        "decimal(18,2)": "DECIMAL(18,2)",
        "decimal(18,3)": "DECIMAL(18,3)",
        "timestamp (UTC)": "TIMESTAMP WITH TIME ZONE",
        "date": "DATE",
        "json": "JSON",
    },
    "postgres": {
        "text": "text",
        "varchar(255)": "character varying(255)",
        "bigint": "bigint",
        "boolean": "boolean",
        "decimal(18,2)": "numeric(18,2)",
        "decimal(18,3)": "numeric(18,3)",
        "timestamp (UTC)": "timestamp with time zone",
        "date": "date",
        "json": "jsonb",
    },
}


def sync_everything(target: Target, tmp: Path) -> None:
    """Every stream, the opt-in ones too, synced once from a fresh simulated world into
    `target`, then `sitoo-sync verify` run on it: every table the tool can make is there."""
    config = SimConfig(seed=3, days=4, now=int(NOW.timestamp()))
    sync_simulated_world(config, target, tmp, store_days=4, streams=list(STREAMS))
    warehouse = open_warehouse(target.url, schema=target.schema)
    try:
        run_verify(warehouse, Scope(), write=True)
    finally:
        warehouse.close()


@pytest.fixture(
    scope="module",
    params=[
        pytest.param(t, marks=pytest.mark.xdist_group(f"dictreview-{t}"))
        for t in ("duckdb", "postgres")
    ],
)
def synced(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Target]:
    """DuckDB, then PostgreSQL (when CI has it), each holding a full sync and a verify run."""
    with target_for(str(request.param), tmp_path_factory.mktemp("w")) as target:
        sync_everything(target, tmp_path_factory.mktemp("sim"))
        yield target


def read(target: Target, sql: str) -> list[tuple[Any, ...]]:
    """What `sql` reads on `target`."""
    warehouse = open_warehouse(target.url, schema=target.schema)
    try:
        return warehouse.query(sql)
    finally:
        warehouse.close()


def catalog(
    target: Target,
) -> tuple[dict[str, str | None], dict[str, list[tuple[Any, ...]]], set[str]]:
    """The target's tables and views with their comments, each one's columns in order as
    (name, type, not null, comment), and which of them are views."""
    if target.name == "duckdb":
        where = "WHERE database_name = current_database() AND schema_name = current_schema()"
        relations = read(target, f"SELECT table_name, comment FROM duckdb_tables() {where}")
        views = read(
            target, f"SELECT view_name, comment FROM duckdb_views() {where} AND NOT internal"
        )
        columns = read(
            target,
            "SELECT table_name, column_name, data_type, NOT is_nullable, comment "
            f"FROM duckdb_columns() {where} ORDER BY table_name, column_index",
        )
    else:
        schema = f"n.nspname = '{target.schema}'"
        join = "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        relations = read(
            target,
            f"SELECT c.relname, obj_description(c.oid, 'pg_class') {join} "
            f"WHERE {schema} AND c.relkind = 'r'",
        )
        views = read(
            target,
            f"SELECT c.relname, obj_description(c.oid, 'pg_class') {join} "
            f"WHERE {schema} AND c.relkind = 'v'",
        )
        columns = read(
            target,
            "SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, "
            f"col_description(c.oid, a.attnum) {join} JOIN pg_attribute a ON a.attrelid = c.oid "
            f"WHERE {schema} AND c.relkind IN ('r', 'v') AND a.attnum > 0 "
            "AND NOT a.attisdropped ORDER BY c.relname, a.attnum",
        )
    comments = {str(name): comment for name, comment in [*relations, *views]}
    by_relation: dict[str, list[tuple[Any, ...]]] = {}
    for relation, *rest in columns:
        by_relation.setdefault(str(relation), []).append(tuple(rest))
    return comments, by_relation, {str(v) for v, _ in views}


def test_synced_warehouse_holds_what_the_dictionary_lists(synced: Target) -> None:
    """After a real sync and a verify run, the warehouse has exactly the tables and views the
    dictionary lists, each column in its order with the documented type, NOT NULL where the
    dictionary says so, and the description as its comment (load metadata, missing_since and
    the tool's own tables included)."""
    comments, columns, views = catalog(synced)
    assert set(comments) - views == set(TABLES)
    assert views == {v.name for v in VIEWS}
    physical = PHYSICAL[synced.name]
    for table in TABLES.values():
        assert comments[table.name] == table.description
        expected = [
            (c.name, physical[type_name(table, c)], not c.nullable, c.description)
            for c in table.columns
        ]
        assert columns[table.name] == expected, table.name
    for view in VIEWS:
        assert comments[view.name] == view.description
        found = [(name, comment) for name, _type, _not_null, comment in columns[view.name]]
        assert found == list(view.columns), view.name


def _tests_of(node: Any) -> Iterator[Any]:
    """Every test entry under a `data_tests` (or a legacy `tests`) list of a dbt node."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("tests", "data_tests"):
                yield from value
            else:
                yield from _tests_of(value)
    elif isinstance(node, list):
        for item in node:
            yield from _tests_of(item)


def test_dbt_sources_use_data_tests_with_arguments() -> None:
    """The dbt sources.yml says `data_tests` (dbt 1.8+), never the legacy `tests`, and
    gives a generic test's inputs under `arguments`: top-level inputs are deprecated since
    dbt 1.10 (MissingArgumentsPropertyInGenericTestDeprecation) and refused by dbt Fusion."""
    text = dbt_sources(all_tables())
    assert not re.search(r"^\s*tests:", text, re.MULTILINE)
    doc = yaml.safe_load(text)
    [source] = doc["sources"]
    tables = {t["name"]: t for t in source["tables"]}
    assert tables["pos_z_reports"]["data_tests"] == [
        {
            "dbt_utils.unique_combination_of_columns": {
                "arguments": {"combination_of_columns": ["registerid", "zreportid"]}
            }
        }
    ]
    for test in _tests_of(doc):
        if isinstance(test, dict):
            [(_name, spec)] = test.items()
            assert set(spec) <= {"arguments", "config"}, test
    registers = {c["name"]: c for c in tables["cash_registers"]["columns"]}
    assert registers["registerid"]["data_tests"] == ["unique", "not_null"]


def test_dbt_sources_enable_only_the_tables_a_default_sync_makes(tmp_path: Path) -> None:
    """`dbt build` on a default install finds every source it tests: the tables a default
    sync makes are on, and those it does not (an opt-in stream's, verify's) are off until a
    var turns them on, their tests with them."""
    with target_for("duckdb", tmp_path) as target:
        sync_simulated_world(
            SimConfig(seed=3, days=2, now=int(NOW.timestamp())), target, tmp_path, store_days=2
        )
        comments, _columns, views = catalog(target)
    made = set(comments) - views
    [source] = yaml.safe_load(dbt_sources(all_tables()))["sources"]
    on = {t["name"] for t in source["tables"] if "config" not in t}
    assert on == made
    for table in source["tables"]:
        if "config" in table:
            switch = table["config"]["enabled"]
            assert switch == f"{{{{ var('sitoo_{table['name']}', false) }}}}"
            for test in _tests_of(table):
                [(_name, spec)] = test.items()
                assert spec["config"]["enabled"] == switch


def test_markdown_says_which_tables_exist_only_sometimes() -> None:
    """The markdown says that `users` exists only when SITOO_STREAMS names it and
    `verify_findings` only after a verify run, where a BI engineer looks for them."""
    text = markdown(all_tables())
    users = text.split("\n## users\n")[1].split("\n## ")[0]
    assert "SITOO_STREAMS names the users stream" in users
    findings = text.split("\n## verify_findings\n")[1].split("\n## ")[0]
    assert "Made by the first `sitoo-sync verify`" in findings
    assert [t.name for t in all_tables() if only_when(t)] == ["users", "verify_findings"]


def _currency_named(text: str) -> bool:
    return "currencycode" in text or "currency_code" in text


def test_every_money_column_names_its_currency_column() -> None:
    """Every money column can be read in its currency: its row has a currency column, or its
    own or its table's description names the column that holds it (a warehouse's, a site's
    via its warehouses, a report's)."""
    unnamed = [
        f"{t.name}.{c.name}"
        for t in all_tables()
        for c in t.columns
        if c.kind is Kind.MONEY
        and not any("currency" in other.name for other in t.columns)
        and not _currency_named(c.description)
        and not _currency_named(t.description)
    ]
    assert unnamed == []


#: "a - b" or "a + b" between two lower-case identifiers in a description.
FORMULA = re.compile(r"\b([a-z][a-z0-9_]{3,})\s+[-+]\s+([a-z][a-z0-9_]{3,})\b")


def test_formulas_in_descriptions_name_columns_of_their_own_row() -> None:
    """A description that states a sum or difference of columns (`moneysubtotal -
    moneycaptured`) names columns its own table or view has, not a sibling table's."""
    every = {c.name for t in all_tables() for c in t.columns}
    every |= {name for v in VIEWS for name, _ in v.columns}
    wrong = []
    described = [
        (t.name, {c.name for c in t.columns}, [(c.name, c.description) for c in t.columns])
        for t in all_tables()
    ]
    described += [(v.name, {n for n, _ in v.columns}, list(v.columns)) for v in VIEWS]
    for relation, own, columns in described:
        for column, text in columns:
            for match in FORMULA.finditer(text):
                named = [m for m in match.groups() if m in every]
                wrong += [f"{relation}.{column}: {m}" for m in named if m not in own]
    assert wrong == []


#: Formulas the descriptions state, checked against the synced rows.
FORMULAS = [
    ("pos_z_reports", "moneycash_diff", "moneycash_counted - moneycash_expected"),
    ("store_z_reports", "moneycash_diff", "moneycash_counted - moneycash_expected"),
    ("pos_z_reports", "moneysummarysubtotal", "moneysummarysales - moneysummaryrefund"),
    ("pos_z_reports", "moneygrandtotalnet", "moneygrandtotalsales - moneygrandtotalrefund"),
    ("v_cash_differences", "cash_difference", "counted_cash - expected_cash"),
    ("v_daily_store_sales", "gross_takings", "gross_sales - gross_refunds"),
    ("v_payment_mix", "net_amount", "sales_amount - refund_amount"),
]


def _description(relation: str, column: str) -> str:
    if relation in TABLES:
        return TABLES[relation].column(column).description
    return dict(next(v for v in VIEWS if v.name == relation).columns)[column]


@pytest.mark.parametrize(("relation", "column", "formula"), FORMULAS)
def test_documented_formulas_hold_in_synced_rows(
    synced: Target, relation: str, column: str, formula: str
) -> None:
    """A column whose meaning is a formula of its row says so in its description (which way
    a cash difference points, for one), and every synced row satisfies it."""
    assert formula in _description(relation, column)
    name = f"{synced.schema}.{relation}" if synced.schema else relation
    [(rows, wrong)] = read(
        synced,
        f"SELECT count({column}), count(CASE WHEN {column} <> {formula} THEN 1 END) FROM {name}",
    )
    assert rows > 0
    assert wrong == 0


def _claims(table: Table, phrase: str) -> list[str]:
    return [
        c.name
        for c in table.columns
        if c.kind in (Kind.MONEY, Kind.INT, Kind.DECIMAL) and phrase in c.description.lower()
    ]


def test_refund_signs_the_descriptions_claim_hold_in_synced_rows(synced: Target) -> None:
    """Where a description says a figure is negative on a refund, no synced refund row has it
    positive; where it says positive also on a refund, none has it negative (orders are
    refunds when creditorderid is set, receipts when isrefund is)."""
    q = (lambda n: f"{synced.schema}.{n}") if synced.schema else (lambda n: n)
    refunds = {
        "orders": f"(SELECT orderid FROM {q('orders')} WHERE creditorderid IS NOT NULL)",
        "journal": f"(SELECT registerid, id FROM {q('journal_receipts')} WHERE isrefund)",
    }
    checked = wrong = 0
    for table in TABLES.values():
        if table.name.startswith("order"):
            of, key = refunds["orders"], "orderid"
        elif table.name.startswith("journal_receipt"):
            of, key = refunds["journal"], "(registerid, id)"
        else:
            continue
        for sign, columns in (
            ("> 0", _claims(table, "negative on a refund")),
            ("< 0", _claims(table, "positive also on a refund")),
        ):
            for column in columns:
                [(rows, bad)] = read(
                    synced,
                    f"SELECT count({column}), count(CASE WHEN {column} {sign} THEN 1 END) "
                    f"FROM {q(table.name)} WHERE {key} IN {of}",
                )
                checked += rows
                if bad:
                    wrong += 1
                    print(f"{table.name}.{column}: {bad} of {rows} refund rows are {sign}")
    assert checked > 0
    assert wrong == 0


def test_personal_columns_say_what_null_means() -> None:
    """A personal column's description says it is NULL by default (SITOO_PERSONAL_DATA=drop)
    and what hash and keep store, so an all-NULL column is not read as missing data."""
    vague = [
        f"{t.name}.{c.name}"
        for t in all_tables()
        for c in t.columns
        if c.personal and not ("NULL by default" in c.description and "keep" in c.description)
    ]
    assert vague == []


def test_extra_of_a_table_with_personal_columns_says_it_is_kept_only_with_keep() -> None:
    """A table with personal columns keeps undeclared fields (`extra`) only under
    SITOO_PERSONAL_DATA=keep (normalize/entity.py), so its `extra` does not claim that
    nothing is dropped."""
    wrong = [
        t.name
        for t in all_tables()
        if EXTRA in t.column_names
        and any(c.personal for c in t.columns)
        and (
            "nothing is dropped" in t.column(EXTRA).description
            or "SITOO_PERSONAL_DATA=keep" not in t.column(EXTRA).description
        )
    ]
    assert wrong == []


def test_receipt_day_descriptions_name_the_site_zone_fallback() -> None:
    """A receipt that names no time zone it knows is dated in its site's zone, so neither
    journal_receipts.timezone nor v_product_sales.business_date says the day is always in
    the register's own zone."""
    timezone = TABLES["journal_receipts"].column("timezone").description
    product_day = _description("v_product_sales", "business_date")
    assert "site's" in timezone
    assert "site's" in product_day
