"""Users (`GET /sites/{siteid}/users.json`, fact sheet 8): staff, and customers if asked.

Users are shared by every site of the account, but their `role` is set per site, so a row
is a user as one site lists them (key site_id, userid). Staff have a role; customers have
none (an INFERENCE of the fact sheet; the role enum is undocumented, so `role` stays a
number and `is_staff` says which). Every contact, address, name, national id and free-text
field is `personal`: stored only as SITOO_PERSONAL_DATA says (drop by default, a keyed
HMAC with hash, as sent with keep). A staff member's name is also a staff name: when
SITOO_STAFF_NAMES is the stricter setting (drop over hash over keep), it minimizes them,
in the rows and in a rejected record alike. `pin` is write-only and never asked for. The
table has no `extra` column: a field the vendor adds could be personal, so undeclared
fields are not stored.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sitoo_sync.normalize.entity import EntityNormalizer
from sitoo_sync.normalize.personal import MODES, PersonalData, staff_names
from sitoo_sync.normalize.records import NormalizedWindow
from sitoo_sync.normalize.site_listing import seen_columns, site_column, site_listed
from sitoo_sync.normalize.tables import (
    Table,
    boolean,
    integer,
    json_column,
    text,
    timestamp,
)

STREAM = "users"


#: What a personal column holds (normalize/personal.py), NULL included.
PERSONAL = (
    "Personal: NULL by default (SITOO_PERSONAL_DATA=drop), a keyed HMAC-SHA256 with hash, "
    "as sent with keep."
)
#: A staff member's name is a staff name too (`staff_names_minimized`).
STAFF_NAME = " For staff, SITOO_STAFF_NAMES applies too, and the stricter of the two wins."


def _personal(name: str, description: str) -> Any:
    return text(name, f"{description} {PERSONAL}", personal=True)


USERS = Table(
    name="users",
    description=(
        "Users as each configured site lists them: staff, and customers only when the "
        "stream's include_customers is set. Names, contacts, addresses, national ids and "
        "notes are personal data: NULL by default (SITOO_PERSONAL_DATA=drop), a keyed HMAC "
        "with hash (joinable, not readable), as sent with keep. A user no longer listed is "
        "kept, with missing_since set."
    ),
    columns=(
        site_column("user"),
        text("userid", "The user's ID (GUID in braces); orders' userid_staff.", nullable=False),
        integer(
            "role", "The user's access role on this site; NULL: not staff. Undocumented codes."
        ),
        boolean("is_staff", "Whether the user has a role on this site (staff). Ours."),
        _personal("email", "E-mail address (unique)."),
        _personal("namefirst", "First name." + STAFF_NAME),
        _personal("namelast", "Last name." + STAFF_NAME),
        _personal("personalid", "National identity number."),
        _personal("phone", "Phone number."),
        _personal("mobile", "Mobile number."),
        _personal("address", "Address line 1."),
        _personal("address2", "Address line 2."),
        _personal("zip", "Postal code."),
        _personal("city", "City."),
        _personal("state", "State."),
        _personal("notes", "Internal free-text notes."),
        json_column(
            "voucherpasswords",
            f"Campaign passwords (a JSON list). {PERSONAL}",
            personal=True,
        ),
        text("countryid", "Country (ISO 3166-1 alpha-2)."),
        text("externalid", "External key."),
        text("customernumber", "Customer number."),
        text("company", "Company (employer)."),
        text("department", "Department."),
        text("companyid", "Company ID (organisation number)."),
        json_column("warehouses", "The warehouses a staff member works in (a JSON list of IDs)."),
        boolean("posrefundcard", "Whether the user may refund card payments in the POS."),
        integer("pricelistid", "The user's price list."),
        timestamp("datecreated", "When the user was created (UTC)."),
        timestamp("datemodified", "When the user was last modified (UTC)."),
        *seen_columns("user"),
    ),
    key=("site_id", "userid"),
    keep_on_update=("first_seen_at",),
)
TABLES: tuple[Table, ...] = (USERS,)

#: The vendor's fields the stream asks for (the default set lacks `role`).
FIELDS: tuple[str, ...] = tuple(
    c
    for c in USERS.column_names
    if c not in ("site_id", "is_staff", "first_seen_at", "last_seen_at", "missing_since")
)


#: A staff member's name fields: staff names as much as personal data.
STAFF_NAME_FIELDS = frozenset({"namefirst", "namelast"})


def listed(record: Mapping[str, Any], context: Mapping[str, Any]) -> Mapping[str, Any]:
    """The user with its site, seen now, and whether it is staff."""
    return {**site_listed(record, context), "is_staff": record.get("role") is not None}


def staff_names_minimized(records: Iterable[Any], context: Mapping[str, Any]) -> Iterable[Any]:
    """The records with each staff member's names dropped or hashed as SITOO_STAFF_NAMES
    says, where it is stricter than SITOO_PERSONAL_DATA (which minimizes them after, so a
    name is never hashed twice); the records themselves where it is not."""
    names = staff_names(context)
    personal = context.get("personal_data") or PersonalData()
    # MODES runs strictest first: SITOO_STAFF_NAMES acts only where it comes before.
    if names is None or MODES.index(names.mode) >= MODES.index(personal.mode):
        return records
    return [
        names.apply(r, STAFF_NAME_FIELDS)
        if isinstance(r, Mapping) and r.get("role") is not None
        else r
        for r in records
    ]


_normalize = EntityNormalizer(stream=STREAM, parent=USERS, prepare=listed)


def normalize_window(
    records: Iterable[Any], context: Mapping[str, Any] | None = None
) -> NormalizedWindow:
    """One window of users: staff names minimized first (rows and rejects alike), then the
    generic normalizer."""
    context = context or {}
    return _normalize(staff_names_minimized(records, context), context)
