"""A table's key holds the vendor's ids as sent, on every SQL target."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from sitoo_sync.normalize.tables import Table, integer, text
from sitoo_sync.warehouse import open_warehouse
from tests.targets import target_for

THINGS = Table(
    "things",
    (integer("thingid", "The vendor's id.", nullable=False), text("name", "A name.")),
    key=("thingid",),
    description="Things with a lone integer key.",
)


@pytest.mark.parametrize("target_name", ["sqlite", "postgres", "mysql"])
def test_a_lone_integer_key_of_zero_is_stored_as_zero(target_name: str, tmp_path: Path) -> None:
    """No target turns the vendor's id 0 into a number of its own (MySQL's AUTO_INCREMENT
    does, if the key column is left to SQLAlchemy's default)."""
    with target_for(target_name, tmp_path) as target:
        warehouse = open_warehouse(target.url, schema=target.schema)
        try:
            warehouse.ensure_schema([THINGS])
            with warehouse.transaction():
                warehouse.insert(THINGS, pa.table({"thingid": [0, 7], "name": ["zero", "seven"]}))
            rows = sorted((r["thingid"], r["name"]) for r in warehouse.read_table(THINGS))
        finally:
            warehouse.close()
    assert rows == [(0, "zero"), (7, "seven")]


def test_a_key_an_earlier_version_made_auto_increment_is_restated_without_it(
    tmp_path: Path,
) -> None:
    """A MySQL table created with an AUTO_INCREMENT key (before keys were never so) loses
    the attribute at the next schema check, keeping its rows, and then stores id 0 as 0."""
    import sqlalchemy as sa

    with target_for("mysql", tmp_path) as target:
        assert target.schema is not None
        engine = sa.create_engine(
            sa.make_url(target.url).set(drivername="mysql+pymysql", database=None)
        )
        with engine.begin() as conn:
            conn.execute(sa.text(f"CREATE DATABASE IF NOT EXISTS `{target.schema}`"))
            conn.execute(
                sa.text(
                    # As the earlier version made it, its comments included: only the
                    # AUTO_INCREMENT differs from what the declaration wants now.
                    f"CREATE TABLE `{target.schema}`.things (thingid BIGINT NOT NULL "
                    "AUTO_INCREMENT COMMENT 'The vendor''s id.', name TEXT COMMENT 'A name.', "
                    "PRIMARY KEY (thingid)) COMMENT = 'Things with a lone integer key.'"
                )
            )
            conn.execute(sa.text(f"INSERT INTO `{target.schema}`.things VALUES (7, 'seven')"))
        engine.dispose()
        warehouse = open_warehouse(target.url, schema=target.schema)
        try:
            warehouse.ensure_schema([THINGS])
            with warehouse.transaction():
                warehouse.insert(THINGS, pa.table({"thingid": [0], "name": ["zero"]}))
            rows = sorted((r["thingid"], r["name"]) for r in warehouse.read_table(THINGS))
        finally:
            warehouse.close()
    assert rows == [(0, "zero"), (7, "seven")]
