"""The simulator's world: sites, stores, registers and their z-reports, from a seed.

Every z-report adds up the way a real one does: VAT groups and product groups sum to the
sales totals, payments (and card sub-payments) to what was paid, the cash drawer to what
was counted, and grand totals run on per register. Money is kept in integer cents and
written as the vendor's money strings; no float is involved.

The world changes only through methods (`add_new_reports`, `add_burst`, `add_late_report`,
`add_register`, `retire_register`), all under one lock, so tests and the HTTP server see a
consistent state.
"""

from __future__ import annotations

import bisect
import json
import random
import threading
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sitoo_sync.simulator.chain import (
    PRODUCT_GROUPS,
    STAFF,
    STORES,
    TIME_ZONE,
    Register,
    ZReport,
    guid,
)
from sitoo_sync.simulator.config import SimConfig
from sitoo_sync.simulator.journal import Journal
from sitoo_sync.simulator.lazy_journal import LazyJournal
from sitoo_sync.simulator.money import cents, money, net_of, receipt_payments
from sitoo_sync.simulator.rest_v2.catalog import GROUPS, register_warehouseid
from sitoo_sync.simulator.store_reports import NO_STORE, mismatch, store_reports


def group_vats(eshopid: int) -> dict[str, int]:
    """VAT % per product group on a site, as its catalogue's product groups charge it
    (rest_v2/catalog.py: Swedish rates on site 1, Norwegian ones on the others)."""
    return {name: se if eshopid == 1 else no for name, se, no in GROUPS}


