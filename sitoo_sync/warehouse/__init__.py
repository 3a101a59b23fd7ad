"""warehouse/: the one seam between rows and a database.

`open_warehouse(url)` picks the backend (duckdb.py native, sqla.py for SQLAlchemy URLs);
`load.py` is the one-transaction load that every backend serves; `base.py` the interface:
`Rows`, `StateStore`, `Locks` and `Capabilities` (as data), together `Warehouse`. What differs
between SQL dialects is in dialects.py (PostgreSQL's COPY path in pg_copy.py), how locks are
taken in locks.py, how views and comments reach a catalog in views.py and comments.py. No
module outside this package knows a backend's type or a dialect.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

from sitoo_sync.errors import ConfigError, WarehouseError, first_line
from sitoo_sync.log import mask_secret_params
from sitoo_sync.warehouse.base import Warehouse


def masked_url(url: str) -> str:
    """The URL with its password (if any, also as a `?password=` parameter) replaced by
    `***`, fit for a message."""
    return mask_secret_params(re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1***@", url))


def local_path(url: str) -> Path | None:
    """The file of a `duckdb:///` or `sqlite:///` URL; None for servers, memory, MotherDuck."""
    scheme = url.split("://", 1)[0].split("+", 1)[0].lower()
    if scheme not in ("duckdb", "sqlite") or ":///" not in url:
        return None
    path = url.split(":///", 1)[1].split("?", 1)[0]
    if scheme == "sqlite":  # SQLAlchemy reads `%20` in its path as a space, and so on
        path = unquote(path)
    if not path or path == ":memory:" or path.startswith("md:"):
        return None
    return Path(path)


def check_local_target(url: str) -> Path | None:
    """The target's file, after making sure its directory exists (a typo must not make a new
    warehouse somewhere else) and that it is not a directory itself; None when the target is
    not a local file."""
    path = local_path(url)
    if path is not None and url.lower().startswith("duckdb") and "?" in url:
        # DuckDB would take the options as part of the file's name, and ignore them.
        base, options = url.split("?", 1)
        raise ConfigError(
            f"SITOO_TARGET_URL: a DuckDB URL takes no options (?{options}): use {base}"
        )
    if path is not None and path.is_dir():
        raise ConfigError(f"SITOO_TARGET_URL: {path} {_a_directory(url)}")
    if path is not None and not path.parent.is_dir():
        meant = Path("/") / path  # three slashes: a relative path; four: an absolute one
        hint = (
            f"; an absolute path takes four slashes: {url.replace(':///', ':////', 1)}"
            if not path.is_absolute() and meant.parent.is_dir()
            else ""
        )
        raise ConfigError(
            f"SITOO_TARGET_URL: the directory {path.parent} does not exist "
            f"(create it first, or fix the path in {url}{hint})"
        )
    return path


#: Every DuckDB database file has these bytes after its header's 8-byte checksum.
DUCKDB_MAGIC, DUCKDB_MAGIC_AT = b"DUCK", 8
SQLITE_MAGIC = b"SQLite format 3\x00"


def check_duckdb_target(url: str) -> Path | None:
    """`check_local_target`, and an existing file must be a DuckDB database: anything else
    (an empty file, a SQLite database, text) is refused naming the setting and the fix,
    before DuckDB is asked to open it and before any lock file is made beside it. A file
    that cannot be read is left to DuckDB to say so."""
    path = check_local_target(url)
    if path is None:
        return None
    try:
        with path.open("rb") as file:
            head = file.read(len(SQLITE_MAGIC))
    except OSError:
        return path  # missing (made on the first run) or unreadable (DuckDB's message)
    if head[DUCKDB_MAGIC_AT : DUCKDB_MAGIC_AT + len(DUCKDB_MAGIC)] == DUCKDB_MAGIC:
        return path
    if not head:
        raise ConfigError(
            f"SITOO_TARGET_URL: {path} is empty, not a DuckDB database file: delete it (the "
            "first run makes the file), or point the URL at your warehouse's file"
        )
    what = f"; it is a SQLite database: use sqlite:///{path}" if head == SQLITE_MAGIC else ""
    raise ConfigError(
        f"SITOO_TARGET_URL: {path} is not a DuckDB database file: point the URL at "
        f"your warehouse's file, or at a path with no file yet to make a new one{what}"
    )


def _a_directory(url: str) -> str:
    """What to say of a target URL naming a directory: a file in it is what was meant."""
    base, query = url.split("?", 1) if "?" in url else (url, "")
    name = "sitoo.duckdb" if base.lower().startswith("duckdb") else "sitoo.db"
    inside = f"{base.rstrip('/')}/{name}" + (f"?{query}" if query else "")
    return f"is a directory: name the database file, such as {inside} (made on the first run)"


def given_as(exc: ConfigError, option: str) -> ConfigError:
    """`exc` naming `option` (`--target`) where it names SITOO_TARGET_URL, for a URL the
    user gave there; another setting's error (SITOO_TARGET_SCHEMA, say) as it is."""
    reason = str(exc).removeprefix("SITOO_TARGET_URL: ")
    return exc if reason == str(exc) else ConfigError(f"{option}: {reason}")


#: How a message about a local target file that could not be opened begins.
CANNOT_OPEN = "cannot open the warehouse file"
#: DuckDB's words for a file another process has open (with its program and PID; DuckDB 2
#: says more after the PID when the holder reads only).
_HELD = re.compile(r"Could not set lock on file(?:.*?held in (.+?) \(PID (\d+)\))?")


