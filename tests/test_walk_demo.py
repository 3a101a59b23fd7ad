"""`sitoo-sync demo` walked through as a new user meets it."""

from __future__ import annotations

import pytest

from sitoo_sync.cli import main


def test_demo_help_names_the_file_and_the_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    """`demo --help` says which file the demo writes and how much history it makes, so a
    user knows what a bare `sitoo-sync demo` will touch before running it."""
    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "default: sitoo-demo.duckdb" in text
    assert "(default: 30)" in text
    assert "(default: 1)" in text
