"""A stream is one declaration: the engine names none, and docs and settings follow the registry."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import pytest

from sitoo_sync.errors import ConfigError
from sitoo_sync.settings import load_settings
from sitoo_sync.streams import STREAMS, select_streams
from sitoo_sync.streams.cursors import CursorPages, DayWindows
from sitoo_sync.streams.reference import BLOCKS, rendered

PACKAGE = Path(__file__).resolve().parent.parent / "sitoo_sync"
#: The generic engine: it syncs whatever the registry declares and names no stream.
ENGINE = [
    PACKAGE / "partition.py",
    PACKAGE / "commit.py",
    PACKAGE / "results.py",
    PACKAGE / "runs.py",
    PACKAGE / "sync.py",
    PACKAGE / "reset.py",
    PACKAGE / "service.py",
    PACKAGE / "cli.py",
    PACKAGE / "locks.py",
    PACKAGE / "progress.py",
    PACKAGE / "inflight.py",
    PACKAGE / "health.py",
    PACKAGE / "turns.py",
    PACKAGE / "metrics.py",
    PACKAGE / "status.py",
    *sorted((PACKAGE / "warehouse").glob("*.py")),
]


def test_no_engine_module_names_a_stream() -> None:
    """No stream name (nor a stream's table name) appears in an engine module, so adding a
    stream never touches the engine."""
    names = set(STREAMS) | {t.name for s in STREAMS.values() for t in s.tables}
    # A compound name (`pos_z_reports`) anywhere; a plain word (`stores`, `sites`) only where
    # it is used as a name: quoted, or in backticks. "the sites of an account" is prose.
    compound = sorted((n for n in names if "_" in n), key=len, reverse=True)
    plain = sorted((n for n in names if "_" not in n), key=len, reverse=True)
    pattern = re.compile(
        r"\b(" + "|".join(compound) + r")\b" + r"|[\"'`](" + "|".join(plain) + r")[\"'`]"
    )
    found = [
        f"{path.relative_to(PACKAGE.parent)}:{n}: {m.group(1)}"
        for path in ENGINE
        if path.exists()
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if (m := pattern.search(line))
    ]
    assert not found, "stream names in engine modules:\n" + "\n".join(found)


def test_generated_stream_docs_are_current() -> None:
    """The README's stream tables and the example config's stream sections are what the
    registry renders (run `python -m sitoo_sync.streams.reference` when this fails)."""
    for path in dict.fromkeys(file for file, _name, _render in BLOCKS):
        text = path.read_text()
        assert rendered(path, text) == text, f"{path.name} is stale"
    readme = BLOCKS[0][0].read_text()
    for name in STREAMS:
        assert f"| `{name}` |" in readme


def test_help_lists_every_stream_with_its_settings(capsys: pytest.CaptureFixture[str]) -> None:
    """`sitoo-sync --help` names every stream, its schedule and its own settings' variables."""
    from sitoo_sync.cli import main

    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for stream in STREAMS.values():
        assert stream.name in out
        for option in stream.options:
            assert option.env_names(stream.name)[0] in out


def test_a_stream_section_in_the_config_file_sets_the_strategy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`[streams.store_z_reports] lookback_days = 5` reaches the stream's cursor strategy, and
    `[streams] enabled` chooses the streams."""
    for option in (o for s in STREAMS.values() for o in s.options):
        for name in option.env_names("store_z_reports") + option.env_names("journal_entries"):
            monkeypatch.delenv(name, raising=False)
    config = tmp_path / "c.toml"
    config.write_text(
        '[streams]\nenabled = ["store_z_reports"]\n'
        "[streams.store_z_reports]\nlookback_days = 5\nstart_day = 2026-01-02\n"
    )
    settings = load_settings(config)
    [stream] = select_streams(settings.streams, settings.stream_options)
    assert isinstance(stream.cursor, DayWindows)
    assert (stream.cursor.lookback_days, stream.cursor.start_day) == (5, date(2026, 1, 2))
    declared = STREAMS["store_z_reports"].cursor
    assert isinstance(declared, DayWindows)
    assert declared.lookback_days == 3  # the declaration itself is untouched


def test_environment_names_and_old_aliases_win_over_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SITOO_STORE_Z_REPORTS_LOOKBACK_DAYS and the old SITOO_JOURNAL_START still work and
    override the config file."""
    config = tmp_path / "c.toml"
    config.write_text("[streams.store_z_reports]\nlookback_days = 5\n")
    monkeypatch.setenv("SITOO_STORE_Z_REPORTS_LOOKBACK_DAYS", "7")
    monkeypatch.setenv("SITOO_JOURNAL_START", "2026-03-01")
    settings = load_settings(config)
    streams = {s.name: s for s in select_streams(None, settings.stream_options)}
    store, journals = streams["store_z_reports"].cursor, streams["journal_entries"].cursor
    assert isinstance(store, DayWindows)
    assert isinstance(journals, CursorPages)
    assert store.lookback_days == 7
    assert journals.start == date(2026, 3, 1)


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ("[streams.store_z_reports]\nlookback = 5\n", "unknown setting 'lookback'"),
        ("[streams.store_z_reports]\nlookback_days = -1\n", "lookback_days: Input should be"),
        ("[streams.no_such]\nx = 1\n", "[streams.no_such]: no such stream"),
    ],
)
def test_a_bad_stream_setting_is_one_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, section: str, message: str
) -> None:
    """An unknown or out-of-range stream setting is a ConfigError naming it."""
    monkeypatch.delenv("SITOO_STORE_Z_REPORTS_LOOKBACK_DAYS", raising=False)
    config = tmp_path / "c.toml"
    config.write_text(section)
    settings = load_settings(config)
    with pytest.raises(ConfigError) as raised:
        select_streams(None, settings.stream_options)
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)


