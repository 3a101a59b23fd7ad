"""The one read path of verify: the same SQL text on DuckDB and on SQLAlchemy targets.

Queries name tables as `{pos_z_reports}` and parameters as `:name`; `Source` fills in the
qualified table names and binds the parameters the way each target wants. Money is never
summed as a floating value: `{cents(col)}` is an exact integer number of cents on every
target (SQLite keeps money as text, "40463.75", so its cents come from the digits), and
`Source` hands back Decimal. Rows are streamed in batches, so memory follows the result
width, not the table size; a query must be read to the end before the next one starts.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

from sitoo_sync.normalize.values import zone_named
from sitoo_sync.verify.findings import NO_STORE
from sitoo_sync.warehouse.base import Warehouse
from sitoo_sync.warehouse.views import Sql

_PARAM = re.compile(r"(?<![:\w]):([a-z_]+)")
_CENTS = re.compile(r"\{cents\(([a-z_.]+)\)\}")


def cents_to_money(value: Any) -> Decimal:
    """A sum of cents as money (NULL, an empty sum, is zero)."""
    return Decimal(int(value or 0)).scaleb(-2)


def to_decimal(value: Any) -> Decimal | None:
    """A money or count value as read from any target (SQLite money is exact text)."""
    if value is None or isinstance(value, Decimal):
        return value
    if isinstance(value, (bool, float)):
        raise TypeError(f"not an exact number: {value!r}")
    return Decimal(value) if isinstance(value, int) else Decimal(str(value))


def to_utc(value: Any) -> datetime | None:
    """A timestamp as read from any target, as an aware UTC datetime."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        raise TypeError(f"not a timestamp: {value!r}")
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def business_day(business_date: Any, created: Any) -> date | None:
    """A z-report's business day: its business_date, else the UTC day of `created`."""
    day = to_day(business_date)
    if day is not None:
        return day
    at = to_utc(created)
    return at.date() if at else None


def local_day(at: datetime, zone: str | None) -> date:
    """The calendar day of `at` in the IANA `zone` (UTC when missing or unknown); the UTC
    day where the local one is past 9999-12-31 (a timestamp column's last second, east of
    UTC), which no date holds."""
    try:
        return at.astimezone(zone_named(zone) or UTC).date()
    except OverflowError:
        return at.astimezone(UTC).date()


def to_day(value: Any) -> date | None:
    """A DATE as read from any target."""
    if value is None or (isinstance(value, date) and not isinstance(value, datetime)):
        return value
    if isinstance(value, datetime):
        return value.date()
    return date.fromisoformat(str(value)[:10])


@dataclass(frozen=True)
class Scope:
    """What to verify: z-reports of business days on or after `since`, of one store or all.

    A z-report's business day is its local day (`pos_z_reports.business_date`, a store
    z-report's `day_created`); a POS z-report loaded before business_date existed falls
    back to the UTC day of its `datecreated`.
    """

    since: date | None = None
    store: str | None = None
    silent_days: int = 3

    def since_at(self) -> datetime | None:
        """`since` as the UTC instant it starts."""
        return datetime.combine(self.since, time(), UTC) if self.since else None

    def where(self, alias: str) -> str:
        """A SQL condition on POS z-report rows `alias` (params: `params()`)."""
        parts = ["1 = 1"]
        if self.since:
            parts.append(
                f"({alias}.business_date >= :since_day OR ({alias}.business_date IS NULL "
                f"AND {alias}.datecreated >= :since))"
            )
        if self.store:
            parts.append(f"COALESCE(NULLIF({alias}.store_id, ''), '{NO_STORE}') = :store")
        return " AND ".join(parts)

    def params(self) -> dict[str, Any]:
        """The parameters `where()` names."""
        out: dict[str, Any] = {}
        if self.since:
            out["since"] = self.since_at()
            out["since_day"] = self.since
        if self.store:
            out["store"] = self.store
        return out


class Source:
    """Read-only access to one warehouse for the checks; use it inside a transaction."""

    def __init__(self, warehouse: Warehouse) -> None:
        self.warehouse = warehouse
        self.dialect = warehouse.capabilities.dialect
        self._tables = warehouse.table_names()
        self._sql = Sql(self.dialect, warehouse.qualified)
        warehouse.allow_big_reads()  # a year's time lines fit in memory, not the sync's cap

    def has(self, *tables: str) -> bool:
        """True when every one of `tables` exists in the warehouse."""
        return all(t in self._tables for t in tables)

    def knows_store(self, store: str) -> bool:
        """True when any POS or store z-report in the warehouse is of `store`."""
        checks = [("pos_z_reports", "COALESCE(NULLIF(store_id, ''), 'NO_STORE')")]
        checks.append(("store_z_reports", "store_id"))
        for table, column in checks:
            if self.has(table):
                sql = f"SELECT COUNT(*) FROM {{{table}}} WHERE {column} = :store"
                if int(next(iter(list(self.rows(sql, {"store": store}))))[0]):
                    return True
        return False

    def table(self, name: str) -> str:
        """The quoted, schema-qualified name of a table."""
        return self.warehouse.qualified(name)

    def cents(self, column: str) -> str:
        """An exact integer count of cents of a money column, on this target."""
        return self._sql.integer_cents(column)

    def sql(self, template: str) -> str:
        """`template` with `{cents(col)}` and `{table}` filled in for this target."""
        text = _CENTS.sub(lambda m: self.cents(m.group(1)), template)
        return text.format_map(_Tables(self))

    def rows(
        self, template: str, params: Mapping[str, Any] | None = None
    ) -> Iterator[tuple[Any, ...]]:
        """Stream the rows of a query; read them all before starting another."""
        sql = self.sql(template)
        named = set(_PARAM.findall(sql))
        values = {k: v for k, v in (params or {}).items() if k in named}
        return self.warehouse.stream(sql, values)


class _Tables(dict[str, str]):
    """format_map helper: any `{name}` becomes the qualified table name."""

    def __init__(self, source: Source) -> None:
        super().__init__()
        self._source = source

    def __missing__(self, key: str) -> str:
        return self._source.table(key)
