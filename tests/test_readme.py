"""The README serves a user with a clone: what it links and tells them to run exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text()


def test_every_relative_link_and_named_doc_is_in_the_repository() -> None:
    """No link points outside the clone (such as ../shared/...), and docs/benchmarks.md,
    where the benchmark internals went, exists and is named."""
    for target in re.findall(r"\]\(([^)#]+)\)", README) + re.findall(r"`(\.\./[^`]+)`", README):
        if "://" not in target:
            assert (ROOT / target).resolve().is_relative_to(ROOT), target
            assert (ROOT / target).exists(), target
    assert "docs/benchmarks.md" in README
    assert (ROOT / "docs" / "benchmarks.md").exists()
    assert "rows/s" not in README  # the figures live in docs/benchmarks.md


def test_install_and_first_run_advice_works_from_a_clone() -> None:
    """Install lines use the clone or a built wheel, never an unpublished PyPI name; the
    README warns about the full journal backfill and says where site ids come from."""
    assert "pip install 'sitoo-sync[" not in README
    assert "pip install '.[postgres]'" in README
    assert "dist/sitoo_sync-*.whl" in README
    assert "Without `SITOO_JOURNAL_START` every register's journal" in README
    assert "/sites.json" in README
    assert "as the streams grow" not in README
