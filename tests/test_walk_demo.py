"""`sitoo-sync demo` walked through as a new user meets it."""

from __future__ import annotations

from pathlib import Path

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


def test_a_db_the_demo_cannot_write_is_one_line_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`demo --db` on a read-only disk (DuckDB cannot create the file) says so in one line
    naming --db, exit 2, instead of a traceback; the simulator is never started."""
    import duckdb

    from sitoo_sync import demo

    def read_only(path: Path, *_args: object) -> None:
        raise duckdb.IOException(f'IO Error: Cannot open file "{path}": Read-only file system')

    monkeypatch.setattr(demo, "new_duckdb_file", read_only)
    db = tmp_path / "d.duckdb"
    assert main(["demo", "--db", str(db)]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"sitoo-sync: configuration error: --db: cannot write {db}: IO Error: Cannot open file "
        f'"{db}": Read-only file system; pass a --db in a directory you can write to\n'
    )
