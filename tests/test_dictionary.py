"""The data dictionary: declared for every column, in the database as comments, and rendered."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from sitoo_sync.dictionary import all_tables, dbt_sources, markdown
from sitoo_sync.normalize.columns import rows_to_arrow
from sitoo_sync.normalize.tables import Table, integer, text
from sitoo_sync.warehouse import open_warehouse
from tests.targets import ALL_TARGETS, Target, target_for

DOCS = Path(__file__).resolve().parent.parent / "docs" / "tables.md"


@pytest.fixture(params=ALL_TARGETS)
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    """Each target in turn (servers skip when CI did not provide them)."""
    with target_for(request.param, tmp_path) as t:
        yield t


def catalog_comments(target: Target, names: list[str]) -> dict[tuple[str, str], Any]:
    """(table, column or "") -> the comment the target's catalog holds."""
    warehouse = open_warehouse(target.url, schema=target.schema)
    try:
        found: dict[tuple[str, str], Any] = dict(warehouse.catalog_comments(names))
        return found
    finally:
        warehouse.close()


def test_every_table_and_column_is_described() -> None:
    """No table or column the tool writes lacks a description."""
    missing = [
        f"{t.name}.{c.name}" for t in all_tables() for c in t.columns if not c.description.strip()
    ]
    missing += [t.name for t in all_tables() if not t.description.strip()]
    assert missing == []


def test_docs_tables_md_is_current() -> None:
    """docs/tables.md is what `sitoo-sync docs` renders now (run it and commit when this fails)."""
    assert DOCS.read_text(encoding="utf-8") == markdown(all_tables())


def test_dbt_sources_declare_descriptions_and_key_tests() -> None:
    """The dbt sources.yml names every table and column with its description, and tests keys."""
    doc = yaml.safe_load(dbt_sources(all_tables()))
    [source] = doc["sources"]
    tables = {t["name"]: t for t in source["tables"]}
    assert set(tables) == {t.name for t in all_tables()}
    registers = tables["cash_registers"]
    [key] = [c for c in registers["columns"] if c["name"] == "registerid"]
    assert key["data_tests"] == ["unique", "not_null"]
    assert key["description"].startswith("Unique ID of the register")
    pos = tables["pos_z_reports"]
    assert pos["data_tests"] == [
        {
            "dbt_utils.unique_combination_of_columns": {
                "arguments": {"combination_of_columns": ["registerid", "zreportid"]}
            }
        }
    ]
    for declared in all_tables():
        columns = {c["name"]: c for c in tables[declared.name]["columns"]}
        assert [c.description for c in declared.columns] == [
            columns[c.name]["description"] for c in declared.columns
        ]


def test_docs_command_writes_markdown_and_dbt(tmp_path: Path) -> None:
    """`sitoo-sync docs` prints the markdown; `--format dbt -o FILE` writes the sources.yml."""
    shown = subprocess.run(
        [sys.executable, "-m", "sitoo_sync", "docs"], capture_output=True, text=True, check=True
    )
    assert shown.stdout == markdown(all_tables())
    out = tmp_path / "sources.yml"
    subprocess.run(
        [sys.executable, "-m", "sitoo_sync", "docs", "--format", "dbt", "-o", str(out)], check=True
    )
    assert out.read_text(encoding="utf-8") == dbt_sources(all_tables())


def test_descriptions_are_comments_in_the_database(target: Target) -> None:
    """Every table's and column's description is its comment on DuckDB, PostgreSQL and MariaDB;
    SQLite, which has no comments, takes the schema without error."""
    tables = all_tables()
    warehouse = open_warehouse(target.url, schema=target.schema)
    try:
        warehouse.ensure_schema(tables)
        warehouse.ensure_schema(tables)  # a second tick finds them current
    finally:
        warehouse.close()
    if target.name == "sqlite":
        return
    found = catalog_comments(target, [t.name for t in tables])
    for t in tables:
        assert found[(t.name, "")] == t.description
        for c in t.columns:
            assert found[(t.name, c.name)] == c.description, f"{t.name}.{c.name}"


def test_comments_reach_tables_made_before_them(target: Target) -> None:
    """A table made without descriptions gets them on the next run; its rows, key and types stay."""
    bare = Table("described", (text("k", nullable=False), integer("n")), key=("k",))
    described = Table(
        "described",
        (
            text("k", "The key: it's 'quoted' and 50 % sure", nullable=False),
            integer("n", "A count: 10:30"),
        ),
        key=("k",),
        description="A table described later.",
    )
    first = open_warehouse(target.url, schema=target.schema)
    try:
        first.ensure_schema([bare])
        with first.transaction():
            first.insert(bare, rows_to_arrow(bare, [("a", 1)]))
    finally:
        first.close()
    second = open_warehouse(target.url, schema=target.schema)
    try:
        second.ensure_schema([described])
        with second.transaction():
            second.upsert(described, rows_to_arrow(described, [("a", 2), ("b", None)]))
    finally:
        second.close()
    assert sorted(target.rows(described), key=str) == [("a", 2), ("b", None)]
    if target.name == "sqlite":
        return
    found = catalog_comments(target, ["described"])
    assert found[("described", "")] == "A table described later."
    assert found[("described", "k")] == "The key: it's 'quoted' and 50 % sure"
    assert found[("described", "n")] == "A count: 10:30"
