"""The knobs of the simulated REST v2 world (a sub-config of `SimConfig`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass
class RestConfig:
    """Sizes and hostile behaviours of the REST v2 world; all deterministic from the seed."""

    products_per_site: int = 24
    deleted_products_per_site: int = 2  # sold in the history, then deleted
    inactive_every: int = 8  # every Nth product is inactive (listed only with includeinactive)
    customers: int = 12
    # POS orders are the registers' journal receipts, one each (world.py); besides them:
    parked_per_register: int = 1  # carts parked since the register's last closing, open
    cancelled_every: int = 25  # every Nth receipt follows a cart cancelled just before it
    web_orders_per_day: int = 2  # site 1 only: no register, a warehouse without a store
    offline_every: int = 15  # every Nth POS order arrives hours late (old orderdate, new id)
    discount_every: int = 3  # every Nth order line carries a discount
    no_store_keys_every: int = 9  # every Nth POS order lacks the `store-*` additionaldata keys
    settle_after: int = 2 * 86400  # seconds an open order stays open before it settles
    orders_per_request: int = 0  # new orders that arrive before each `/orders.json` answer
    # open orders of each `/orders.json` answer that settle right after it is served (lowest
    # id first): a state that changes once a walk has read it (fact sheet 2.9)
    settles_per_request: int = 0
    # The order warehouse items are listed in (no sort is documented): "id" by
    # warehouseitemid; "modified" by datelastmodified, as an index on it would list them,
    # so a row a transaction touches moves to the end of the listing
    stock_order: Literal["id", "modified"] = "id"
    # The order products are listed in (no sort is documented): "id" by productid;
    # "modified" by datemodified, as an index on it would list them, so a product edited
    # during a listing moves to the end of it
    product_order: Literal["id", "modified"] = "id"
    # products of the site edited right after each products answer (those modified longest
    # ago first: under "modified" order, one the listing showed moves to its end)
    edits_per_request: int = 0
    # Ids are handed out in one order and become visible in another, as a transaction that
    # commits late makes them (the docs say nothing of how ids are allocated): every Nth
    # order, and every Nth warehouse transaction, made after the history is listed (and
    # read by id) only once its listing has answered `late_commit_requests` more requests
    # or `late_commit_span` later ids have been handed out, whichever comes first, while
    # the ids after it are listed at once; 0 = none. (The span bounds how far a late
    # commit is overtaken, as a database's short transactions do: sitoo_sync's trailing
    # ids assume such a bound.)
    late_commit_every: int = 0
    late_commit_requests: int = 2
    late_commit_span: int = 10
    max_num: int = 1000  # silent cap on `num` (the docs state none; sitoo_sync asks <= 1000)