def held_file(path: object, reason: str, *, waited: float | None = None) -> str | None:
    """One line for DuckDB's refusal of a file another process holds, naming that process
    (its PID and program, when DuckDB's error gives them) and what lets go of it; None when
    `reason` is another error."""
    found = _HELD.search(reason)
    if found is None:
        return None
    program, pid = found.groups()
    who = f" (PID {pid}, {program})" if pid else ""
    after = f" after waiting {waited:g} s" if waited is not None else ""
    return (
        f"{CANNOT_OPEN} {path}: another process holds it{who}{after}; a "
        "sitoo-sync tick lets go of it within about half a minute, another program (a BI "
        "tool, a notebook) must close it"
    )


def unreachable(url: str, exc: BaseException) -> WarehouseError:
    """One line for a database server that cannot be connected to: where, the driver's
    own reason (its first line, without SQLAlchemy's help link), never the password, and
    what to check; for a file another process holds, which process."""
    first = first_line(exc)
    path = local_path(url)
    if path is not None and first.startswith(CANNOT_OPEN):  # one line already (duckdb.py)
        return WarehouseError(first)
    if path is not None:
        return WarehouseError(held_file(path, first) or f"{CANNOT_OPEN} {path}: {first}")
    return WarehouseError(
        f"cannot reach the warehouse at {masked_url(url)}: {first} "
        "(check the target URL, and that the server is up and lets this host and user in)"
    )


def shares_locks(url: str) -> bool:
    """True when the target at `url` keeps its locks on a database server (PostgreSQL,
    MySQL/MariaDB), so processes on any host can share a stream and split its partitions."""
    scheme = url.split("://", 1)[0].split("+", 1)[0].lower()
    if scheme == "duckdb" or "://" not in url:
        return False
    from sitoo_sync.warehouse.dialects import has_session_locks

    return has_session_locks("postgresql" if scheme == "postgres" else scheme)


def drop_schema(url: str, schema: str) -> None:
    """Drop a server target's schema and everything in it (a benchmark's or test's own)."""
    from sitoo_sync.warehouse.sqla import SqlWarehouse

    warehouse = SqlWarehouse(url, schema=schema)
    try:
        warehouse.drop_schema()
    finally:
        warehouse.close()


def open_warehouse(url: str, *, schema: str | None = None, read_only: bool = False) -> Warehouse:
    """The warehouse for a target URL; a driver is imported only when it is needed.

    `duckdb:///file` takes the native DuckDB path (Arrow bulk loads); every other URL goes
    through SQLAlchemy. A local file's directory must exist already. `read_only` opens a
    DuckDB file for reading only (a server target is only read by what the caller does).
    """
    scheme = url.split("://", 1)[0].lower()
    check_local_target(url)
    if scheme == "duckdb":
        from sitoo_sync.warehouse.duckdb import DuckDBWarehouse

        if schema:
            raise ConfigError("SITOO_TARGET_SCHEMA: not supported for DuckDB targets")
        return DuckDBWarehouse(url, read_only=read_only)
    if "://" not in url:
        raise ConfigError(f"SITOO_TARGET_URL: not a URL: {url!r}")
    if local_path(url) is None and url.split("://", 1)[1].split("?", 1)[0].count("@") > 1:
        # The host would be what follows the password's @, so the driver's error would
        # name the password's tail: refused, and not quoted.
        raise ConfigError(
            "SITOO_TARGET_URL: more than one @ before the host: an @ in the user name or "
            "password is written %40 (the URL is not shown here, as it holds the password)"
        )
    from sitoo_sync.warehouse.sqla import SqlWarehouse

    return SqlWarehouse(url, schema=schema)


def open_existing_warehouse(
    url: str, *, schema: str | None = None, read_only: bool = False, hint: str = ""
) -> Warehouse:
    """A warehouse that must exist already (for `status`, `reset`, `verify`): a missing
    DuckDB or SQLite file is one clear error naming it, never a new empty file; `hint` says
    what to do about it."""
    path = check_local_target(url)
    if path is not None and not path.exists():
        raise WarehouseError(f"no warehouse at {path} yet{': ' + hint if hint else ''}")
    return open_warehouse(url, schema=schema, read_only=read_only)


def duckdb_file_has_table(path: Path, table: str) -> bool:
    """Whether the DuckDB file at `path` has a table `table`, read without writing to it; a
    file DuckDB cannot open (not a DuckDB file, or held by a writer) is a WarehouseError."""
    import duckdb

    try:
        with duckdb.connect(str(path), read_only=True) as con:
            found = con.execute(
                "SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [table]
            ).fetchone()
    except duckdb.Error as exc:
        raise WarehouseError(f"cannot read {path}: {str(exc).splitlines()[0]}") from None
    return bool(found and found[0])


def new_duckdb_file(path: Path, table: str, row: dict[str, object]) -> None:
    """A new DuckDB file at `path` holding `table` with the one row `row` (a file's mark)."""
    import duckdb

    columns = ", ".join(f'? AS "{name}"' for name in row)
    with duckdb.connect(str(path)) as con:
        con.execute(f'CREATE TABLE "{table}" AS SELECT {columns}', list(row.values()))
