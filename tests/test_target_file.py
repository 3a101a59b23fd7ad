"""A SITOO_TARGET_URL that names a directory, or a file that is not a DuckDB database, is
refused by every command in one line naming the setting and the fix, and leaves no file."""

from __future__ import annotations

from pathlib import Path

import pytest

from sitoo_sync.cli import main
from sitoo_sync.errors import ConfigError
from sitoo_sync.warehouse import open_warehouse

COMMANDS = [["run", "--once"], ["run"], ["status"], ["status", "--check"], ["verify"]]
COMMANDS += [["reset", "pos_z_reports"]]
CREDENTIALS = {"SITOO_API_ID": "1500-1", "SITOO_API_PASSWORD": "x"}


def _make(kind: str, tmp_path: Path) -> Path:
    """The target of `kind`, made in `tmp_path`."""
    if kind == "directory":
        (path := tmp_path / "warehouse").mkdir()
    elif kind == "text file":
        (path := tmp_path / "notes.txt").write_text("not a database\n")
    elif kind == "empty file":
        (path := tmp_path / "sitoo.duckdb").touch()
    else:  # a SQLite database named as a DuckDB target
        (path := tmp_path / "sitoo.db").write_bytes(b"SQLite format 3\x00" + bytes(4080))
    return path


KINDS = ["directory", "text file", "empty file", "sqlite file"]
FIXES = {
    "directory": "is a directory",
    "text file": "is not a DuckDB database file",
    "empty file": "is empty",
    "sqlite file": "is not a DuckDB database file",
}


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
@pytest.mark.parametrize("kind", KINDS)
def test_a_target_that_is_no_duckdb_file_is_one_line_exit_2_leaving_no_file(
    kind: str,
    command: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Each command refuses a directory, a text, empty or SQLite file as SITOO_TARGET_URL in
    one line naming the setting, what the path is and the fix, exit 2; no lock file or other
    file is left beside it, and the file is untouched."""
    target = _make(kind, tmp_path)
    before = target.read_bytes() if target.is_file() else None
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("SITOO_TARGET_URL", f"duckdb:///{target}")
    assert main(command) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"sitoo-sync: configuration error: SITOO_TARGET_URL: {target} "), err
    assert FIXES[kind] in err
    assert "IO Error" not in err  # DuckDB's own words are not the message
    assert sorted(tmp_path.iterdir()) == [target]
    assert (target.read_bytes() if target.is_file() else None) == before


def test_a_directory_names_a_file_in_it_as_the_fix(tmp_path: Path) -> None:
    """The message for a directory suggests the URL of a DuckDB file inside it."""
    with pytest.raises(ConfigError) as info:
        open_warehouse(f"duckdb:///{tmp_path}")
    assert f"duckdb:///{tmp_path}/sitoo.duckdb" in str(info.value)


def test_a_duckdb_file_and_a_new_path_are_accepted(tmp_path: Path) -> None:
    """A real DuckDB file, and a path where none exists yet, are opened as before."""
    new = open_warehouse(f"duckdb:///{tmp_path / 'new.duckdb'}")
    new.query("SELECT 1")
    new.close()
    again = open_warehouse(f"duckdb:///{tmp_path / 'new.duckdb'}")
    assert again.query("SELECT 42") == [(42,)]
    again.close()
