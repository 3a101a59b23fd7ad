"""SITOO_STAFF_NAMES: staff names kept, hashed or dropped in every table, raw text and reject."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import pytest
from pydantic import SecretStr

from sitoo_sync.api.client import make_client
from sitoo_sync.dictionary import all_tables
from sitoo_sync.errors import ConfigError
from sitoo_sync.normalize import journal_pages, personal
from sitoo_sync.normalize.journal_entries import normalize_window as reference
from sitoo_sync.normalize.journal_pages import decode_page, normalize_entries, normalize_window
from sitoo_sync.normalize.personal import (
    STAFF_NAMES,
    PersonalData,
    text_without_names,
    texts_without_names,
    without_names,
)
from sitoo_sync.normalize.pos_z_reports import normalize_window as pos_z_reports
from sitoo_sync.partition import staff_names
from sitoo_sync.settings import Settings, load_settings
from sitoo_sync.simulator import SimConfig, Simulator
from sitoo_sync.simulator.chain import STAFF
from sitoo_sync.streams import STREAMS, select_streams
from sitoo_sync.sync import run_once
from sitoo_sync.warehouse import open_warehouse
from sitoo_sync.warehouse.duckdb import DuckDBWarehouse
from tests.support import query, settings_for, vendor_example
from tests.test_journal_pages import assert_same_window, simulator_pages

NOW = 1_750_000_000
KEY = "k3y-for-the-staff-name-tests-only"
HASH = PersonalData("hash", KEY.encode())
MODES = {"keep": PersonalData("keep"), "hash": HASH, "drop": PersonalData("drop")}
_DICTS = msgspec.json.Decoder(float_hook=Decimal)


def _context(mode: str) -> dict[str, Any]:
    return {STAFF_NAMES: MODES[mode]}


# ---- the warehouse after a sync ---------------------------------------------------------


def _sync(tmp: Path, staff: str, personal: str) -> Settings:
    """Every stream of a small simulated world (every 4th z-report malformed, so some are
    rejected) synced once into a DuckDB file, staff names and personal data as given."""
    config = SimConfig(seed=7, days=5, now=NOW, malformed_every=4)
    with Simulator.create(config) as sim:
        start = datetime.fromtimestamp(NOW, UTC) - timedelta(days=5)
        settings = settings_for(
            sim,
            tmp / "w.duckdb",
            staff_names=staff,
            personal_data=personal,
            personal_data_key=SecretStr(KEY),
            stream_options={"store_z_reports": {"start_day": start.date()}},
        )
        warehouse = open_warehouse(settings.target_url)
        with make_client(settings, sleep=lambda _s: None) as client:
            report = run_once(
                settings,
                warehouse,
                client,
                select_streams(list(STREAMS)),
                clock=lambda: datetime.fromtimestamp(NOW, UTC),
            )
        assert report.ok, report.results
    return settings


#: (staff names, personal data) of each synced warehouse the tests read.
SYNCS = {
    "keep": ("keep", "drop"),
    "hash": ("hash", "hash"),
    "drop": ("drop", "drop"),
    "hash-personal-kept": ("hash", "keep"),
}


@pytest.fixture(scope="module")
def synced(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The settings of a warehouse synced in one of SYNCS' ways, each synced once."""
    made: dict[str, Settings] = {}

    def get(name: str) -> Settings:
        if name not in made:
            made[name] = _sync(tmp_path_factory.mktemp(name), *SYNCS[name])
        return made[name]

    return get


def _texts(settings: Settings) -> dict[tuple[str, str], list[str]]:
    """Every text and JSON value of every table of the warehouse, by (table, column); read
    over one connection (one per column was most of the tests' time)."""
    warehouse = DuckDBWarehouse(settings.target_url)
    try:
        columns = warehouse.query(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE data_type IN ('VARCHAR', 'JSON')",
        )
        out: dict[tuple[str, str], list[str]] = {}
        for table, column in columns:
            rows = warehouse.query(f'SELECT "{column}" FROM "{table}" WHERE "{column}" IS NOT NULL')
            out[table, column] = [str(v) for (v,) in rows]
        return out
    finally:
        warehouse.close()


def _holding_names(settings: Settings) -> set[tuple[str, str]]:
    """The (table, column) pairs where some value holds a staff name in clear."""
    return {
        where
        for where, values in _texts(settings).items()
        if any(name in value for value in values for name in STAFF)
    }


