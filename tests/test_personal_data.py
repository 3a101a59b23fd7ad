"""Personal-data minimization in the generic normalizer, whatever the stream."""

from __future__ import annotations

import json

import pytest

from sitoo_sync.normalize.entity import EntityNormalizer
from sitoo_sync.normalize.personal import PersonalData
from sitoo_sync.normalize.records import EXTRA
from sitoo_sync.normalize.tables import Table, integer, json_column, text

PEOPLE = Table(
    name="people",
    columns=(
        integer("id", "Key.", nullable=False),
        text("email", "A customer's email.", personal=True),
        text("city", "Not personal here."),
        json_column(EXTRA, "Undeclared fields."),
    ),
    key=("id",),
)
RECORD = {"id": 1, "email": "a@example.com", "city": "Umeå", "newphone": "+46 70 123"}


@pytest.mark.parametrize(
    ("mode", "email", "extra"),
    [
        ("drop", None, None),
        ("hash", PersonalData("hash", b"k").digest("a@example.com"), None),
        ("keep", "a@example.com", {"newphone": "+46 70 123"}),
    ],
)
def test_personal_columns_and_undeclared_fields_follow_the_mode(
    mode: str, email: str | None, extra: dict[str, str] | None
) -> None:
    """A personal column is dropped, hashed or kept; a table with personal columns keeps an
    undeclared field (which may be a new personal one) only under `keep`."""
    normalize = EntityNormalizer(stream="people", parent=PEOPLE)
    personal = PersonalData(mode, b"k")  # type: ignore[arg-type]  # a Literal from the parameter
    [row] = normalize([RECORD], {"personal_data": personal}).tables["people"].to_pylist()
    assert row["email"] == email
    assert row["city"] == "Umeå"
    assert (json.loads(row[EXTRA]) if row[EXTRA] else None) == extra


def test_a_rejected_record_is_kept_minimized() -> None:
    """A record rejected for its key is kept in `rejects` without its personal values."""
    normalize = EntityNormalizer(stream="people", parent=PEOPLE)
    [reject] = normalize([{**RECORD, "id": "x"}], {"personal_data": PersonalData()}).rejects
    assert "a@example.com" not in reject.raw
    assert json.loads(reject.raw)["city"] == "Umeå"


def test_the_hash_key_never_shows_in_a_repr() -> None:
    """The HMAC key of `hash` mode does not appear when the mode is printed or logged."""
    assert "s3cret" not in repr(PersonalData("hash", b"s3cret"))
