"""The warehouse seam holds: backends and dialects stay inside warehouse/ (that warehouse/ names
no stream is test_stream_registry.py's engine check)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "sitoo_sync"
WAREHOUSE = PACKAGE / "warehouse"
#: Modules only warehouse/ may import: the backends, the dialect code, and their drivers.
INTERNAL = (
    "sitoo_sync.warehouse.duckdb",
    "sitoo_sync.warehouse.sqla",
    "sitoo_sync.warehouse.dialects",
    "sitoo_sync.warehouse.pg_copy",
    "sitoo_sync.warehouse.sql_types",
    "sqlalchemy",
    "duckdb",
    "psycopg",
    "pymysql",
)


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import in a file, `from a import b` also as `a.b`."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.append((node.lineno, node.module))
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return found


def _internal(module: str) -> bool:
    return any(module == m or module.startswith(m + ".") for m in INTERNAL)


def test_no_module_outside_warehouse_imports_a_backend_or_a_driver() -> None:
    """Outside sitoo_sync/warehouse/ code reaches a database only through the seam
    (`open_warehouse`, `Warehouse`, `capabilities`): never a backend type, a dialect or a driver."""
    offenders = [
        f"{path.relative_to(PACKAGE.parent)}:{line} imports {module}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if WAREHOUSE not in path.parents
        for line, module in _imports(path)
        if _internal(module)
    ]
    assert offenders == [], (
        "only sitoo_sync/warehouse/ may import backends, dialect code or database drivers; "
        "use the seam in warehouse/base.py instead:\n" + "\n".join(offenders)
    )


def test_the_check_sees_a_backend_import(tmp_path: Path) -> None:
    """The import check recognizes each spelling of a backend import (it is not vacuous)."""
    sample = tmp_path / "sample.py"
    sample.write_text(
        "from sitoo_sync.warehouse import duckdb\n"
        "from sitoo_sync.warehouse.sqla import SqlWarehouse\n"
        "import sqlalchemy.dialects.mysql\n"
        "from sitoo_sync.warehouse import open_warehouse\n",
        encoding="utf-8",
    )
    assert sorted({line for line, module in _imports(sample) if _internal(module)}) == [1, 2, 3]
