"""Store z-reports as the simulator makes them: each store's POS z-reports of a day, summed.

The simulated aggregation for a day runs at `hour_of_day` on that same day (the reading of
the vendor's docs most favourable to early data): a day's store reports exist from then on.
A late POS z-report changes the aggregate the next time it is asked for; `reaggregate()` on
the world gives a store and day a new `store_zreport_id`, as a re-run of the aggregation
may. POS z-reports without a store aggregate to `NO_STORE`.

Every closing is aggregated and listed in `register_zreports`, a POS z-report whose upload
was corrupted (served malformed, so a consumer rejects it) too, as the register made it:
the store report is made from the backend's data, not from what a client could parse.
"""

from __future__ import annotations

import re
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

from sitoo_sync.simulator.chain import ZReport
from sitoo_sync.simulator.money import cents, money

NO_STORE = "NO_STORE"
_MONEY = re.compile(r"[-+]?[0-9]+\.[0-9]{2}")
#: Per-register running totals: meaningless summed over a store.
_NOT_SUMMED = frozenset({"moneygrandtotalsales", "moneygrandtotalrefund", "moneygrandtotalnet"})
_HEADER = frozenset(
    {
        "zreportid",
        "registerid",
        "manufacturerid",
        "registerkey",
        "registernumber",
        "datecreated",
        "dateopened",
        "dateadded",
        "eshopid",
        "store_id",
        "store_name",
        "company",
        "companyid",
        "address",
        "address2",
        "address3",
        "currencycode",
        "staff",
        "staffuserid",
        "comment",
    }
)
#: How each child list merges across reports: the fields that identify a line.
_GROUP_BY: dict[str, tuple[str, ...]] = {
    "vatgroups": ("vatvalue",),
    "productgroups": ("name", "vatvalue"),
    "payments": ("name",),
    "discounts": ("vouchercode",),
    "salestaxes": ("name", "code"),
}


def _merge_lines(lines: Iterable[dict[str, Any]], by: tuple[str, ...]) -> list[dict[str, Any]]:
    merged: dict[tuple[Any, ...], dict[str, Any]] = {}
    for line in lines:
        ident = tuple(line.get(k) for k in by)
        into = merged.setdefault(ident, {k: line.get(k) for k in by})
        for name, value in line.items():
            if name in by:
                continue
            if name == "subpayments":
                subs = [*into.get("subpayments", []), *value]
                into["subpayments"] = _merge_lines(subs, ("name",))
            elif isinstance(value, str) and _MONEY.fullmatch(value):
                into[name] = money(cents(into.get(name) or "0.00") + cents(value))
            elif type(value) is int:
                into[name] = int(into.get(name) or 0) + value
            else:
                into.setdefault(name, value)
    return list(merged.values())


def _list_kind(name: str) -> str | None:
    for kind in _GROUP_BY:
        if name.startswith(kind):
            return kind
    return None


def aggregate(store: str, day: str, reports: list[ZReport], version: int) -> dict[str, Any]:
    """The StoreZReport of `store` on `day` from its POS z-reports."""
    bodies = [r.closing for r in reports]
    data: dict[str, Any] = {}
    for name, value in bodies[0].items():
        if name in _HEADER or name in _NOT_SUMMED:
            continue
        values = [b.get(name) for b in bodies]
        if isinstance(value, list):
            items = [item for v in values for item in (v or [])]
            kind = _list_kind(name)
            data[name] = _merge_lines(items, _GROUP_BY[kind]) if kind else items
        elif isinstance(value, str) and _MONEY.fullmatch(value):
            data[name] = money(sum(cents(v) for v in values if isinstance(v, str)))
        elif type(value) is int:
            data[name] = sum(v for v in values if type(v) is int)
    first = bodies[0]
    return {
        "store_zreport_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{store}/{day}/{version}")),
        "currency_code": first["currencycode"],
        "store_id": store,
        "store_name": first.get("store_name") or "",
        "day_created": day,
        "date_created": max(int(b["datecreated"]) for b in bodies),
        "register_zreports": [
            {"registerid": b["registerid"], "zreportid": b["zreportid"]} for b in bodies
        ],
        "data": data,
    }


def store_reports(
    reports: Iterable[ZReport],
    *,
    day_of: Callable[[ZReport], str],
    aggregated: Callable[[str], bool],
    versions: dict[tuple[str, str], int],
    day: str | None,
    store_ids: set[str] | None,
) -> list[dict[str, Any]]:
    """Every store report matching the filters, newest day first."""
    groups: dict[tuple[str, str], list[ZReport]] = defaultdict(list)
    for report in reports:
        d = day_of(report)
        if (day is not None and d != day) or not aggregated(d):
            continue
        store = report.closing.get("store_id") or NO_STORE
        if store_ids and store not in store_ids:
            continue
        groups[(store, d)].append(report)
    out = [aggregate(s, d, rs, versions.get((s, d), 0)) for (s, d), rs in groups.items()]
    out.sort(key=lambda r: (str(r["day_created"]), str(r["store_id"])), reverse=True)
    return out


def mismatch(reports: list[dict[str, Any]], store: str, day: str) -> None:
    """Make the store report of `store` on `day` (if among `reports`) disagree by 1.00."""
    for report in reports:
        if report["store_id"] == store and report["day_created"] == day:
            data = report["data"]
            data["moneysalestotal"] = money(cents(data["moneysalestotal"]) + 100)
