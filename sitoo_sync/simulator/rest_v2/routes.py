"""The REST v2 paths of the fact sheet, answered from a `RestWorld`.

    /sites.json                                            envelope, no parameters
    /sites/{s}/stores|warehouses|productgroups|manufacturers|categories.json
                                                           envelope, start/num, fields
    /sites/{s}/pospaymenttypes.json                        bare array, fields, no paging
    /sites/{s}/settings.json                               {"timezone": ...} only
    /sites/{s}/products.json       datelastmodified (strictly after), includeinactive, sku,
                                   productid, fields (default set has no title); by
                                   productid, or (RestConfig.product_order) by datemodified;
                                   RestConfig.edits_per_request edits after each answer
    /sites/{s}/users.json          email, customernumber, personalid, mobile, userid
    /sites/{s}/warehouses/{w}/warehouseitems.json    datelastmodifiedfrom/to (inclusive), sku;
                                   by warehouseitemid, or (RestConfig.stock_order) by
                                   datelastmodified
    /sites/{s}/warehousetransactions.json and /sites/{s}/warehouses/{w}/warehousetransactions.json
                                   warehousetransactionid, ...idfrom (>=), ...idto (<),
                                   datecreatedfrom (>=), datecreatedto (<), warehouseid,
                                   transactiontype, sort (default -warehousetransactionid)
    /orders.json                   see orders.list_orders (default sort -orderid)

Orders and transactions that commit late (RestConfig.late_commit_every) are neither listed
nor found by id until their listing has answered `late_commit_requests` more requests.

Paging is start/num (defaults 0/10) with `totalcount`; `num` is silently capped at
`RestConfig.max_num` (the docs state no maximum). Each path also answers without `.json`
(assumption, as the cash-register route does). An unknown site or warehouse is a 404.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from sitoo_sync.simulator.params import one
from sitoo_sync.simulator.rest_v2 import orders as order_list
from sitoo_sync.simulator.rest_v2.catalog import POS_TIME_ZONE
from sitoo_sync.simulator.rest_v2.query import (
    Body,
    Query,
    RestError,
    bare,
    csv,
    csv_ints,
    envelope,
    flag,
    integer,
)
from sitoo_sync.simulator.rest_v2.users import DEFAULT_FIELDS as USER_FIELDS
from sitoo_sync.simulator.rest_v2.world import RestWorld

PRODUCT_FIELDS = (
    "productid", "sku", "datemodified", "active", "activepos", "vatid", "manufacturerid",
    "stockcountenable", "stockallowbackorder", "barcode", "moneyprice", "moneyfinalprice",
)  # fmt: skip
TRANSACTION_FIELDS = (
    "warehousetransactionid", "warehouseid", "datecreated", "transactiontype", "description",
    "orderdeliveryid", "shipmentid", "externalid", "reasoncode", "items",
)  # fmt: skip
SITE_PATH = re.compile(r"/sites/(\d+)/([a-z]+)(?:/(\d+)/([a-z]+))?(?:\.json)?")


def serve(rest: RestWorld, path: str, query: Query) -> Any:
    """The answer for a REST v2 path below the account base; None when it is not one."""
    cap = rest.config.max_num
    with rest.lock:
        if path in ("/sites.json", "/sites"):
            return {"totalcount": len(rest.catalog.sites), "items": list(rest.catalog.sites)}
        if path in ("/orders.json", "/orders"):
            rest.catch_up()
            if rest.config.orders_per_request:
                rest.add_orders(rest.config.orders_per_request)
            rows = order_list.list_orders(rest.listed_orders(), query)
            answer = envelope(query, rows, max_num=cap, default_fields=order_list.DEFAULT_FIELDS)
            if rest.config.settles_per_request:  # served open, settled right after
                shown = {item.get("orderid") for item in answer["items"]}
                due = [i for i in rest.open_orders() if i in shown]
                for orderid in due[: rest.config.settles_per_request]:
                    rest.settle(orderid)
            rest.orders_answered()
            return answer
        m = SITE_PATH.fullmatch(path)
        if m is None:
            return None
        site, resource = int(m.group(1)), m.group(2)
        if site not in rest.catalog.site_ids():
            raise RestError(404, "Site not found")
        if m.group(3) is not None:
            return _per_warehouse(
                rest, site, int(m.group(3)), resource=m.group(4), parent=resource, query=query
            )
        return _per_site(rest, site, resource, query)


def _per_site(rest: RestWorld, site: int, resource: str, query: Query) -> Any:
    cat, cap = rest.catalog, rest.config.max_num
    simple: dict[str, list[Body]] = {
        "stores": [s for s in cat.stores if s["eshopid"] == site],
        "warehouses": [_public(w) for w in cat.warehouses if w["eshopid"] == site],
        "productgroups": cat.product_groups[site],
        "manufacturers": cat.manufacturers[site],
        "categories": cat.categories[site],
    }
    if resource in simple:
        return envelope(query, simple[resource], max_num=cap)
    other: dict[str, Callable[[], Any]] = {
        "pospaymenttypes": lambda: bare(query, cat.payment_types[site]),
        # only `timezone` is documented ([dev]); the other settings are unknown
        "settings": lambda: {"timezone": POS_TIME_ZONE[site]},
        "products": lambda: _edited_after(
            rest,
            site,
            envelope(
                query, _products(rest, site, query), max_num=cap, default_fields=PRODUCT_FIELDS
            ),
        ),
        "users": lambda: envelope(
            query, _users(rest, query), max_num=cap, default_fields=USER_FIELDS
        ),
        "warehousetransactions": lambda: _transactions(
            rest, site, integer(query, "warehouseid"), query
        ),
    }
    answer = other.get(resource)
    return answer() if answer is not None else None


def _per_warehouse(
    rest: RestWorld, site: int, warehouseid: int, *, resource: str, parent: str, query: Query
) -> Any:
    warehouse = rest.catalog.warehouse(warehouseid)
    if parent != "warehouses" or warehouse is None or warehouse["eshopid"] != site:
        raise RestError(404, "Warehouse not found")
    if resource == "warehouseitems":
        rows = rest.stock.item_bodies(warehouseid)
        lo, hi = integer(query, "datelastmodifiedfrom"), integer(query, "datelastmodifiedto")
        skus = csv(query, "sku")
        rows = [
            r for r in rows
            if (lo is None or r["datelastmodified"] >= lo)
            and (hi is None or r["datelastmodified"] <= hi)
            and (skus is None or r["sku"] in skus)
        ]  # fmt: skip
        if rest.config.stock_order == "modified":
            rows.sort(key=lambda r: (r["datelastmodified"], r["warehouseitemid"]))
        return envelope(query, rows, max_num=rest.config.max_num)
    if resource == "warehousetransactions":
        return _transactions(rest, site, warehouseid, query)
    return None


def _public(warehouse: Body) -> Body:
    """A warehouse as served: the site it is listed under is ours, not a vendor field."""
    return {k: v for k, v in warehouse.items() if k != "eshopid"}


def _products(rest: RestWorld, site: int, query: Query) -> list[Body]:
    rows = rest.catalog.site_products(site, include_inactive=flag(query, "includeinactive"))
    after = integer(query, "datelastmodified")
    skus = csv(query, "sku")
    ids = csv_ints(query, "productid")
    rows = [
        p for p in rows
        if (after is None or p["datemodified"] > after)
        and (skus is None or p["sku"] in skus)
        and (ids is None or p["productid"] in ids)
    ]  # fmt: skip
    if rest.config.product_order == "modified":
        rows.sort(key=lambda p: (p["datemodified"], p["productid"]))
    return rows


def _edited_after(rest: RestWorld, site: int, answer: Body) -> Body:
    """`answer`, served; then `RestConfig.edits_per_request` of the site's products are
    edited, those modified longest ago first (a catalogue edited while it is listed)."""
    edits = rest.config.edits_per_request
    if edits:
        rows = rest.catalog.site_products(site, include_inactive=True)
        for product in sorted(rows, key=lambda p: (p["datemodified"], p["productid"]))[:edits]:
            rest.edits += 1
            rest.touch_product(product["productid"], custom5=f"edit {rest.edits}")
    return answer


def _users(rest: RestWorld, query: Query) -> list[Body]:
    rows = list(rest.users)
    for name in ("email", "customernumber", "personalid", "mobile"):
        value = one(query, name)
        if value is not None:
            rows = [u for u in rows if u[name] == value]
    ids = csv(query, "userid")
    return [u for u in rows if ids is None or u["userid"] in ids]


def _transactions(rest: RestWorld, site: int, warehouseid: int | None, query: Query) -> Body:
    ids = csv_ints(query, "warehousetransactionid")
    id_from, id_to = (
        integer(query, "warehousetransactionidfrom"),
        integer(query, "warehousetransactionidto"),
    )
    date_from, date_to = integer(query, "datecreatedfrom"), integer(query, "datecreatedto")
    kind = integer(query, "transactiontype")
    sort = one(query, "sort") or "-warehousetransactionid"
    if sort not in ("warehousetransactionid", "-warehousetransactionid"):
        raise RestError(400, f"Invalid value for sort: {sort}")
    rows = [
        t for t in rest.stock.listed_transactions()
        if rest.stock.transaction_site[t["warehousetransactionid"]] == site
        and (warehouseid is None or t["warehouseid"] == warehouseid)
        and (ids is None or t["warehousetransactionid"] in ids)
        and (id_from is None or t["warehousetransactionid"] >= id_from)
        and (id_to is None or t["warehousetransactionid"] < id_to)
        and (date_from is None or t["datecreated"] >= date_from)
        and (date_to is None or t["datecreated"] < date_to)
        and (kind is None or t["transactiontype"] == kind)
    ]  # fmt: skip
    if sort.startswith("-"):
        rows.reverse()
    answer = envelope(query, rows, max_num=rest.config.max_num, default_fields=TRANSACTION_FIELDS)
    rest.stock.transactions_answered()
    return answer
