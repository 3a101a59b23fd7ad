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
    """`demo --db` on a read-only disk (nothing can be created beside the file) says so in
    one line naming --db, exit 2, instead of DuckDB's traceback; no file is made."""
    import errno
    import tempfile

    from sitoo_sync import demo

    def read_only(*_args: object, **_kwargs: object) -> None:
        raise OSError(errno.EROFS, "Read-only file system")

    made: list[Path] = []
    monkeypatch.setattr(tempfile, "TemporaryFile", read_only)
    monkeypatch.setattr(demo, "new_duckdb_file", lambda path, *_a: made.append(path))
    db = tmp_path / "d.duckdb"
    assert main(["demo", "--db", str(db)]) == 2
    assert made == []
    err = capsys.readouterr().err
    assert err == (
        f"sitoo-sync: configuration error: --db: cannot write {db}: Read-only file system; "
        "pass a --db in a directory you can write to\n"
    )