@pytest.mark.parametrize("name", ["hash", "drop", "hash-personal-kept"])
def test_no_staff_name_is_left_in_clear_anywhere_in_the_warehouse(synced: Any, name: str) -> None:
    """Under hash or drop, no text or JSON value of any table (the journal's raw `data`,
    `extra`, orders' additionaldata, `rejects`' raw records included) holds a staff name,
    even when personal data is kept; the simulator's rejected z-reports are in `rejects`."""
    settings = synced(name)
    assert _holding_names(settings) == set()
    assert query(settings, "SELECT count(*) FROM rejects WHERE stream = 'pos_z_reports'")[0][0]
    if name == "hash-personal-kept":  # orders' additionaldata is kept, its staff name hashed
        kept = query(settings, "SELECT additionaldata FROM orders WHERE registerid IS NOT NULL")
        names = {json.loads(a).get("pos-staffsales-name") for (a,) in kept}
        assert names - {None}
        assert names - {None} <= {HASH.digest(n) for n in STAFF}


def test_keep_leaves_the_names_where_they_were(synced: Any) -> None:
    """Under keep (the default) the names are stored as sent: the staff columns, the raw
    journal `data` and a rejected z-report's raw record hold them, as before the setting."""
    settings = synced("keep")
    assert Settings.model_fields["staff_names"].default == "keep"
    holding = _holding_names(settings)
    assert {
        ("pos_z_reports", "staff"),
        ("journal_cash_events", "staff"),
        ("journal_staff_events", "staff"),
        ("journal_entries", "data"),
        ("rejects", "raw"),
    } <= holding
    staff = query(settings, "SELECT DISTINCT staff FROM journal_staff_events")
    assert {s for (s,) in staff} <= set(STAFF)


def test_hash_is_the_personal_data_hash_of_the_name(synced: Any) -> None:
    """A hashed staff name is PersonalData's keyed HMAC of the name, the same in every
    table and in the raw `data`; `users` hashes first and last names apart, so a staff
    hash does not join their hashes (their user ids do)."""
    settings = synced("hash")
    digests = {HASH.digest(name): name for name in STAFF}
    for table in ("pos_z_reports", "journal_cash_events", "journal_staff_events"):
        stored = {s for (s,) in query(settings, f"SELECT DISTINCT staff FROM {table}")}
        assert stored
        assert stored <= set(digests), table
    logins = query(
        settings,
        "SELECT e.data, s.staff FROM journal_entries e JOIN journal_staff_events s "
        "USING (registerid, id)",
    )
    assert logins
    assert all(json.loads(data)["staff"] == staff for data, staff in logins)
    users = query(settings, "SELECT namefirst, namelast FROM users WHERE is_staff")
    assert {(HASH.digest("Anna"), HASH.digest("Berg"))} <= set(users)
    assert not set(digests) & {v for row in users for v in row}


def test_drop_stores_null(synced: Any) -> None:
    """Under drop every staff column is NULL and the raw `data` holds `"staff": null`."""
    settings = synced("drop")
    for table in ("pos_z_reports", "journal_cash_events", "journal_staff_events"):
        assert query(settings, f"SELECT count(*) FROM {table} WHERE staff IS NOT NULL") == [(0,)]
        assert query(settings, f"SELECT count(*) FROM {table}")[0][0]
    data = query(settings, "SELECT data FROM journal_entries WHERE type = 'login'")
    assert data
    assert all(json.loads(d)["staff"] is None for (d,) in data)


# ---- the journal normalizers ------------------------------------------------------------


def _pages(**config: Any) -> list[bytes]:
    return simulator_pages(**config)


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize(
    "config",
    [{}, {"lazy_journal_size": 3000, "journal_unknown_field_every": 9}],
    ids=["day-journals", "lazy-undeclared-fields"],
)
def test_the_fast_and_reference_normalizers_agree(mode: str, config: dict[str, Any]) -> None:
    """Under each mode the columnar path (on the path it takes, undeclared fields going the
    reference way alone) makes exactly the reference normalizer's tables."""
    for body in _pages(**config):
        entries = decode_page(body)["items"]
        fast = normalize_entries(entries, staff_names(_settings(mode)))
        assert fast is not None
        assert_same_window(fast, reference(_DICTS.decode(body)["items"], _context(mode)))
        assert_same_window(
            normalize_window(entries, _context(mode)),
            reference(_DICTS.decode(body)["items"], _context(mode)),
        )


def _settings(mode: str) -> Settings:
    return Settings(staff_names=mode, personal_data_key=SecretStr(KEY))


