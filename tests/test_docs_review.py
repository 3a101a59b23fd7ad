"""The user-facing documentation says what the code does: the README's BI queries answer
what their comments say on every target, every setting is in the README's table, the
example config's advice loads, and the one-line errors give advice that works."""

from __future__ import annotations

import os
import re
import sqlite3
import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest

from sitoo_sync.errors import ConfigError
from sitoo_sync.settings import Settings, env_name, load_settings
from sitoo_sync.streams import STREAMS
from sitoo_sync.warehouse.sqla import make_engine
from tests.targets import Target, grouped_targets, holding_rows

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text()
EXAMPLE = (ROOT / "config" / "sitoo-sync.example.toml").read_text()

TODAY = datetime.now(UTC).date()
#: The README's "last 30 days" as it tells a SQLite user to write them.
SQLITE_30_DAYS = ("current_date - INTERVAL '30' DAY", "date('now', '-30 days')")


def readme_queries() -> dict[str, str]:
    """The README's ```sql statements, by their leading comment (the first has none)."""
    blocks = re.findall(r"```sql\n(.*?)```", README, re.S)
    queries: dict[str, str] = {}
    for statement in (s.strip() for block in blocks for s in block.split(";")):
        if statement:
            title = statement.splitlines()[0] if statement.startswith("--") else ""
            queries[title.removeprefix("-- ")] = statement
    return queries


def readme_query(words: str) -> str:
    """The README's one SQL statement whose leading comment has `words` in it."""
    (sql,) = [sql for title, sql in readme_queries().items() if words in title]
    return sql


def _closing(n: int, currency: str, diff: str) -> dict[str, Any]:
    """A POS closing `diff` off in its cash drawer."""
    return {
        "registerid": "{R1}",
        "zreportid": n,
        "store_id": "S1",
        "business_date": TODAY - timedelta(days=3),
        "datecreated": datetime.now(UTC) - timedelta(days=3, hours=n),
        "dateadded": datetime.now(UTC) - timedelta(days=3, hours=n),
        "currencycode": currency,
        "moneycash_expected": Decimal("1000.00"),
        "moneycash_counted": Decimal("1000.00") + Decimal(diff),
        "moneycash_diff": Decimal(diff),
    }


def _receipt(n: int, currency: str) -> dict[str, Any]:
    return {
        "registerid": "{R1}",
        "id": n,
        "store_id": "S1",
        "business_date": TODAY - timedelta(days=3),
        "currencycode": currency,
        "isrefund": False,
        "ispractice": False,
    }


def _item(n: int, currency: str, sku: str, price: str) -> dict[str, Any]:
    return {
        "registerid": "{R1}",
        "id": n,
        "position": 0,
        "productid": str(n),
        "sku": sku,
        "name": sku,
        "decimalunitquantity": Decimal(1),
        "moneyrowprice": Decimal(price),
        "currencycode": currency,
    }


def _store_report(zid: str, day: date) -> dict[str, Any]:
    return {
        "store_zreport_id": zid,
        "store_id": "S1",
        "store_name": "Store One",
        "day_created": day,
        "currency_code": "SEK",
    }


def _payment(zid: str, name: str, amount: str) -> dict[str, Any]:
    return {
        "store_zreport_id": zid,
        "section": "sales",
        "position": 0,
        "name": name,
        "moneytotal": Decimal(amount),
        "currency_code": "SEK",
    }


#: Twelve SEK products at 1000+ and one EUR product at 50 (a EUR sells for ~11 SEK);
#: eleven SEK closings 20.00 off and one EUR closing 5.00 off; a card payment two days ago
#: and a cash payment 400 days ago.
ROWS: dict[str, list[dict[str, Any]]] = {
    "journal_receipts": [_receipt(n, "SEK") for n in range(1, 13)] + [_receipt(13, "EUR")],
    "journal_receipt_items": [_item(n, "SEK", f"SEK-{n}", f"{1000 + n}.00") for n in range(1, 13)]
    + [_item(13, "EUR", "EUR-1", "50.00")],
    "pos_z_reports": [_closing(n, "SEK", "20.00") for n in range(1, 12)]
    + [_closing(12, "EUR", "-5.00")],
    "store_z_reports": [
        _store_report("recent", TODAY - timedelta(days=2)),
        _store_report("old", TODAY - timedelta(days=400)),
    ],
    "store_z_report_payments": [
        _payment("recent", "Card", "100.00"),
        _payment("old", "Cash", "50"),
    ],
}


