"""Second adversarial review of the REST v2 catalogue streams: each test shows one defect a
BI user would have hit (ids as digits, type names, what a reject shows and keeps, staff
names in `users`)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sitoo_sync.normalize import stores, users, warehouse_transactions
from sitoo_sync.normalize.personal import STAFF_NAMES, PersonalData
from sitoo_sync.sync import RunReport
from tests.support import query
from tests.test_catalog_review import _settings
from tests.test_catalog_review import _tick as review_tick

NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
KEY = b"k" * 16
#: What an endpoint answers to a request's query parameters.
Answer = Callable[[Mapping[str, str]], Any]


def _tick(db: Path, stream: str, answer: Answer) -> RunReport:
    """One tick of `stream` (site 1), its endpoint answered by `answer`."""
    return review_tick(db, stream, [], lambda _records, params: answer(params))


def _context(**more: Any) -> dict[str, Any]:
    return {"partition": "1", "now": NOW, "personal_data": PersonalData(), **more}


# ---- integer ids sent as digits --------------------------------------------------------


def _transaction(tid: int | str) -> dict[str, Any]:
    return {
        "warehousetransactionid": tid,
        "warehouseid": 1,
        "datecreated": 1_790_000_000,
        "transactiontype": 30,
        "items": [{"warehousetransactionid": tid, "sku": "A", "decimalquantity": "-1.000"}],
    }


def test_a_warehouse_transaction_whose_id_comes_as_digits_loads_and_is_not_lost(
    tmp_path: Path,
) -> None:
    """A warehouse transaction whose id the API sends as digits ("2"), which the keyset walk
    reads as 2 and steps past, loads under that id with its line (it was rejected, and
    being append-only never read again: a stock move missing from the books)."""
    db = tmp_path / "w.duckdb"
    served = [_transaction(1), _transaction("2"), _transaction(3)]

    def answer(params: Mapping[str, str]) -> Any:
        lo = int(params.get("warehousetransactionidfrom", 0))
        rows = [t for t in served if int(t["warehousetransactionid"]) >= lo]
        return {"totalcount": len(rows), "items": rows[: int(params.get("num", 10))]}

    report = _tick(db, "warehouse_transactions", answer)
    assert report.ok, [r.error for r in report.results if r.error]
    settings = _settings(db, "warehouse_transactions")
    assert query(settings, "SELECT count(*) FROM rejects") == [(0,)]
    sql = "SELECT warehousetransactionid, extra FROM warehouse_transaction_items ORDER BY 1"
    assert query(settings, sql) == [(1, None), (2, None), (3, None)]


def test_a_site_whose_eshopid_comes_as_digits_is_a_row_of_sites(tmp_path: Path) -> None:
    """A site `/sites.json` lists with `"eshopid": "2"`, which the engine syncs as site 2,
    is a row of `sites` (site_id 2 elsewhere joins it), not a reject."""
    db = tmp_path / "w.duckdb"
    listing = {"totalcount": 2, "items": [{"eshopid": 1}, {"eshopid": "2"}]}
    report = _tick(db, "sites", lambda _params: listing)
    assert report.ok, [r.error for r in report.results if r.error]
    settings = _settings(db, "sites")
    assert query(settings, "SELECT eshopid FROM sites ORDER BY 1") == [(1,), (2,)]
    assert query(settings, "SELECT count(*) FROM rejects") == [(0,)]


def test_a_transaction_type_sent_as_digits_gets_its_name() -> None:
    """`transactiontype: "30"`, which its integer column reads as 30, is named Sales, not
    left NULL beside it (a sum by transactiontype_name would miss it)."""
    record = {**_transaction(7), "transactiontype": "30"}
    window = warehouse_transactions.normalize_window([record], _context())
    assert not window.rejects
    (row,) = window.tables["warehouse_transactions"].to_pylist()
    assert (row["transactiontype"], row["transactiontype_name"]) == (30, "Sales")


# ---- what a reject shows and keeps -------------------------------------------------------


def test_a_rejected_store_is_shown_under_its_site() -> None:
    """A store rejected for a field is shown in `rejects` under its whole key, its site
    included (`1/5`), not as `site_id=<missing>/storeid=5`, as if the site were absent."""
    window = stores.normalize_window([{"storeid": 5, "name": ["not text"]}], _context())
    assert [r.record_key for r in window.rejects] == ["1/5"]


def _staff(**more: Any) -> dict[str, Any]:
    return {"userid": "{U-1}", "role": 10, "namefirst": "Anna", "namelast": "Berg", **more}


def test_a_rejected_user_keeps_no_undeclared_field_unless_personal_data_is_kept() -> None:
    """A rejected user keeps in `rejects` no field the table does not declare (which may be
    personal: a birth date the vendor starts sending) unless SITOO_PERSONAL_DATA is keep,
    as the table's own rows keep none."""
    record = _staff(role="not a role", birthdate="1990-01-01")
    for mode in ("drop", "hash"):
        personal = PersonalData(mode, KEY)
        (reject,) = users.normalize_window([record], _context(personal_data=personal)).rejects
        assert "1990-01-01" not in reject.raw
        assert json.loads(reject.raw)["userid"] == "{U-1}"
    keep = PersonalData("keep")
    (reject,) = users.normalize_window([record], _context(personal_data=keep)).rejects
    assert json.loads(reject.raw)["birthdate"] == "1990-01-01"


