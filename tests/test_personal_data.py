"""Personal-data minimization in the generic normalizer, whatever the stream."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from sitoo_sync.normalize.entity import EntityNormalizer
from sitoo_sync.normalize.personal import PersonalData
from sitoo_sync.normalize.records import EXTRA
from sitoo_sync.normalize.tables import Table, integer, json_column, text
from sitoo_sync.warehouse.sqla import make_engine

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


def test_a_failed_statement_on_a_sql_target_names_no_values(tmp_path: Path) -> None:
    """The error of a failed load on a SQLAlchemy target, which the sync logs, carries the
    statement but none of the rows' values (a customer's email under `keep`)."""
    engine = make_engine(f"sqlite:///{tmp_path / 'w.sqlite'}")
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE people (id INTEGER PRIMARY KEY, email TEXT)"))
        conn.execute(sa.text("INSERT INTO people VALUES (1, 'a@example.com')"))
    with pytest.raises(sa.exc.IntegrityError) as failed, engine.begin() as conn:
        conn.execute(
            sa.text("INSERT INTO people VALUES (:id, :email)"), {"id": 1, "email": "b@example.com"}
        )
    assert "INSERT INTO people" in str(failed.value)
    assert "b@example.com" not in str(failed.value)