@pytest.fixture(scope="module", params=grouped_targets("docs-review"))
def bi(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Target]:
    """Every table and view on each target, holding ROWS."""
    with holding_rows(request.param, tmp_path_factory.mktemp(request.param), ROWS) as target:
        yield target


def as_bi_user(target: Target, sql: str) -> list[tuple[Any, ...]]:
    """What `sql` reads on `target` for a BI user connected to it as the README says: the
    DuckDB or SQLite file itself, or the server database with the target's schema as the
    default one (SQLite's 30 days written as the README says for it)."""
    if target.name == "duckdb":
        with duckdb.connect(target.url.removeprefix("duckdb:///"), read_only=True) as file:
            return file.sql(sql).fetchall()
    if target.name == "sqlite":
        lite = sqlite3.connect(target.url.removeprefix("sqlite:///"))
        try:
            return lite.execute(sql.replace(*SQLITE_30_DAYS)).fetchall()
        finally:
            lite.close()
    assert target.schema
    if target.name == "postgres":
        url = f"{target.url}?options=-csearch_path%3D{target.schema}"
    else:
        url = f"{target.url.rsplit('/', 1)[0]}/{target.schema}"
    engine = make_engine(url)
    try:
        with engine.connect() as con:
            return [tuple(r) for r in con.exec_driver_sql(sql.replace("%", "%%")).all()]
    finally:
        engine.dispose()


def test_every_readme_query_runs_on_every_target(bi: Target) -> None:
    """Each statement of the README's SQL examples runs as written (SQLite's 30 days as the
    README says to write them there)."""
    for title, sql in readme_queries().items():
        try:
            as_bi_user(bi, sql)
        except Exception as exc:  # the failing statement is the message
            pytest.fail(f"README query {title!r} fails on {bi.name}: {exc}")


def test_payment_mix_of_the_last_30_days_leaves_older_days_out(bi: Target) -> None:
    """ "The last 30 days" keeps a payment of 400 days ago out on every target
    (`current_date - 30` is a number on MariaDB and SQLite, which every day passes)."""
    sql = readme_query("payment mix")
    found = [(c, p, Decimal(str(paid))) for c, p, paid in as_bi_user(bi, sql)]
    assert found == [("SEK", "Card", Decimal("100.00"))]


def test_best_sellers_are_ranked_within_each_currency(bi: Target) -> None:
    """The best-sellers example gives each currency its top ten: a EUR product's 50.00
    is not ranked below twelve SEK amounts and dropped."""
    sql = readme_query("best sellers")
    found = as_bi_user(bi, sql)
    assert [(r[0], r[1]) for r in found] == [("EUR", "EUR-1")] + [
        ("SEK", f"SEK-{n}") for n in range(12, 2, -1)
    ]


def test_largest_cash_differences_are_ranked_within_each_currency(bi: Target) -> None:
    """The cash-differences example lists each currency's largest: a EUR closing 5.00 short
    is not pushed out by eleven SEK closings 20.00 over."""
    sql = readme_query("cash differences")
    found = [(r[0], Decimal(str(r[-1]))) for r in as_bi_user(bi, sql)]
    assert found == [("EUR", Decimal("-5.00"))] + [("SEK", Decimal("20.00"))] * 10


def _settings_table() -> str:
    """The rows of the README's table of settings (under ### Settings)."""
    section = README[README.index("### Settings") :]
    return section[: section.index("Each stream's own settings")]


def documented_settings() -> set[str]:
    """The variables the README's settings table names, `..._X` spelled out from the name
    before it (`SITOO_LOAD_BATCH_ROWS` / `..._SECONDS`)."""
    names: set[str] = set()
    for line in _settings_table().splitlines():
        if not line.startswith("| `"):
            continue
        previous = ""
        for written in re.findall(r"`([A-Z_.]+)`", line.split("|")[1]):
            suffix = written.removeprefix("..._")
            name = written
            if suffix != written:
                name = f"{previous.rsplit('_', suffix.count('_') + 1)[0]}_{suffix}"
            names.add(name)
            previous = name
    return names


def test_every_setting_is_in_the_readme_settings_table() -> None:
    """Every setting has its row in the README's table (SITOO_PERSONAL_DATA, its key and
    SITOO_STAFF_NAMES were only in prose further down), and every row is a setting."""
    settings = {env_name(f) for f in Settings.model_fields if f != "stream_options"}
    documented = documented_settings()
    assert settings - documented == set()
    assert documented - settings == set()


