"""Journals v3 (`/v3/journal-entries`): each register's event log, derived from its z-reports.

Every closed z-report yields the day's journal: login, cash-start, receipts, cash-counted,
report-z and logout, uploaded together (so many entries share one `dateadded` second).
Entry `id`s count 1, 2, ... per register in creation order, as in the vendor example.
Paging follows the contract: `{"items": [...], "next": "<opaque>"}`, `next` absent at the end.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sitoo_sync.simulator.data import World

MAX_NUM = 1000  # **assumed** maximum page size (API_CONTRACT.md)


def _entries_for(world: World, registerid: str) -> list[dict[str, Any]]:
    reports = [
        r.body for r in world.all_reports() if r.valid and r.body.get("registerid") == registerid
    ]
    reports.sort(key=lambda b: (b["datecreated"], b["zreportid"]))
    entries: list[dict[str, Any]] = []
    for body in reports:
        closed = int(body["datecreated"])
        opened = int(body["dateopened"] or closed - 8 * 3600)
        staff = {"staff": body["staff"], "staffuserid": body["staffuserid"]}
        cash = {"currencycode": body["currencycode"], **staff}
        day = [
            (opened - 5, "login", staff),
            (opened, "cash-start", {**cash, "moneycash": body["moneycash_in"]}),
        ]
        for i, group in enumerate(body["productgroupssales"]):
            day.append(
                (
                    opened + 600 * (i + 1),
                    "receipt",
                    {
                        "additionaldata": {
                            "pos-receiptid": f"{body['registerkey']}{body['zreportid']:04d}{i:02d}",
                            "pos-timezone": "Europe/Stockholm",
                            "store-externalid": body["store_id"] or "",
                        },
                        "comment": "",
                        "currencycode": body["currencycode"],
                        "isrefund": False,
                        "items": [
                            {
                                "additionaldata": {"product-group-name": group["name"]},
                                "decimalunitquantity": f"{group['numtotal']}.000",
                                "discounts": [],
                                "moneyrowprice": group["moneytotal"],
                            }
                        ],
                    },
                )
            )
        day += [
            (closed - 60, "cash-counted", {**cash, "moneycash": body["moneycash_counted"]}),
            (closed, "report-z", {"zreportid": body["zreportid"]}),
            (closed + 5, "logout", staff),
        ]
        for created, kind, data in day:
            entries.append(
                {
                    "data": data,
                    "dateadded": body["dateadded"],
                    "datecreated": created,
                    "id": len(entries) + 1,
                    "ispractice": False,
                    "registerid": registerid,
                    "registerkey": body["registerkey"],
                    "type": kind,
                }
            )
    return entries


def _token(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"o": offset}).encode()).decode()


def _offset(token: str) -> int:
    from sitoo_sync.simulator.server import ApiProblem

    try:
        value = json.loads(base64.urlsafe_b64decode(token.encode()))["o"]
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise ApiProblem(400, "Invalid next cursor") from None
    if not isinstance(value, int) or value < 0:
        raise ApiProblem(400, "Invalid next cursor")
    return value


def journal_page(world: World, query: Mapping[str, list[str]]) -> dict[str, Any]:
    """One page of `/journal-entries` for the query."""
    from sitoo_sync.simulator.server import ApiProblem, _int, _one

    register = _one(query, "register_id")
    if not register:
        raise ApiProblem(400, "register_id is required")
    date_type = _one(query, "date_type") or "created"
    if date_type not in ("created", "added"):
        raise ApiProblem(400, f"Invalid value for date_type: {date_type}")
    order = _one(query, "sort_order") or "asc"
    if order not in ("asc", "desc"):
        raise ApiProblem(400, f"Invalid value for sort_order: {order}")
    num = max(1, min(_int(query, "num", 10) or 10, MAX_NUM))
    lo, hi = _int(query, "date_from"), _int(query, "date_to")
    kind = _one(query, "type")
    field = "date" + date_type
    with world.lock:
        entries = _entries_for(world, register)
    selected = [
        e
        for e in entries
        if (lo is None or e[field] >= lo)
        and (hi is None or e[field] <= hi)
        and (kind is None or e["type"] == kind)
    ]
    selected.sort(key=lambda e: (e[field], e["id"]), reverse=order == "desc")
    start = _offset(token) if (token := _one(query, "next")) else 0
    page = selected[start : start + num]
    answer: dict[str, Any] = {"items": page}
    if start + num < len(selected):
        answer["next"] = _token(start + num)
    return answer
