"""Warehouse targets for tests: DuckDB and SQLite always; PostgreSQL and MariaDB when CI says.

`.ci/run` sets SITOO_TEST_POSTGRES_URL and SITOO_TEST_MYSQL_URL; on a laptop without those
servers the tests that need them are skipped with the reason. Each test gets a schema (a
database on MySQL) of its own, dropped afterwards.
"""

from __future__ import annotations

import json
import os
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sitoo_sync.normalize.columns import rows_to_arrow
from sitoo_sync.normalize.tables import LOAD_METADATA, Kind, Table
from sitoo_sync.streams import STREAMS
from sitoo_sync.views import VIEWS
from sitoo_sync.warehouse import drop_schema, open_warehouse
from sitoo_sync.warehouse.base import SYSTEM_TABLES

LOAD_METADATA_NAMES = frozenset(c.name for c in LOAD_METADATA)

SERVERS = {"postgres": "SITOO_TEST_POSTGRES_URL", "mysql": "SITOO_TEST_MYSQL_URL"}
ALL_TARGETS = ["duckdb", "sqlite", "postgres", "mysql"]


def grouped_targets(module: str) -> list[Any]:
    """ALL_TARGETS as params of a module-scoped fixture that builds something costly per
    target: under pytest-xdist's `--dist loadgroup` (`make test`) one target's tests go to one
    worker, so each target's fixture is built once, not once per worker given one of them."""
    return [pytest.param(t, marks=pytest.mark.xdist_group(f"{module}-{t}")) for t in ALL_TARGETS]


@dataclass(frozen=True)
class Target:
    """Where a test loads: a URL and, for servers, a schema of its own."""

    name: str
    url: str
    schema: str | None = None

    def settings(self) -> dict[str, Any]:
        """Settings overrides that point a sync here."""
        return {"target_url": self.url, "target_schema": self.schema}

    def env(self) -> dict[str, str]:
        """Environment variables that point a `sitoo-sync` process here."""
        env = {"SITOO_TARGET_URL": self.url}
        if self.schema:
            env["SITOO_TARGET_SCHEMA"] = self.schema
        return env

    def rows(self, table: Table) -> list[tuple[Any, ...]]:
        """Every row of `table`, each value in a form comparable across targets (the load
        metadata, which differs per load by design, left out)."""
        return self.tables_rows([table])[table.name]

    def tables_rows(self, tables: Iterable[Table]) -> dict[str, list[tuple[Any, ...]]]:
        """`rows` of each of `tables` by its name, read over one connection: opening one per
        table was most of the time a test comparing every table spent."""
        warehouse = open_warehouse(self.url, schema=self.schema)
        try:
            return {table.name: _comparable(table, warehouse.read_table(table)) for table in tables}
        finally:
            warehouse.close()

    def bag(self, table: Table) -> Counter[tuple[Any, ...]]:
        """The rows of `table` as a multiset."""
        return Counter(self.rows(table))

    def bags(self, tables: Iterable[Table]) -> dict[str, Counter[tuple[Any, ...]]]:
        """`bag` of each of `tables` by its name, read over one connection."""
        return {name: Counter(rows) for name, rows in self.tables_rows(tables).items()}


def _comparable(table: Table, dicts: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """`dicts` (rows of `table` as read) as `Target.rows` gives them."""
    columns = [c for c in table.column_names if c not in LOAD_METADATA_NAMES]
    kinds = {c.name: c.kind for c in table.columns}
    return [tuple(canonical(kinds[c], row[c]) for c in columns) for row in dicts]


def canonical(kind: Kind, value: Any) -> Any:
    """JSON as sorted text (targets return text or objects); everything else as it is."""
    if kind is Kind.JSON and value is not None:
        obj = json.loads(value) if isinstance(value, str) else value
        return json.dumps(obj, sort_keys=True)
    return value


@contextmanager
def server_schema(name: str, url: str) -> Iterator[Target]:
    """A fresh schema on a server, dropped afterwards."""
    schema = f"t_{uuid.uuid4().hex[:10]}"
    try:
        yield Target(name, url, schema)
    finally:
        drop_schema(url, schema)


@contextmanager
def target_for(name: str, tmp_path: Path) -> Iterator[Target]:
    """The target called `name`, or a pytest skip when its server is not configured."""
    if name == "duckdb":
        yield Target(name, f"duckdb:///{tmp_path / f'w-{uuid.uuid4().hex[:6]}.duckdb'}")
    elif name == "sqlite":
        yield Target(name, f"sqlite:///{tmp_path / f'w-{uuid.uuid4().hex[:6]}.sqlite'}")
    else:
        url = os.environ.get(SERVERS[name])
        if not url:
            pytest.skip(f"{SERVERS[name]} is not set: no {name} server to test against")
        with server_schema(name, url) as target:
            yield target


def view_rows(target: Target, sql: str) -> list[tuple[Any, ...]]:
    """What `sql` reads on `target`, its views (`FROM v_...`) in the target's schema, beside
    the tables."""
    if target.schema:
        sql = sql.replace(" FROM v_", f" FROM {target.schema}.v_")
    warehouse = open_warehouse(target.url, schema=target.schema)
    try:
        return warehouse.query(sql)
    finally:
        warehouse.close()


@contextmanager
def holding_rows(
    name: str, tmp_path: Path, rows: Mapping[str, list[dict[str, Any]]]
) -> Iterator[Target]:
    """Target `name` with every stream's tables and the BI views, holding `rows` (a table's
    name -> its rows as dicts; a column a row leaves out is NULL)."""
    with target_for(name, tmp_path) as target:
        warehouse = open_warehouse(target.url, schema=target.schema)
        try:
            tables = [*SYSTEM_TABLES, *(t for s in STREAMS.values() for t in s.tables)]
            warehouse.ensure_schema(tables, VIEWS)
            with warehouse.transaction():
                for table in tables:
                    data = [
                        tuple(d.get(c) for c in table.column_names)
                        for d in rows.get(table.name, [])
                    ]
                    if data:
                        warehouse.insert(table, rows_to_arrow(table, data))
        finally:
            warehouse.close()
        yield target