def test_every_sitoo_variable_the_docs_name_is_read() -> None:
    """A SITOO_* name in the README, the example config or the help texts is a setting, a
    stream's own setting (or its older name), SITOO_CONFIG or a test server's URL."""
    from sitoo_sync import cli

    known = {env_name(f) for f in Settings.model_fields} | {"SITOO_CONFIG"}
    for stream in STREAMS.values():
        for option in stream.options:
            known.update(option.env_names(stream.name))
    text = README + EXAMPLE + Path(cli.__file__).read_text()
    named = set(re.findall(r"SITOO_[A-Z0-9_]*[A-Z0-9]", text))
    named = {n for n in named if not n.startswith("SITOO_TEST_")}
    assert named - known == set()


def test_streams_default_names_the_opt_in_streams() -> None:
    """The README and the example say the default is every stream but the opt-in ones,
    naming them, not "all" (`users` is only synced when named)."""
    opt_in = [s.name for s in STREAMS.values() if not s.enabled_by_default]
    assert opt_in
    row = next(r for r in _settings_table().splitlines() if r.startswith("| `SITOO_STREAMS`"))
    line = next(r for r in EXAMPLE.splitlines() if r.startswith("# streams = "))
    for name in opt_in:
        assert name in row
        assert name in line
    assert "| all |" not in row


def test_example_streams_list_beside_stream_tables_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The example's advice for a list of streams beside `[streams.<name>]` tables, its
    lines uncommented in place with a stream table, loads (a plain `streams = [...]` beside
    such a table is invalid TOML)."""
    for name in [k for k in os.environ if k.startswith("SITOO_")]:
        monkeypatch.delenv(name)
    secret = tmp_path / "pw"
    secret.write_text("x")
    text = EXAMPLE.replace("/run/secrets/sitoo_api_password", str(secret))
    for line in ("# [streams]", "# enabled = ", "# [streams.store_z_reports]", "# lookback_days ="):
        index = text.index(f"\n{line}") + 1
        text = text[:index] + text[index + 2 :]
    config = tmp_path / "c.toml"
    config.write_text(text)
    settings = load_settings(config)
    assert settings.streams == ["pos_z_reports", "journal_entries"]
    assert settings.stream_options == {"store_z_reports": {"lookback_days": 3}}


def test_missing_driver_advice_installs_from_the_clone(monkeypatch: pytest.MonkeyPatch) -> None:
    """A URL whose driver is missing names the extra the way the README installs it, from
    the clone (`pip install '.[mssql]'`), not as an unpublished PyPI package."""
    monkeypatch.setitem(sys.modules, "pyodbc", None)
    with pytest.raises(ConfigError) as err:
        make_engine("mssql+pyodbc://user:pw@dsn")
    assert "pip install '.[mssql]'" in str(err.value)
    assert "sitoo-sync[" not in str(err.value)


def _exit_codes_of_help(capsys: pytest.CaptureFixture[str]) -> dict[str, str]:
    """The `Exit codes:` paragraph of `sitoo-sync --help`, by code: "1" -> what it says."""
    from sitoo_sync.cli import main

    with pytest.raises(SystemExit):
        main(["--help"])
    out = " ".join(capsys.readouterr().out.split())
    text = out[out.index("Exit codes:") :].split(". ", 1)[0]
    return dict(
        re.findall(r"(?:^|[;,] )(\d) (.*?)(?=[;,] \d |$)", text.removeprefix("Exit codes: "))
    )


def test_top_level_help_names_the_exit_code_of_an_unreachable_api(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`sitoo-sync --help` says what `run --once` returns when the API cannot be reached (1)
    and when Sitoo refuses the credentials (2): it named only a failed stream and bad
    configuration."""
    from sitoo_sync.cli import main

    codes = _exit_codes_of_help(capsys)
    assert "API cannot be reached" in codes["1"]
    assert "credentials Sitoo refuses" in codes["2"]
    for name in [k for k in os.environ if k.startswith("SITOO_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("SITOO_API_ID", "1500-1")
    monkeypatch.setenv("SITOO_API_PASSWORD", "x")
    monkeypatch.setenv("SITOO_API_BASE_URL", "http://127.0.0.1:1/v2/accounts/{account_id}")
    monkeypatch.setenv("SITOO_JOURNALS_BASE_URL", "http://127.0.0.1:1/v3")
    monkeypatch.setenv("SITOO_HTTP_MAX_ATTEMPTS", "1")
    monkeypatch.setenv("SITOO_TARGET_URL", f"duckdb:///{tmp_path / 'w.duckdb'}")
    assert main(["run", "--once"]) == 1
    assert "cannot reach the Sitoo API" in capsys.readouterr().err
