"""`sitoo-sync status` walked through as a new user meets it."""

from __future__ import annotations

from pathlib import Path

import pytest

from sitoo_sync.cli import main
from tests.targets import target_for


@pytest.mark.parametrize("name", ["postgres", "mysql"])
def test_status_of_an_empty_schema_names_the_schema_it_looked_in(
    name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """On a server, `status` of a schema nothing was synced into (a mistyped
    SITOO_TARGET_SCHEMA, say) names that schema beside the URL, so the slip shows."""
    with target_for(name, tmp_path) as target:
        for key, value in target.env().items():
            monkeypatch.setenv(key, value)
        assert main(["status"]) == 0
        out = capsys.readouterr().out
    assert out.startswith("nothing synced yet into ")
    assert out.rstrip().endswith(f"(SITOO_TARGET_SCHEMA={target.schema})")
