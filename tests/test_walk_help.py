"""Each command's --help, read as a new user reads it before running the command."""

from __future__ import annotations

import pytest

from sitoo_sync.cli import main


def _help(command: str, capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as done:
        main([command, "--help"])
    assert done.value.code == 0
    return " ".join(capsys.readouterr().out.split())


def test_simulator_help_gives_the_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    """`simulator --help` names the port, address, history and seed a bare `sitoo-sync
    simulator` uses, so a user knows where it will listen before starting it."""
    text = _help("simulator", capsys)
    assert "TCP port (default: 8765; 0 = any free port)" in text
    assert "address to bind (default: 127.0.0.1)" in text
    assert "days of history (default: 30)" in text
    assert "seed of the data (default: 1)" in text
    assert "registers in each store (default: 2)" in text


def test_docs_help_says_what_each_format_is(capsys: pytest.CaptureFixture[str]) -> None:
    """`docs --help` explains --format's two choices, not only lists them."""
    text = _help("docs", capsys)
    assert "markdown (the default, as docs/tables.md) or a dbt sources.yml" in text