# ---- staff names in users ------------------------------------------------------------------


def _user_rows(personal: str, staff: str, records: list[Any]) -> list[dict[str, Any]]:
    context = _context(
        personal_data=PersonalData(personal, KEY),  # type: ignore[arg-type]
        **{STAFF_NAMES: PersonalData(staff, KEY)},  # type: ignore[arg-type]
    )
    window = users.normalize_window(records, context)
    assert not window.rejects
    return window.tables["users"].to_pylist()  # type: ignore[no-any-return]


def test_staff_names_in_users_follow_staff_names_when_it_is_the_stricter() -> None:
    """A staff member's name in `users` is a staff name: with SITOO_PERSONAL_DATA=keep and
    SITOO_STAFF_NAMES=drop it is NULL, and with SITOO_STAFF_NAMES=hash it is the keyed
    hash (once, whatever SITOO_PERSONAL_DATA); a customer's name follows
    SITOO_PERSONAL_DATA alone."""
    customer = {"userid": "{C-1}", "role": None, "namefirst": "Cleo", "namelast": "Dahl"}
    staff, cust = _user_rows("keep", "drop", [_staff(), customer])
    assert (staff["namefirst"], staff["namelast"]) == (None, None)
    assert (cust["namefirst"], cust["namelast"]) == ("Cleo", "Dahl")
    digest = PersonalData("hash", KEY).digest
    for personal in ("keep", "hash"):
        (staff,) = _user_rows(personal, "hash", [_staff()])
        assert (staff["namefirst"], staff["namelast"]) == (digest("Anna"), digest("Berg"))
    (staff,) = _user_rows("drop", "keep", [_staff()])
    assert staff["namefirst"] is None  # personal data's drop is the stricter


def test_a_rejected_staff_user_keeps_no_name_under_staff_names_drop() -> None:
    """A staff user rejected for a field keeps no name in `rejects` when SITOO_STAFF_NAMES
    is drop, though SITOO_PERSONAL_DATA is keep."""
    context = _context(personal_data=PersonalData("keep"), **{STAFF_NAMES: PersonalData("drop")})
    (reject,) = users.normalize_window([_staff(role="not a role")], context).rejects
    assert "Anna" not in reject.raw
    assert "Berg" not in reject.raw


# ---- a record deleted while a full listing is paged -----------------------------------------


def test_a_store_deleted_during_a_paged_listing_marks_no_live_store_missing(
    tmp_path: Path,
) -> None:
    """A store deleted while the store listing is paged (after its first page) shifts the
    next store back into the page already read; that live store is not marked missing (a
    BI report of open stores would have lost it until the next tick)."""
    db = tmp_path / "w.duckdb"
    served: list[dict[str, Any]] = [
        {"storeid": i, "eshopid": 1, "name": f"Store {i}"} for i in range(1, 251)
    ]
    whole = {"totalcount": len(served), "items": list(served)}
    assert _tick(db, "stores", lambda _params: whole).ok
    deleted: list[int] = []

    def answer(params: Mapping[str, str]) -> Any:
        start, num = int(params.get("start", 0)), int(params.get("num", 10))
        page = {"totalcount": len(served), "items": served[start : start + num]}
        if start == 0 and not deleted:  # deleted right after the first page was served
            deleted.append(served.pop(9)["storeid"])
        return page

    report = _tick(db, "stores", answer)
    assert report.ok, [r.error for r in report.results if r.error]
    settings = _settings(db, "stores")
    marked = query(settings, "SELECT storeid FROM stores WHERE missing_since IS NOT NULL")
    assert marked == []
    assert query(settings, "SELECT count(*) FROM stores") == [(250,)]
