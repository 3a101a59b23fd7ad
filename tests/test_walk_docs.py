"""The examples a new user copies from the README, config and deploy files, read as the
product reads them."""

from __future__ import annotations

import re
from pathlib import Path

from sitoo_sync.warehouse import local_path

ROOT = Path(__file__).resolve().parent.parent
ROOTS = ("var", "etc", "opt", "srv", "data", "home", "tmp", "run", "mnt")


def _documents() -> list[Path]:
    """Every file a user reads an example target URL from."""
    return [
        ROOT / "README.md",
        *sorted((ROOT / "config").glob("*")),
        *sorted(p for p in (ROOT / "deploy").rglob("*") if p.is_file()),
    ]


def test_example_file_targets_under_system_directories_are_absolute() -> None:
    """A `duckdb:///` or `sqlite:///` URL in the docs that names a system directory such as
    /var/lib names it absolutely (four slashes): three make the path relative to the working
    directory, so the example would write somewhere else or be refused."""
    wrong = []
    for doc in _documents():
        for url in re.findall(r"(?:duckdb|sqlite):///[^\s`'\"]+", doc.read_text()):
            path = local_path(url)
            if path is not None and not path.is_absolute() and path.parts[0] in ROOTS:
                wrong.append(f"{doc.relative_to(ROOT)}: {url}")
    assert wrong == []
