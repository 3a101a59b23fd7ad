"""warehouse/: the one seam between rows and a database. `open_warehouse(url)` picks the backend."""

from __future__ import annotations

from sitoo_sync.errors import ConfigError
from sitoo_sync.warehouse.base import Warehouse


def open_warehouse(url: str) -> Warehouse:
    """The warehouse for a target URL; the driver is imported only when it is needed."""
    scheme = url.split("://", 1)[0].lower()
    if scheme == "duckdb":
        from sitoo_sync.warehouse.duckdb import DuckDBWarehouse

        return DuckDBWarehouse(url)
    raise ConfigError(
        f"SITOO_TARGET_URL: unsupported target {scheme!r}; this version loads into DuckDB "
        "(duckdb:///path/to/file.duckdb)"
    )
