"""Silence: registers that stopped closing, or stopped sending anything, for N days.

Measured against the data itself, not the wall clock: a warehouse that has not been synced
for a week is a sync problem (`sitoo-sync status` shows it), not a silent register. A
register's store is the store of its z-reports, or else of its journal receipts. A finding's
day is a local day in the register's zone (its z-reports' business_timezone, else its
receipts' timezone), as a z-report's business_date is.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sitoo_sync.verify.findings import Finding, Severity, store_of
from sitoo_sync.verify.source import Scope, Source, local_day, to_utc


@dataclass
class _Register:
    store: str | None = None
    zone: str | None = None
    last_report: datetime | None = None
    last_entry: datetime | None = None

    @property
    def last_seen(self) -> datetime | None:
        seen = [t for t in (self.last_report, self.last_entry) if t is not None]
        return max(seen) if seen else None


def _registers(source: Source) -> dict[str, _Register]:
    registers: dict[str, _Register] = defaultdict(_Register)
    for row in source.rows(
        "SELECT registerid, MAX(datecreated), MAX(COALESCE(NULLIF(store_id, ''), 'NO_STORE')), "
        "MAX(business_timezone) FROM {pos_z_reports} GROUP BY registerid"
    ):
        reg = registers[str(row[0])]
        reg.last_report, reg.store = to_utc(row[1]), str(row[2])
        reg.zone = None if row[3] is None else str(row[3])
    if source.has("journal_entries"):
        for row in source.rows(
            "SELECT registerid, MAX(datecreated) FROM {journal_entries} GROUP BY registerid"
        ):
            registers[str(row[0])].last_entry = to_utc(row[1])
    if source.has("journal_receipts"):
        for row in source.rows(
            "SELECT registerid, MAX(NULLIF(store_id, '')), MAX(timezone) FROM {journal_receipts} "
            "GROUP BY registerid"
        ):
            reg = registers[str(row[0])]
            reg.store = reg.store or (None if row[1] is None else str(row[1]))
            reg.zone = reg.zone or (None if row[2] is None else str(row[2]))
    return registers


def _days(later: datetime, earlier: datetime) -> int:
    return int((later - earlier).total_seconds() // 86400)


def silent_registers(source: Source, scope: Scope) -> Iterator[Finding]:
    """Journal activity with no z-report, or no data at all, for `scope.silent_days` days."""
    registers = _registers(source)
    store_last: dict[str, datetime] = {}
    for reg in registers.values():
        seen = reg.last_seen
        store = store_of(reg.store)
        if seen is not None and (store not in store_last or seen > store_last[store]):
            store_last[store] = seen
    limit = scope.silent_days
    for registerid, reg in sorted(registers.items()):
        store = store_of(reg.store)
        if scope.store and store != scope.store:
            continue
        seen = reg.last_seen
        if seen is None:
            continue
        if reg.last_entry is not None:
            since_report = reg.last_report
            gap = _days(reg.last_entry, since_report) if since_report else None
            if gap is None or gap >= limit:
                day = local_day(reg.last_entry, reg.zone)
                if scope.since is None or day >= scope.since:
                    last = f"{since_report:%Y-%m-%d %H:%M}Z" if since_report else "never"
                    yield Finding(
                        "silence",
                        Severity.WARNING,
                        f"journal activity until {reg.last_entry:%Y-%m-%d %H:%M}Z, but the "
                        f"last z-report is from {last}",
                        registerid=registerid,
                        store_id=store,
                        day=day,
                        actual=Decimal(gap) if gap is not None else None,
                    )
                continue
        newest = store_last[store]
        gap = _days(newest, seen)
        day = local_day(newest, reg.zone)
        if gap >= limit and (scope.since is None or day >= scope.since):
            yield Finding(
                "silence",
                Severity.WARNING,
                f"nothing since {seen:%Y-%m-%d %H:%M}Z, while store {store} has data until "
                f"{newest:%Y-%m-%d %H:%M}Z",
                registerid=registerid,
                store_id=store,
                day=day,
                actual=Decimal(gap),
            )