def test_every_stream_declares_its_key_once_on_its_parent_table() -> None:
    """A stream's key is its parent table's key, and every child table hangs under it."""
    for stream in STREAMS.values():
        assert stream.key == stream.tables[0].key
        assert not stream.tables[0].is_child
        for child in stream.tables[1:]:
            assert child.is_child, f"{child.name} of {stream.name} has no parent key"


def test_without_site_ids_a_tick_syncs_every_site_the_account_lists(tmp_path: Path) -> None:
    """Unset SITOO_SITE_IDS means every site of `/sites.json`: the register listing covers
    them all."""
    from sitoo_sync.api.client import make_client
    from sitoo_sync.simulator import SimConfig, Simulator
    from sitoo_sync.sync import run_once
    from sitoo_sync.warehouse import open_warehouse
    from tests.support import query, settings_for

    with Simulator.create(SimConfig(seed=5, days=1, registers_per_store=1)) as sim:
        settings = settings_for(sim, tmp_path / "w.duckdb", site_ids=[])
        assert len(sim.rest.catalog.site_ids()) > 1
        with make_client(settings, sleep=lambda _s: None) as client:
            report = run_once(
                settings, open_warehouse(settings.target_url), client, [STREAMS["cash_registers"]]
            )
        assert report.ok
        assert {r.partition for r in report.results} == {
            str(s) for s in sim.rest.catalog.site_ids()
        }
        listed = {
            site for (site,) in query(settings, "SELECT DISTINCT site_id FROM cash_registers")
        }
        assert listed == set(sim.world.site_ids())


class _Listing:
    """A client whose every REST v2 listing answers `items` (one page)."""

    def __init__(self, items: list[dict[str, object]]) -> None:
        self.items = items

    def get_json(self, *_args: object, **_kwargs: object) -> object:
        return {"totalcount": len(self.items), "items": self.items}


def test_sites_and_warehouses_listed_with_text_ids_are_synced_not_left_out() -> None:
    """A site whose eshopid, or a warehouse whose warehouseid, the API sends as a digit
    string (which the normalizer loads as an integer) is a partition like any other, instead
    of its orders, products or stock being left out of every tick without a word."""
    from typing import Any, cast

    from sitoo_sync.settings import Settings
    from sitoo_sync.streams.partitions import WAREHOUSES, with_every_site

    settings = Settings(api_id="1500-1", api_password="x", site_ids=[])
    sites = _Listing([{"eshopid": "1"}, {"eshopid": 2}, {"eshopid": "two"}])
    assert with_every_site(settings, cast(Any, sites)).site_ids == [1, 2]
    assert WAREHOUSES.listing is not None
    warehouses = _Listing([{"warehouseid": "5"}, {"warehouseid": 6}, {"warehouseid": None}])
    listed = WAREHOUSES.listing.value_pages(cast(Any, warehouses), 1, stream="warehouse_items")
    assert [v for page in listed for v in page] == ["1/5", "1/6"]
