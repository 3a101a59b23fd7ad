"""Table declarations: the one place a warehouse table's columns, types and keys are named.

A `Table` is what normalization produces rows for and what every warehouse backend creates.
Column kinds are logical; each backend maps them to its own types (DuckDB native, SQLAlchemy
per dialect). Adding a field the API starts sending is one `Column(...)` line here.

Every table and column carries a `description`: the vendor's meaning where documented, ours
where not, with units and sign conventions. It is the data dictionary: written into the
database as comments (warehouse/comments.py) and rendered as docs/tables.md and a dbt
sources.yml (dictionary.py), so it is declared here, beside the column, and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum

#: The longest text a key column holds: MySQL and SQL Server cannot index unbounded text,
#: so every target declares text keys VARCHAR(255) (warehouse/sql_types.py), and a longer
#: key is a reject, not a load that fails every tick.
KEY_TEXT_LENGTH = 255


class Kind(StrEnum):
    """Logical column types; backends map each to a physical type."""

    TEXT = "text"
    INT = "int"  # 64-bit integer
    BOOL = "bool"
    MONEY = "money"  # DECIMAL(18,2), from a money string "123.45"
    DECIMAL = "decimal"  # DECIMAL(18,3): quantities, VAT and tax rates
    TIMESTAMP = "timestamp"  # UTC instant, from Unix seconds
    DATE = "date"
    JSON = "json"  # native JSON where the target has it, text otherwise


@dataclass(frozen=True)
class Column:
    """One column: its name (the API's field name where there is one), kind, nullability,
    and what it means."""

    name: str
    kind: Kind
    nullable: bool = True
    description: str = ""
    #: Personal data (a customer's contact, an address, a national id, free text): stored
    #: only as SITOO_PERSONAL_DATA says (normalize/personal.py).
    personal: bool = False


@dataclass(frozen=True)
class Table:
    """A warehouse table: columns in order, the natural key, and the parent key if a child.

    A child table's rows are replaced as a set whenever its parent is loaded again, so
    `parent_key` names the columns (a prefix of `key`) that identify the parent.

    `replace_group` names columns that identify what a row *stands for* when its key may
    change (a store and day, for store z-reports): a loaded row supersedes any other row
    of the same group, which is deleted with its children.
    """

    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    parent_key: tuple[str, ...] = ()
    replace_group: tuple[str, ...] = ()
    keep_on_update: tuple[str, ...] = ()  # columns an upsert leaves as they were (first_seen_at)
    description: str = ""
    column_names: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        names = tuple(c.name for c in self.columns)
        object.__setattr__(self, "column_names", names)
        missing = [k for k in (*self.key, *self.parent_key, *self.replace_group) if k not in names]
        if missing:
            raise ValueError(f"table {self.name}: key columns {missing} are not declared")
        if len(set(names)) != len(names):
            raise ValueError(f"table {self.name}: duplicate column names")

    @property
    def is_child(self) -> bool:
        """True when rows are replaced as a set per parent."""
        return bool(self.parent_key)

    def column(self, name: str) -> Column:
        """The declared column called `name`."""
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(f"{self.name}.{name}")


def text(
    name: str, description: str = "", *, nullable: bool = True, personal: bool = False
) -> Column:
    """A TEXT column (`personal`: minimized, see normalize/personal.py)."""
    return Column(name, Kind.TEXT, nullable, description, personal)


def integer(name: str, description: str = "", *, nullable: bool = True) -> Column:
    """A 64-bit INT column."""
    return Column(name, Kind.INT, nullable, description)


def boolean(name: str, description: str = "", *, nullable: bool = True) -> Column:
    """A BOOLEAN column."""
    return Column(name, Kind.BOOL, nullable, description)


def money(name: str, description: str = "") -> Column:
    """A DECIMAL(18,2) money column."""
    return Column(name, Kind.MONEY, True, description)


def decimal(name: str, description: str = "") -> Column:
    """A DECIMAL(18,3) column for rates and quantities."""
    return Column(name, Kind.DECIMAL, True, description)


def timestamp(name: str, description: str = "", *, nullable: bool = True) -> Column:
    """A UTC timestamp column."""
    return Column(name, Kind.TIMESTAMP, nullable, description)


def day(name: str, description: str = "", *, nullable: bool = True) -> Column:
    """A DATE column, from an ISO date string."""
    return Column(name, Kind.DATE, nullable, description)


def json_column(name: str, description: str = "", *, personal: bool = False) -> Column:
    """A JSON column (`personal`: minimized, see normalize/personal.py)."""
    return Column(name, Kind.JSON, True, description, personal)


#: Load metadata: every stream table stores these after its declared columns. Normalizers
#: never produce them; the commit that writes a row stamps them (warehouse/load.py), and an
#: upsert overwrites them, so they always say which commit and which run last wrote the row.
LOADED_AT = "_loaded_at"
RUN_ID = "_run_id"
LOAD_METADATA: tuple[Column, ...] = (
    Column(
        LOADED_AT,
        Kind.TIMESTAMP,
        True,
        "When the commit that last wrote this row ran (UTC): a row read again is stamped "
        "again. NULL only on rows loaded before the column existed. Ours.",
    ),
    Column(
        RUN_ID,
        Kind.TEXT,
        True,
        "The run (one tick of one stream in one process) that last wrote this row: "
        "sync_runs.run_id. NULL only on rows loaded before the column existed. Ours.",
    ),
)


def with_load_metadata(table: Table) -> Table:
    """`table` as stored: its declared columns followed by LOAD_METADATA (once)."""
    if any(c.name == LOADED_AT for c in table.columns):
        return table
    return replace(table, columns=(*table.columns, *LOAD_METADATA))