@pytest.mark.parametrize("mode", ["hash", "drop"])
def test_windows_joined_minimize_as_each_alone(mode: str) -> None:
    """Windows of several registers normalized together minimize names as each does alone."""
    windows = [decode_page(body)["items"] for body in _pages()]
    joined = journal_pages.normalize_windows([(w, _context(mode)) for w in windows])
    for window, got in zip(windows, joined, strict=True):
        assert_same_window(got, normalize_window(window, _context(mode)))
        staff = got.tables["journal_staff_events"]["staff"].to_pylist()
        assert staff
        assert not set(staff) & set(STAFF)


@pytest.mark.parametrize("mode", ["hash", "drop"])
def test_a_rejected_journal_entry_keeps_no_name(mode: str) -> None:
    """A malformed journal entry is rejected the same way by both paths, and its raw record
    in `rejects` holds the minimized name, not the name."""
    pages = _pages(lazy_journal_size=3000, journal_malformed_every=5)
    rejects = 0
    for body in pages:
        got = normalize_window(decode_page(body)["items"], _context(mode))
        assert_same_window(got, reference(_DICTS.decode(body)["items"], _context(mode)))
        for reject in got.rejects:
            rejects += 1
            assert not any(name in reject.raw for name in STAFF)
    assert rejects
    named = [
        r
        for body in pages
        for r in reference(_DICTS.decode(body)["items"]).rejects
        if any(name in r.raw for name in STAFF)
    ]
    assert named  # kept, the same rejects hold names: the check above has something to find


def test_only_the_name_of_a_raw_data_text_changes() -> None:
    """Hashed, an entry's `data` text is the text as sent with only the name's value
    replaced; an entry without a name keeps its text byte for byte, and the same object."""
    entries = decode_page(_pages()[0])["items"]
    window = normalize_window(entries, _context("hash"))
    stored = dict(
        zip(
            window.tables["journal_entries"]["id"].to_pylist(),
            window.tables["journal_entries"]["data"].to_pylist(),
            strict=True,
        )
    )
    named = 0
    for entry in entries:
        raw = bytes(entry.data).decode()
        name = _DICTS.decode(raw).get("staff")
        if name is None:
            assert stored[entry.id] == raw
            continue
        named += 1
        want = raw.replace(json.dumps(name), json.dumps(HASH.digest(name)))
        assert stored[entry.id] == want
    assert named


def test_keep_does_not_look_for_names(monkeypatch: pytest.MonkeyPatch) -> None:
    """Under keep (and with no setting in the context) the journal's hot path never looks
    for a name: it costs nothing."""

    def refuse(*_args: Any) -> Any:
        raise AssertionError("looked for staff names under keep")

    monkeypatch.setattr(journal_pages, "texts_without_names", refuse)
    entries = decode_page(_pages()[0])["items"]
    for context in ({}, _context("keep")):
        assert normalize_entries(entries, personal.staff_names(context)) is not None
        normalize_window(entries, context)
        journal_pages.normalize_windows([(entries, context)])


# ---- the raw text and the decoded value --------------------------------------------------


@pytest.mark.parametrize(
    ("text", "want", "name"),
    [
        (b'{"staff":"Anna Berg","x":1}', b'{"staff":@,"x":1}', "Anna Berg"),
        (b'{ "staff" : "Anna Berg" }', b'{ "staff" : @ }', "Anna Berg"),
        (b'{"a":{"b":[{"staff":"Li Wei"}]}}', b'{"a":{"b":[{"staff":@}]}}', "Li Wei"),
        (b'{"pos-staffsales-name":"Li Wei"}', b'{"pos-staffsales-name":@}', "Li Wei"),
        (b'{"staff":"Sara \\"S\\" Holm"}', b'{"staff":@}', 'Sara "S" Holm'),
        (b'{"staff":"\xc3\x85sa"}', b'{"staff":@}', "\u00c5sa"),
        (b'{"staff":{"name":"Li Wei"}}', b'{"staff":@}', {"name": "Li Wei"}),
        (b'{"staff":"","n":"x"}', b'{"staff":null,"n":"x"}', None),
        (b'{"staff":null,"n":"x"}', None, None),
        (b'{"note":"say \\"staff\\": x"}', None, None),
        (b'{"a\\"staff":"kept"}', None, None),
        (b'{"pos-staff-userid":"{GUID}","staffuserid":"u1"}', None, None),
    ],
)
def test_a_raw_text_has_only_its_names_replaced(text: bytes, want: bytes | None, name: Any) -> None:
    """Each staff-name field's value (`@` in `want`), at any depth and however spaced or
    escaped, is replaced by its hash; ids, other fields, a null and a key's lookalike inside
    a string are not, and a text without a name is returned as the same object."""
    got = text_without_names(text, HASH)
    if want is None:
        assert got is text
        return
    assert got == want.replace(b"@", json.dumps(HASH.digest(name)).encode())
    assert without_names(json.loads(text), HASH) == json.loads(got)
    assert text_without_names(text, MODES["keep"]) is text


