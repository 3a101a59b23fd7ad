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