class World:
    """Everything the simulator serves; thread-safe."""

    def __init__(self, config: SimConfig | None = None) -> None:
        self.config = config or SimConfig()
        self.rng = random.Random(self.config.seed)
        self.lock = threading.RLock()
        self.registers: list[Register] = []
        self._reports: list[ZReport] = []  # sorted by dateadded
        self._times: list[int] = []  # dateadded of each, for bisect
        self._by_key: dict[tuple[str, int], ZReport] = {}
        self._withheld: list[ZReport] = []  # made and journaled, never uploaded
        self._retired: set[str] = set()  # registerids `/cashregisters` no longer lists
        self._count = 0
        # "active", "inactive" (config says aggregation_active: false) or "missing" (404)
        self.aggregation = "active"
        self.aggregation_hour = 22
        self.store_versions: dict[tuple[str, str], int] = {}
        self.journal: Journal = Journal(self)
        self._build_registers()
        if self.config.lazy_journal_size:
            self.journal = LazyJournal(self)
        self._build_history()

    # ---- construction -----------------------------------------------------------------

    def _build_registers(self) -> None:
        n = 0
        for store_id, _name, _city, _cur, eshopid in STORES:
            for _ in range(self.config.registers_per_store):
                n += 1
                self.registers.append(self._new_register(n, store_id, eshopid))
        # One register was never given a store: its reports aggregate to NO_STORE.
        n += 1
        orphan = self._new_register(n, None, 1)
        orphan.registerkey = ""  # never registered with the tax authority
        self.registers.append(orphan)

    def _new_register(self, n: int, store_id: str | None, eshopid: int) -> Register:
        rid = guid(self.rng)
        return Register(
            registerid=rid,
            registerkey=f"SII{1500000 + n:013d}",
            registernumber=n,
            store_id=store_id,
            eshopid=eshopid,
            manufacturerid="SITOO" + rid.strip("{}").replace("-", ""),
        )

    def _build_history(self) -> None:
        end = self.config.now - 3600
        if self.config.max_reports is not None:
            per_day = len(self.registers)
            self.config.days = -(-self.config.max_reports // per_day) + 1
        start_day = datetime.fromtimestamp(end, UTC).date() - timedelta(days=self.config.days)
        for d in range(self.config.days + 1):  # through the day of `end`
            day = start_day + timedelta(days=d)
            for reg in self.registers:
                closed = int(
                    datetime(day.year, day.month, day.day, 19, 0, tzinfo=UTC).timestamp()
                ) + self.rng.randint(0, 7200)
                if closed > end:
                    continue
                if self.config.max_reports is not None and self._count >= self.config.max_reports:
                    return
                last_days = self.config.days - d  # 0 on the last day
                if reg is self._nth(2) and last_days < self.config.dark_register_days:
                    continue  # the register is dark: no closing, no journal
                # Most registers upload within a minute; an offline one uploads hours later.
                delay = self.rng.randint(1, 60) if self.rng.random() > 0.05 else 6 * 3600
                report = self.make_report(reg, closed, min(closed + delay, end))
                withheld = (
                    self.config.inject_missing_report
                    and reg is self._nth(0)
                    and report.body["zreportid"] == 3
                ) or (reg is self._nth(1) and last_days < self.config.silent_register_days)
                if withheld:
                    self._withheld.append(report)
                else:
                    self._insert(report)

    def _nth(self, index: int) -> Register | None:
        """The register an injected anomaly happens to (None when there are fewer)."""
        return self.registers[index] if index < len(self.registers) else None

    def withheld_reports(self) -> list[ZReport]:
        """Closings that happened (their journal days exist) but were never uploaded."""
        with self.lock:
            return list(self._withheld)

    def site_ids(self) -> list[int]:
        """Every eshop id that has registers."""
        return sorted({r.eshopid for r in self.registers})

    def register_bodies(self, site: int, include_unregistered: bool) -> list[dict[str, Any]]:
        """`posregister` objects of one site, as `/cashregisters` lists them."""
        out = []
        for reg in self.registers:
            if reg.eshopid != site or (not reg.registerkey and not include_unregistered):
                continue
            if reg.registerid in self._retired:
                continue
            store = next((s for s in STORES if s[0] == reg.store_id), None)
            out.append(
                {
                    "registerid": reg.registerid,
                    "manufacturerid": reg.manufacturerid,
                    "registerkey": reg.registerkey,
                    "company": "Sitoo Demo Retail AB",
                    "companyid": "556677-8899",
                    "address": "Drottninggatan 1",
                    "address2": "",
                    "zip": store[2].split(" ", 2)[0] if store else "",
                    "city": store[2].rsplit(" ", 1)[-1] if store else "",
                    "state": "",
                    "countryid": "no" if store and store[3] == "NOK" else "se",
                    "currencycode": store[3] if store else "SEK",
                    "receiptlanguagetag": "sv",
                    "storesettingid": 1,
                    # the warehouse its orders are registered to: its store's, or for a
                    # register without a store the site's storeless one (see rest_v2)
                    "warehouseid": register_warehouseid(reg.eshopid, reg.store_id),
                    "salestaxgroupid": None,
                }
            )
        return out

    # ---- report generation ------------------------------------------------------------

    def make_report(self, reg: Register, closed: int, dateadded: int) -> ZReport:
        """A consistent z-report for `reg`, closed at `closed`, uploaded at `dateadded`."""
        rng = self.rng
        self._count += 1
        store = next((s for s in STORES if s[0] == reg.store_id), None)
        currency = store[3] if store else "SEK"
        vats = group_vats(reg.eshopid)  # the site's rates: an Oslo store charges Norway's
        sales_groups = self._groups(rng.randint(3, 40), vats)
        refund_groups = self._groups(rng.randint(1, 3), vats) if rng.random() < 0.3 else {}
        sales = sum(g[0] for g in sales_groups.values())
        refund = sum(g[0] for g in refund_groups.values())
        discount = sales * rng.randint(0, 8) // 100
        # The payment sections add up the day's receipts' payments, as a POS's z-report does
        # (the journal writes these receipts, see journal.py): a receipt per product group.
        paid = [receipt_payments(rng, g[0], refund=False) for g in sales_groups.values()]
        paid += [receipt_payments(rng, g[0], refund=True) for g in refund_groups.values()]
        sales_paid = _by_name(paid[: len(sales_groups)])
        refund_paid = _by_name(paid[len(sales_groups) :])
        # Cash rounding: what customers hand over in cash is rounded, so the report's cash
        # payment carries the day's roundoff (a cent either way, some days) beside the
        # receipts' cash, and the payments add up to moneysummarytotal.
        roundoff = rng.choice((0, 0, 0, -1, 1)) if "Cash" in sales_paid else 0
        if roundoff:
            sales_paid["Cash"] += roundoff
        cash_part = sales_paid.get("Cash", 0)
        card = sales_paid.get("Card", 0)
        visa = card * rng.randint(40, 80) // 100
        cash_refund = refund_paid.get("Cash", 0)
        practice = rng.random() < 0.15  # a training receipt in the journal (see journal.py)
        cash_in = 500000
        petty = -rng.randint(0, 20000) if rng.random() < 0.2 else 0
        bank = -rng.randint(100000, 400000) if rng.random() < 0.3 else 0
        salesrefunds = cash_part - cash_refund
        expected = cash_in + salesrefunds + petty + bank
        off = rng.randint(-500, 500) if rng.random() < 0.2 else 0
        counted = expected + (off if self.config.cash_differences else 0)
        bankfinal = -(max(counted - cash_in, 0)) if rng.random() < 0.5 else 0
        if self.config.inject_grand_total_jump and reg is self._nth(0) and reg.next_zreportid == 5:
            reg.grand_sales += 10000  # a grand total that does not continue
        reg.grand_sales += sales
        reg.grand_refund += refund
        reg.next_zreportid += 1
        payments = [_payment(name, amount, visa) for name, amount in sales_paid.items()]
        body: dict[str, Any] = {
            "zreportid": reg.next_zreportid - 1,
            "registerid": reg.registerid,
            "manufacturerid": reg.manufacturerid,
            "registerkey": reg.registerkey,
            "registernumber": reg.registernumber,
            "datecreated": closed,
            "dateopened": closed - rng.randint(8, 11) * 3600 if rng.random() > 0.05 else None,
            "dateadded": dateadded,
            "eshopid": reg.eshopid,
            "store_id": reg.store_id,
            "store_name": store[1] if store else None,
            "company": "Sitoo Demo Retail AB",
            "companyid": "556677-8899",
            "address": "Drottninggatan 1",
            "address2": "",
            "address3": store[2] if store else "",
            "currencycode": currency,
            "staff": rng.choice(STAFF),
            "staffuserid": guid(rng),
            "comment": "",
            "moneysalestotal": money(sales),
            "moneysalestotalnet": money(sum(g[1] for g in sales_groups.values())),
            # The journal writes one receipt per product group sold (and refunded).
            "numsales": len(sales_groups),
            "numsalesitems": sum(g[2] for g in sales_groups.values()),
            "vatgroupssales": self._vat_groups(sales_groups, vats),
            "productgroupssales": self._product_groups(sales_groups, vats),
            "moneysalesnotdeliveredtotal": "0.00",
            "moneysalesnotdeliveredtotalnet": "0.00",
            "numsalesnotdelivered": 0,
            "numsalesnotdelivereditems": 0,
            "vatgroupssalesnotdelivered": [],
            "productgroupssalesnotdelivered": [],
            "moneyrefundtotal": money(refund),
            "moneyrefundtotalnet": money(sum(g[1] for g in refund_groups.values())),
            "numrefund": len(refund_groups),
            "numrefunditems": sum(g[2] for g in refund_groups.values()),
            "vatgroupsrefund": self._vat_groups(refund_groups, vats),
            "productgroupsrefund": self._product_groups(refund_groups, vats),
            "moneyroundoff": money(roundoff),
            "salestaxessales": [],
            "salestaxesrefund": [],
            "moneysalestaxinadvance": "0.00",
            "moneysummarysales": money(sales),
            "moneysummaryrefund": money(refund),
            "moneysummarysubtotal": money(sales - refund),
            "moneysummarysalestax": "0.00",
            "moneysummaryroundoff": money(roundoff),
            "moneysummarytotal": money(sales - refund + roundoff),
            "paymentssales": payments,
            "paymentsrefund": [_payment(name, amount, 0) for name, amount in refund_paid.items()],
            "discountssales": (
                [
                    {
                        "vouchercode": rng.choice(("", "discount-manual", "3FOR2")),
                        "moneytotal": money(discount),
                        "moneytotalnet": money(net_of(discount, 25)),
                        "moneytotalvat": money(discount - net_of(discount, 25)),
                    }
                ]
                if discount
                else []
            ),
            "discountssalesnotdelivered": [],
            "discountsrefund": [],
            "moneycash_in": money(cash_in),
            "moneycash_salesrefunds": money(salesrefunds),
            "moneycash_petty": money(petty),
            "moneycash_bank": money(bank),
            "moneycash_expected": money(expected),
            "moneycash_counted": money(counted),
            "moneycash_diff": money(counted - expected),
            "moneycash_bankfinal": money(bankfinal),
            "moneycash_out": money(counted + bankfinal),
            "moneydiscount": money(discount),
            "numsalestypeproduct": sum(g[2] for g in sales_groups.values()),
            "numsalestypeservice": 0,
            "numsalestypegiftcard": 0,
            "numreceipts": len(sales_groups) + len(refund_groups),
            "numopendrawer": rng.randint(0, 4),
            "numpractice": 1 if practice else 0,
            "moneypractice": "100.00" if practice else "0.00",
            "currencyconversions": (
                [{"currencycode": "EUR", "moneycounted": money(rng.randint(0, 50000))}]
                if currency == "NOK" and rng.random() < 0.5
                else []
            ),
            "moneygrandtotalsales": money(reg.grand_sales),
            "moneygrandtotalrefund": money(reg.grand_refund),
            "moneygrandtotalnet": money(reg.grand_sales - reg.grand_refund),
        }
        every = self.config.unknown_field_every
        if every and self._count % every == 0:
            body["moneybagid"] = f"BAG-{rng.randint(1000, 9999)}"  # documented, name unknown
        valid, made = True, None
        bad = self.config.malformed_every
        if bad and self._count % bad == 0:
            valid, made = False, dict(body)  # only top-level fields are corrupted
            if self._count % 2:
                body["moneysalestotal"] += "5"  # a third decimal: a fraction of a cent
            else:
                del body["registerid"]
        return ZReport(body=body, valid=valid, receipt_payments=paid, made=made)

    def _groups(self, n_items: int, vats: dict[str, int]) -> dict[str, tuple[int, int, int]]:
        """Gross cents, net cents and item count per product group for `n_items` items, at
        the site's VAT rates `vats`."""
        groups: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
        for _ in range(n_items):
            name, _se = self.rng.choice(PRODUCT_GROUPS)
            vat = vats[name]
            gross = self.rng.randint(49, 2999) * 100 + self.rng.choice((0, 50, 90, 95))
            groups[name][0] += gross
            groups[name][1] += net_of(gross, vat)
            groups[name][2] += 1
        return {k: (v[0], v[1], v[2]) for k, v in groups.items()}

    @staticmethod
    def _vat_groups(
        groups: dict[str, tuple[int, int, int]], vats: dict[str, int]
    ) -> list[dict[str, Any]]:
        by_vat: dict[int, list[int]] = defaultdict(lambda: [0, 0])
        for name, (gross, net, _count) in groups.items():
            by_vat[vats[name]][0] += gross
            by_vat[vats[name]][1] += net
        return [
            {
                "vatvalue": vat,
                "moneytotal": money(g),
                "moneytotalnet": money(n),
                "moneytotalvat": money(g - n),
            }
            for vat, (g, n) in sorted(by_vat.items())
        ]

    @staticmethod
    def _product_groups(
        groups: dict[str, tuple[int, int, int]], vats: dict[str, int]
    ) -> list[dict[str, Any]]:
        return [
            {
                "name": name,
                "vatvalue": vats[name],
                "numtotal": count,
                "moneytotal": money(g),
                "moneytotalnet": money(n),
                "moneytotalvat": money(g - n),
            }
            for name, (g, n, count) in groups.items()
        ]

    # ---- storage ----------------------------------------------------------------------

    def _insert(self, report: ZReport) -> ZReport:
        report.encoded = json.dumps(report.body, separators=(",", ":")).encode()
        i = bisect.bisect_right(self._times, report.dateadded)
        self._times.insert(i, report.dateadded)
        self._reports.insert(i, report)
        rid, zid = report.body.get("registerid"), report.body.get("zreportid")
        if isinstance(rid, str) and isinstance(zid, int):
            self._by_key[(rid, zid)] = report
        return report

    # ---- changes between ticks --------------------------------------------------------

    def add_new_reports(self, count: int, *, dateadded: int | None = None) -> list[ZReport]:
        """`count` new reports uploaded now (or at `dateadded`), across the registers."""
        with self.lock:
            at = dateadded if dateadded is not None else self.config.now
            out = []
            for i in range(count):
                reg = self.registers[i % len(self.registers)]
                out.append(self._insert(self.make_report(reg, at - 600, at)))
            return out

    def add_register(self, store_id: str | None = "200", eshopid: int = 1) -> Register:
        """A new register appears (and will be listed from now on)."""
        with self.lock:
            reg = self._new_register(len(self.registers) + 1, store_id, eshopid)
            self.registers.append(reg)
            return reg

    def retire_register(self, registerid: str) -> None:
        """The register is taken out of use and deleted: `/cashregisters` no longer lists
        it, while what it uploaded stays (its z-reports, its journal), and what it still
        had queued may yet arrive (`make_report` and `add_report` still make its reports)."""
        with self.lock:
            self._retired.add(registerid)

    def add_report(self, report: ZReport) -> ZReport:
        """Make `report` (e.g. from `make_report`) visible from now on."""
        with self.lock:
            return self._insert(report)

    def add_burst(self, count: int, at: int) -> list[ZReport]:
        """A bulk import: `count` reports all uploaded in the one second `at`."""
        return self.add_new_reports(count, dateadded=at)

    def add_late_report(self, dateadded: int) -> ZReport:
        """A report that becomes visible only now although its `dateadded` is in the past."""
        with self.lock:
            reg = self.rng.choice(self.registers)
            return self._insert(self.make_report(reg, dateadded - 300, dateadded))

    def advance_clock(self, seconds: int) -> int:
        """Move the world's `now` forward; returns the new now."""
        with self.lock:
            self.config.now += seconds
            return self.config.now

    # ---- queries (what the endpoints serve) -------------------------------------------

    def pos_z_reports(
        self,
        *,
        date_from: int | None,
        date_to: int | None,
        registerids: set[str] | None,
        store_ids: set[str] | None,
        eshopids: set[int] | None,
        limit: int,
    ) -> list[ZReport]:
        """Reports filtered like `/pos-z-reports`, ascending by dateadded, at most `limit`.

        Reports sharing one second come back in a fresh random order on every call (or, as
        `same_second_order` says, in the order they were added): the contract leaves that
        order unspecified, and a client must not depend on it.
        """
        with self.lock:
            lo = 0 if date_from is None else bisect.bisect_left(self._times, date_from)
            hi = len(self._times) if date_to is None else bisect.bisect_right(self._times, date_to)
            out: list[ZReport] = []
            i = lo
            while i < hi and len(out) < limit:
                j = bisect.bisect_right(self._times, self._times[i], i, hi)
                group = [
                    r for r in self._reports[i:j] if _matches(r, registerids, store_ids, eshopids)
                ]
                if self.config.same_second_order == "shuffled":
                    self.rng.shuffle(group)
                out.extend(group)
                i = j
            return out[:limit]

    def pos_z_report(self, registerid: str, zreportid: int) -> ZReport | None:
        """One report by key."""
        with self.lock:
            return self._by_key.get((registerid, zreportid))

    def all_reports(self) -> list[ZReport]:
        """Every report, ascending by dateadded."""
        with self.lock:
            return list(self._reports)

    def expected_sales_by_store(self) -> dict[str | None, str]:
        """The simulator's own truth: sum of moneysalestotal per store, valid reports only."""
        totals: dict[str | None, int] = defaultdict(int)
        for r in self.all_reports():
            if r.valid:
                totals[r.body["store_id"]] += cents(r.body["moneysalestotal"])
        return {k: money(v) for k, v in totals.items()}

    def valid_keys(self) -> set[tuple[str, int]]:
        """Keys of every valid report."""
        return {(r.body["registerid"], r.body["zreportid"]) for r in self.all_reports() if r.valid}

    # ---- store z-reports (aggregates of the POS z-reports per store and day) ----------

    def store_day(self, report: ZReport) -> str:
        """The aggregation day of a report: its `datecreated` in the configured zone."""
        zone = ZoneInfo(TIME_ZONE)
        return datetime.fromtimestamp(report.body["datecreated"], zone).date().isoformat()

    def store_config(self) -> dict[str, Any]:
        """The `/store-z-reports/config` answer."""
        return {
            "aggregation_active": self.aggregation == "active",
            "hour_of_day": self.aggregation_hour,
            "time_zone": TIME_ZONE,
        }

    def day_aggregated(self, day: str) -> bool:
        """True once the simulated aggregation for `day` has run (at the hour, that day)."""
        zone = ZoneInfo(TIME_ZONE)
        now = datetime.fromtimestamp(self.config.now, zone)
        ran = now.date() if now.hour >= self.aggregation_hour else now.date() - timedelta(days=1)
        return day <= ran.isoformat()

    def reaggregate(self, store: str, day: str) -> None:
        """Re-run the aggregation of `store` on `day`: the report comes back with a new id."""
        with self.lock:
            self.store_versions[(store, day)] = self.store_versions.get((store, day), 0) + 1

    def store_z_reports(
        self, day: str | None, store_ids: set[str] | None, *, limit: int | None
    ) -> list[dict[str, Any]]:
        """Store z-reports: one per store and day, newest day first, at most `limit`."""
        with self.lock:
            out = store_reports(
                self._reports,
                day_of=self.store_day,
                aggregated=self.day_aggregated,
                versions=self.store_versions,
                day=day,
                store_ids=store_ids,
            )
            first = self._nth(0)
            if self.config.inject_store_mismatch and first is not None:
                wrong = self._by_key.get((first.registerid, 2))
                if wrong is not None:
                    mismatch(out, str(first.store_id or NO_STORE), self.store_day(wrong))
        return out if limit is None else out[:limit]


#: The order a z-report lists its payment types in.
PAYMENT_ORDER = ("Cash", "Card", "Gift Card")


def _by_name(receipts: list[list[tuple[str, int]]]) -> dict[str, int]:
    """Cents per payment name over `receipts`, in `PAYMENT_ORDER` (others after)."""
    totals: dict[str, int] = defaultdict(int)
    for payments in receipts:
        for name, amount in payments:
            totals[name] += amount
    rank = {name: n for n, name in enumerate(PAYMENT_ORDER)}
    return {k: totals[k] for k in sorted(totals, key=lambda k: (rank.get(k, len(rank)), k))}


def _payment(name: str, amount: int, visa: int) -> dict[str, Any]:
    """A ZReportPayment; a card payment split into its Visa and Mastercard sub-payments."""
    if name != "Card":
        return {"name": name, "moneytotal": money(amount), "subpayments": []}
    return {
        "name": name,
        "moneytotal": money(amount),
        "moneycaptured": money(amount),
        "moneyinadvance": None,
        "moneyreserved": None,
        "subpayments": [
            {"name": "Visa", "moneysubtotal": money(visa)},
            {"name": "Mastercard", "moneysubtotal": money(amount - visa)},
        ],
    }


def _matches(
    report: ZReport,
    registerids: set[str] | None,
    store_ids: set[str] | None,
    eshopids: set[int] | None,
) -> bool:
    body = report.body
    if registerids is not None and body.get("registerid") not in registerids:
        return False
    if store_ids is not None and body.get("store_id") not in store_ids:
        return False
    return not (eshopids is not None and body.get("eshopid") not in eshopids)
