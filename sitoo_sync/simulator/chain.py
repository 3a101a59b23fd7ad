"""The simulated retail chain: its stores, product groups, staff and time zones, and the
records its registers leave (a register's running state, a stored z-report).

Everything here is fixed or plain data; the worlds built from a seed (data.py, the journals,
rest_v2/) read it.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from typing import Any

STORES: tuple[tuple[str, str, str, str, int], ...] = (
    # store_id, name, city line, currency, eshopid (site)
    ("200", "Sitoo Concept Store", "111 57 Stockholm", "SEK", 1),
    ("210", "Drottninggatan Flagship", "111 51 Stockholm", "SEK", 1),
    ("220", "Nordstan", "411 05 Göteborg", "SEK", 1),
    ("230", "Triangeln", "211 43 Malmö", "SEK", 1),
    ("300", "Karl Johan", "0159 Oslo", "NOK", 2),
)
#: The account's sites (eshopids): every site a store is on, registers or not.
SITE_IDS: tuple[int, ...] = tuple(sorted({store[4] for store in STORES}))
# (name, VAT % in Sweden): the catalogue's product groups; `group_vats` gives a site's rates
PRODUCT_GROUPS: tuple[tuple[str, int], ...] = (
    ("Clothing", 25),
    ("Shoes", 25),
    ("Accessories", 25),
    ("Books", 6),
    ("Food & Drink", 12),
)
STAFF = ("Anna Berg", "Erik Lind", "Sara Holm", "Omar Haddad", "Li Wei", "POS Staff")
TIME_ZONE = "Europe/Stockholm"  # the store z-report aggregation's zone (its config)
#: Each site's time zone, and so its registers': their journal receipts' and POS orders'
#: `pos-timezone` and the site's settings all name it.
SITE_TIME_ZONE: dict[int, str] = {1: "Europe/Stockholm", 2: "Europe/Oslo"}


def time_zone_of(eshopid: int) -> str:
    """The time zone of a site's registers."""
    return SITE_TIME_ZONE.get(eshopid, TIME_ZONE)


def currency_of(store_id: str | None) -> str:
    """The currency of a store's registers (by `STORES`); SEK for a register without one."""
    return next((s[3] for s in STORES if s[0] == store_id), "SEK")


def guid(rng: random.Random) -> str:
    """A register-style GUID in braces, upper case."""
    return "{" + str(uuid.UUID(int=rng.getrandbits(128))).upper() + "}"


@dataclass
class Register:
    """A POS register and its running state."""

    registerid: str
    registerkey: str
    registernumber: int
    store_id: str | None
    eshopid: int
    manufacturerid: str
    next_zreportid: int = 1
    grand_sales: int = 0
    grand_refund: int = 0


@dataclass
class ZReport:
    """One stored report: the JSON body and whether it is valid per the contract."""

    body: dict[str, Any]
    valid: bool
    encoded: bytes = b""
    #: Each receipt's payments, (name, cents), in the journal's receipt order (a receipt per
    #: product group sold, then per group refunded): what the payment sections add up.
    receipt_payments: list[list[tuple[str, int]]] = field(default_factory=list)
    #: The report as the register made it, when its upload was corrupted (`valid` False):
    #: what the backend's store aggregation and the register's journal still know.
    made: dict[str, Any] | None = None

    @property
    def dateadded(self) -> int:
        """The upload time the endpoint filters and sorts on."""
        return int(self.body["dateadded"])

    @property
    def closing(self) -> dict[str, Any]:
        """The closing as the register made it (the body, unless the upload corrupted it)."""
        return self.body if self.made is None else self.made
