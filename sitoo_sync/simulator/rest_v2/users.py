"""Users, staff and customers alike (fact sheet section 8), with fake personal data.

Users are shared by every site, so any valid `siteid` lists the same population (the fact
sheet's INFERENCE). Staff have a `role` (the enum is undocumented: the simulator uses 10)
and the warehouses they work in; customers have `role` null. Every personal field is filled
(email, names, personal id, phones, address, notes) so that personal-data minimization can
be tested; all of it is fabricated, with addresses under example.com.
"""

from __future__ import annotations

import random

from sitoo_sync.simulator.chain import STAFF, guid
from sitoo_sync.simulator.rest_v2.query import Body

FIRST = ("Alva", "Nils", "Maja", "Oskar", "Ebba", "Hugo", "Ines", "Leo", "Saga", "Vera")
LAST = ("Andersson", "Nilsson", "Berg", "Dahl", "Ek", "Holm", "Lund", "Strand")
STAFF_ROLE = 10  # assumption: the role enum is not documented
DEFAULT_FIELDS = (
    "userid",
    "email",
    "namefirst",
    "namelast",
    "company",
    "datecreated",
    "datemodified",
)


def build_users(rng: random.Random, customers: int, warehouses: list[int], at: int) -> list[Body]:
    """The staff of `data.STAFF` and `customers` customers, created before `at`."""
    users = []
    for n, name in enumerate(STAFF):
        first, _, last = name.partition(" ")
        users.append(
            _user(rng, n, first, last or "Staff", at, role=STAFF_ROLE, warehouses=warehouses)
        )
    for n in range(customers):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        users.append(_user(rng, len(STAFF) + n, first, last, at, role=None, warehouses=[]))
    return users


def _user(
    rng: random.Random,
    n: int,
    first: str,
    last: str,
    at: int,
    *,
    role: int | None,
    warehouses: list[int],
) -> Body:
    created = at - rng.randint(30, 400) * 86400
    staff = role is not None
    return {
        "userid": guid(rng),
        "email": f"{first.lower()}.{last.lower()}.{n}@example.com",
        "namefirst": first,
        "namelast": last,
        "personalid": f"19{rng.randint(50, 99)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}-"
        f"{rng.randint(1000, 9999)}",
        "externalid": f"EMP-{n}" if staff else None,
        "customernumber": "" if staff else f"C{10000 + n}",
        "phone": f"+46 8 555 {rng.randint(10000, 99999)}",
        "mobile": f"+46 70 555 {rng.randint(1000, 9999)}",
        "address": f"Exempelgatan {rng.randint(1, 99)}",
        "address2": "",
        "zip": f"1{rng.randint(10, 99)} {rng.randint(10, 99)}",
        "city": "Stockholm",
        "state": "",
        "countryid": "SE",
        "company": "Sitoo Demo Retail AB" if staff else "",
        "department": "Retail" if staff else "",
        "companyid": "",
        "notes": "Prefers e-mail receipts" if n % 4 == 0 else "",
        "voucherpasswords": [],
        "role": role,
        "warehouses": warehouses,
        "posrefundcard": staff,
        "datecreated": created,
        "datemodified": created + rng.randint(0, 20) * 86400,
    }
