"""Silence: registers that stopped closing, or stopped sending anything, for N days.

Measured against the data itself, not the wall clock: a warehouse that has not been synced
for a week is a sync problem (`sitoo-sync status` shows it), not a silent register. A
register's store is the store of its latest z-report (one that moved is silent in its new
store), or else of its latest journal receipt, or else of its listing (cash_registers ->
warehouses -> stores, as v_registers derives it): a register the listing shows that never
sent anything is silent since the later of its store's first data and its first listing
(cash_registers.first_seen_at); one the listing no longer shows (missing_since, a register
taken out of service) is silent only until it left it, not for ever after. A register
with journal activity is silent once its takings
(receipts, cash events) have gone unclosed for N days: counted from the first after its last
z-report, so a store that reopens after a week shut is not silent on its first open day.
A finding's day is a local day in the register's zone, as
a z-report's business_date is: the business_timezone of its latest z-report that has a zone
other than the loader's 'UTC' fallback, else its latest receipt's timezone, else UTC.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from sitoo_sync.verify.findings import Finding, Severity, store_of
from sitoo_sync.verify.source import Scope, Source, local_day, to_utc


@dataclass
class _Register:
    store: str | None = None
    zone: str | None = None
    listed_only: bool = False  # in cash_registers, but no z-report, receipt or entry at all
    last_report: datetime | None = None
    last_entry: datetime | None = None
    first_seen: datetime | None = None  # its first data
    first_listed: datetime | None = None  # cash_registers.first_seen_at (listed_only ones)
    delisted: datetime | None = None  # cash_registers.missing_since: taken out of the listing
    # its first receipt or cash event after its last z-report: when its unclosed opening
    # began (None: none since, or no such tables, when it is its last z-report's time)
    unclosed: datetime | None = None

    def unclosed_since(self, *, takings: bool) -> datetime | None:
        """Since when its journal activity is unclosed: its first takings after its last
        z-report (with no receipt or cash tables, that z-report); never a z-report, its
        first entry; None when nothing came after its last z-report."""
        if self.last_report is None:
            return self.first_seen or self.last_entry
        return self.unclosed if takings else self.last_report

    @property
    def last_seen(self) -> datetime | None:
        seen = [t for t in (self.last_report, self.last_entry) if t is not None]
        return max(seen) if seen else None


def _registers(source: Source) -> dict[str, _Register]:
    registers: dict[str, _Register] = defaultdict(_Register)
    for row in source.rows(
        "SELECT registerid, MAX(datecreated), MIN(datecreated) FROM {pos_z_reports} "
        "GROUP BY registerid"
    ):
        reg = registers[str(row[0])]
        reg.last_report, reg.first_seen = to_utc(row[1]), to_utc(row[2])
    # the store of its latest z-report: a register that moved is silent in its new store
    every = "COALESCE(NULLIF(t.store_id, ''), 'NO_STORE')"
    for registerid, store in _latest(source, "pos_z_reports", every, lambda _a: "1 = 1"):
        registers[registerid].store = store
    for registerid, zone in _latest_zones(source, "pos_z_reports", "business_timezone"):
        registers[registerid].zone = zone
    _journal(source, registers)
    if source.has("cash_registers", "warehouses", "stores"):
        for row in source.rows(
            "SELECT c.registerid, COALESCE(st.externalid, 'NO_STORE'), c.missing_since, "
            "c.first_seen_at FROM {cash_registers} c "
            "LEFT JOIN {warehouses} w ON w.site_id = c.site_id AND w.warehouseid = c.warehouseid "
            "LEFT JOIN {stores} st ON st.site_id = w.site_id AND st.storeid = w.storeid"
        ):
            registerid, listed = str(row[0]), str(row[1])
            known = registers.get(registerid)
            if known is not None:
                # sent something, but no z-report or receipt names its store (journal
                # entries only): its listing's store, as v_registers derives it
                known.store = known.store or listed
                known.delisted = to_utc(row[2])
            elif row[2] is None:  # still listed, never sent anything
                registers[registerid] = _Register(
                    store=listed, listed_only=True, first_listed=to_utc(row[3])
                )
    return registers


def _journal(source: Source, registers: dict[str, _Register]) -> None:
    """Each register's first and last journal entry; the store and zone of its latest
    journal receipt where its z-reports give none."""
    if source.has("journal_entries"):
        for row in source.rows(
            "SELECT registerid, MAX(datecreated), MIN(datecreated) FROM {journal_entries} "
            "GROUP BY registerid"
        ):
            reg = registers[str(row[0])]
            reg.last_entry = to_utc(row[1])
            first = to_utc(row[2])
            if first is not None and (reg.first_seen is None or first < reg.first_seen):
                reg.first_seen = first
    _unclosed(source, registers)
    if source.has("journal_receipts"):
        for registerid, store in _latest(source, "journal_receipts", "t.store_id", _has_store):
            reg = registers[registerid]
            reg.store = reg.store or store
        for registerid, zone in _latest_zones(source, "journal_receipts", "timezone"):
            reg = registers[registerid]
            reg.zone = reg.zone or zone


#: The journal's takings and cash: what a z-report closes (logins, printouts ... are not).
_TAKINGS = ("journal_receipts", "journal_cash_events")


def _unclosed(source: Source, registers: dict[str, _Register]) -> None:
    """Each register's first receipt or cash event after its last z-report, if any.

    Its unclosed opening begins there, not at the last closing: a store shut for a week
    that opened again this morning has had no z-report for a week, but nothing unclosed for
    more than hours."""
    if not source.has(*_TAKINGS):
        return
    for table in _TAKINGS:
        for row in source.rows(
            f"SELECT e.registerid, MIN(e.datecreated) FROM {{{table}}} e "
            "JOIN (SELECT registerid, MAX(datecreated) AS last_at FROM {pos_z_reports} "
            "GROUP BY registerid) z ON z.registerid = e.registerid "
            "WHERE e.datecreated > z.last_at GROUP BY e.registerid"
        ):
            reg, at = registers[str(row[0])], to_utc(row[1])
            if at is not None and (reg.unclosed is None or at < reg.unclosed):
                reg.unclosed = at


def _has_store(alias: str) -> str:
    return f"{alias}.store_id IS NOT NULL AND {alias}.store_id <> ''"


def _latest_zones(source: Source, table: str, column: str) -> Iterator[tuple[str, str]]:
    """(registerid, zone) of each register's latest row of `table` with a zone in `column`.

    'UTC' does not count: it is what a z-report's business_timezone falls back to when no
    zone was known at load, so one such report must not outvote the register's real zone.
    """

    def named(alias: str) -> str:
        return f"{alias}.{column} IS NOT NULL AND {alias}.{column} NOT IN ('', 'UTC')"

    yield from _latest(source, table, f"t.{column}", named)


def _latest(
    source: Source, table: str, value: str, where: Callable[[str], str]
) -> Iterator[tuple[str, str]]:
    """(registerid, `value`) of each register's latest row `t` of `table` (by datecreated)
    among the rows `where(alias)` holds of; of rows of one second, the greatest value."""
    sql = (
        f"SELECT t.registerid, MAX({value}) FROM {{{table}}} t JOIN (SELECT u.registerid, "
        f"MAX(u.datecreated) AS latest FROM {{{table}}} u WHERE {where('u')} "
        f"GROUP BY u.registerid) l ON l.registerid = t.registerid AND l.latest = t.datecreated "
        f"WHERE {where('t')} GROUP BY t.registerid"
    )
    for row in source.rows(sql):
        if row[1] is not None:
            yield str(row[0]), str(row[1])


def _days(later: datetime, earlier: datetime) -> int:
    return int((later - earlier).total_seconds() // 86400)


def silent_registers(source: Source, scope: Scope) -> Iterator[Finding]:
    """Journal activity with no z-report, or no data at all, for `scope.silent_days` days.

    `actual` is the days silent: since its first receipt or cash event after its last
    z-report (a register that never sent one: since its first journal entry) until its last
    journal entry, or since its last data until its store's newest.
    """
    registers = _registers(source)
    store_last: dict[str, datetime] = {}
    store_first: dict[str, datetime] = {}
    store_zone: dict[str, str] = {}
    for reg in registers.values():
        seen, first = reg.last_seen, reg.first_seen
        store = store_of(reg.store)
        if seen is not None and (store not in store_last or seen > store_last[store]):
            store_last[store] = seen
        if first is not None and (store not in store_first or first < store_first[store]):
            store_first[store] = first
        if reg.zone:
            store_zone.setdefault(store, reg.zone)
    limit = scope.silent_days
    for registerid, reg in sorted(registers.items()):
        store = store_of(reg.store)
        if scope.store and store != scope.store:
            continue
        if reg.listed_only:
            yield from _never_reported(
                registerid,
                store,
                scope,
                first=store_first.get(store),
                listed=reg.first_listed,
                newest=store_last.get(store),
                zone=store_zone.get(store),
            )
            continue
        seen = reg.last_seen
        if seen is None:
            continue
        if reg.last_entry is not None:
            since_report = reg.last_report
            start = reg.unclosed_since(takings=source.has(*_TAKINGS))
            gap = -1 if start is None else _days(reg.last_entry, start)
            if start is not None and gap >= limit:
                last = f"{since_report:%Y-%m-%d %H:%M}Z" if since_report else "never"
                yield from _silence(
                    registerid,
                    store,
                    scope,
                    gap=gap,
                    day=local_day(reg.last_entry, reg.zone),
                    details=f"journal activity from {start:%Y-%m-%d %H:%M}Z until "
                    f"{reg.last_entry:%Y-%m-%d %H:%M}Z, but the last z-report is from {last}",
                )
                continue
        newest = store_last[store]
        if reg.delisted is not None and reg.delisted < newest:
            newest = reg.delisted  # decommissioned: silent only until it left the listing
        yield from _silence(
            registerid,
            store,
            scope,
            gap=_days(newest, seen),
            day=local_day(newest, reg.zone),
            details=f"nothing since {seen:%Y-%m-%d %H:%M}Z, while store {store} has data until "
            f"{newest:%Y-%m-%d %H:%M}Z",
        )


def _silence(
    registerid: str, store: str, scope: Scope, *, gap: int, day: date, details: str
) -> Iterator[Finding]:
    """A silence finding of `gap` days on `day`, when that is `scope.silent_days` or more
    and `day` is within `scope.since`."""
    if gap >= scope.silent_days and (scope.since is None or day >= scope.since):
        yield Finding(
            "silence",
            Severity.WARNING,
            details,
            registerid=registerid,
            store_id=store,
            day=day,
            actual=Decimal(gap),
        )


def _never_reported(
    registerid: str,
    store: str,
    scope: Scope,
    *,
    first: datetime | None,
    listed: datetime | None,
    newest: datetime | None,
    zone: str | None,
) -> Iterator[Finding]:
    """A listed register with no data at all, while its store's others have had data for
    `scope.silent_days` days or more since it was first listed: silent since the later of
    its store's first data and its first listing (a register installed today is not silent;
    in a first backfill it is first listed about when the newest data is)."""
    if first is None or newest is None:
        return  # no other register of its store has data: nothing to measure against
    since = max(first, listed) if listed is not None else first
    yield from _silence(
        registerid,
        store,
        scope,
        gap=_days(newest, since),
        day=local_day(newest, zone),
        details=f"listed in cash_registers but never sent a z-report or journal entry since "
        f"{since:%Y-%m-%d %H:%M}Z (listed, or store {store}'s first data if later), while "
        f"the store has data until {newest:%Y-%m-%d %H:%M}Z",
    )
