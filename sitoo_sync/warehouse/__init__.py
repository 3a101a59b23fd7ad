"""warehouse/: the one seam between rows and a database.

`open_warehouse(url)` picks the backend (duckdb.py native, sqla.py for SQLAlchemy URLs);
`load.py` is the one-transaction load that every backend serves; `base.py` the interface.
"""

from __future__ import annotations

from sitoo_sync.errors import ConfigError
from sitoo_sync.warehouse.base import Warehouse


def open_warehouse(url: str, *, schema: str | None = None) -> Warehouse:
    """The warehouse for a target URL; a driver is imported only when it is needed.

    `duckdb:///file` takes the native DuckDB path (Arrow bulk loads); every other URL goes
    through SQLAlchemy.
    """
    scheme = url.split("://", 1)[0].lower()
    if scheme == "duckdb":
        from sitoo_sync.warehouse.duckdb import DuckDBWarehouse

        if schema:
            raise ConfigError("SITOO_TARGET_SCHEMA: not supported for DuckDB targets")
        return DuckDBWarehouse(url)
    if "://" not in url:
        raise ConfigError(f"SITOO_TARGET_URL: not a URL: {url!r}")
    from sitoo_sync.warehouse.sqla import SqlWarehouse

    return SqlWarehouse(url, schema=schema)