def test_texts_are_searched_together_and_rewritten_where_a_name_is() -> None:
    """Of a list of texts only those holding a name are new objects; none holding one gives
    the list itself back."""
    texts = [b'{"a":1}', b'{"staff":"Li Wei"}', b"null", b'{"pos-staff-userid":"x"}']
    got = texts_without_names(texts, MODES["drop"])
    assert got[1] == b'{"staff":null}'
    assert all(got[i] is texts[i] for i in (0, 2, 3))
    plain = [texts[0], texts[2], texts[3]]
    assert texts_without_names(plain, HASH) is plain


def test_a_decoded_value_is_copied_only_where_a_name_is() -> None:
    """Minimizing a decoded record copies the objects on a name's path and shares the rest."""
    record: dict[str, Any] = {"id": 1, "items": [{"x": 1}], "data": {"staff": "Li Wei"}}
    got = without_names(record, MODES["drop"])
    assert got == {"id": 1, "items": [{"x": 1}], "data": {"staff": None}}
    assert got["items"] is record["items"]
    assert record["data"]["staff"] == "Li Wei"  # the original is not changed
    assert without_names(record["items"], HASH) is record["items"]


# ---- the z-reports' generic normalizer ----------------------------------------------------


@pytest.mark.parametrize("mode", list(MODES))
def test_a_z_reports_staff_follows_the_mode_and_its_reject_too(mode: str) -> None:
    """A POS z-report's `staff` is kept, hashed or dropped, its `staffuserid` kept; a
    rejected z-report (a bad key, and a bad value found while building) keeps the name only
    under keep."""
    report = {**vendor_example(), "staff": "Anna Berg"}
    context = {**_context(mode), "timezone": "Europe/Stockholm"}
    [row] = pos_z_reports([report], context).tables["pos_z_reports"].to_pylist()
    assert row["staff"] == MODES[mode].minimized("Anna Berg")
    assert row["staffuserid"] == report["staffuserid"]
    bad_key = {**report, "registerid": None}
    bad_value = {**report, "zreportid": 3, "moneysalestotal": "1.005"}
    window = pos_z_reports([bad_key, bad_value], context)
    assert len(window.rejects) == 2
    for reject in window.rejects:
        assert ("Anna Berg" in reject.raw) is (mode == "keep")
        if mode == "hash":
            assert json.loads(reject.raw)["staff"] == HASH.digest("Anna Berg")


# ---- the setting ---------------------------------------------------------------------------


def test_hash_without_a_key_is_one_line_naming_both_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """SITOO_STAFF_NAMES=hash needs SITOO_PERSONAL_DATA_KEY, of the same length as for
    personal data: else one line names both settings; a value not among keep, hash and drop
    is refused too."""
    monkeypatch.setenv("SITOO_STAFF_NAMES", "hash")
    with pytest.raises(ConfigError) as missing:
        load_settings()
    message = str(missing.value)
    assert "\n" not in message
    assert "SITOO_STAFF_NAMES=hash" in message
    assert "SITOO_PERSONAL_DATA_KEY" in message
    monkeypatch.setenv("SITOO_PERSONAL_DATA_KEY", "short")
    with pytest.raises(ConfigError) as short:
        load_settings()
    assert "\n" not in str(short.value)
    assert "SITOO_STAFF_NAMES=hash" in str(short.value)
    assert "SITOO_PERSONAL_DATA_KEY: at least 16" in str(short.value)
    monkeypatch.setenv("SITOO_PERSONAL_DATA_KEY", KEY)
    settings = load_settings()
    assert staff_names(settings) == HASH
    assert KEY in settings.secrets()
    monkeypatch.setenv("SITOO_STAFF_NAMES", "mask")
    with pytest.raises(ConfigError, match="SITOO_STAFF_NAMES"):
        load_settings()


def test_every_staff_column_documents_the_setting() -> None:
    """Every column holding a staff name says it follows SITOO_STAFF_NAMES, and every staff
    id column says it is an id kept whatever the setting."""
    named = ids = 0
    for table in all_tables():
        for column in table.columns:
            if column.name == "staff":
                named += 1
                assert "SITOO_STAFF_NAMES says" in column.description, table.name
            elif column.name in ("staffuserid", "staff_userid", "staff_externalid"):
                ids += 1
                assert "an id, kept whatever SITOO_STAFF_NAMES says" in column.description
    assert named == 3
    assert ids == 5
