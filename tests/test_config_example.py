"""The example config file shipped in config/ is valid for the settings it documents."""

from __future__ import annotations

from pathlib import Path

import pytest

from sitoo_sync.settings import Settings, env_name, load_settings

EXAMPLE = Path(__file__).parent.parent / "config" / "sitoo-sync.example.toml"


def test_example_config_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every key in the example parses; the password file it names is read."""
    secret = tmp_path / "pw"
    secret.write_text("x")
    text = EXAMPLE.read_text().replace("/run/secrets/sitoo_api_password", str(secret))
    config = tmp_path / "c.toml"
    config.write_text(text)
    settings = load_settings(config)
    assert settings.api_id == "10020-140"
    assert settings.resolved_account_id == "10020"
    assert settings.v2_base_url == "https://api.mysitoo.com/v2/accounts/10020"
    assert settings.z_reports_base_url == settings.v2_base_url


def test_every_setting_is_documented_in_the_example() -> None:
    """No setting is missing from config/sitoo-sync.example.toml."""
    text = EXAMPLE.read_text()
    for field in Settings.model_fields:
        assert field in text, f"{field} ({env_name(field)}) is not in the example config"


def test_uncommented_schedules_load_and_list_every_streams_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Uncommenting the example's [schedules] table, as its comments invite, loads; it lists
    every stream with its default schedule, and `run` accepts it with the streams enabled by
    default (it names opt-in ones too: `users` made every command fail) and with all."""
    from sitoo_sync.service import stream_schedules
    from sitoo_sync.streams import STREAMS, select_streams

    secret = tmp_path / "pw"
    secret.write_text("x")
    text = EXAMPLE.read_text().replace("/run/secrets/sitoo_api_password", str(secret))
    table = text[text.index("# [schedules]") :]
    text = text.replace(table, "\n".join(line[2:] for line in table.splitlines()) + "\n")
    config = tmp_path / "c.toml"
    config.write_text(text)
    settings = load_settings(config)
    assert settings.schedules == {s.name: s.default_schedule for s in STREAMS.values()}
    assert settings.log_format == "json"  # keys above the table stay outside it
    assert set(stream_schedules(settings, list(STREAMS.values()))) == set(STREAMS)
    enabled = select_streams(None, settings.stream_options)
    assert len(enabled) < len(STREAMS)  # an opt-in stream is named in the table
    assert set(stream_schedules(settings, enabled)) == {s.name for s in enabled}


def test_run_help_lists_every_streams_default_schedule(capsys: pytest.CaptureFixture[str]) -> None:
    """`run --help` names each stream of the registry with its default schedule."""
    from sitoo_sync.cli import main
    from sitoo_sync.streams import STREAMS

    with pytest.raises(SystemExit):
        main(["run", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    for stream in STREAMS.values():
        assert f"{stream.name} {stream.default_schedule}" in out
