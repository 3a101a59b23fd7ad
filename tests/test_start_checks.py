"""What `run` checks at its start, against the simulator: a wrong REST base URL, account or
site is told apart from an endpoint that is really not enabled, in one line, exit 2."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from sitoo_sync.api.client import make_client
from sitoo_sync.cli import main
from sitoo_sync.errors import ConfigError
from sitoo_sync.settings import Settings
from sitoo_sync.simulator import Simulator
from sitoo_sync.start_checks import check_credentials
from tests.support import use_simulator

ERROR = "sitoo-sync: configuration error: "


def _run_once(
    sim: Simulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    **env: str,
) -> tuple[int, str]:
    use_simulator(monkeypatch, sim, tmp_path / "w.duckdb")
    for name, value in env.items():
        monkeypatch.setenv(name, value.replace("{port}", str(sim.port)))
    code = main(["run", "--once"])
    return code, capsys.readouterr().err


def test_a_wrong_base_path_is_one_line_naming_the_base_url_and_creates_nothing(
    sim: Simulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A base URL with /v1/ instead of /v2/ stops `run --once` at its start: one line naming
    SITOO_API_BASE_URL and the path it must end in, exit 2, no warehouse file."""
    code, err = _run_once(
        sim,
        tmp_path,
        monkeypatch,
        capsys,
        SITOO_API_BASE_URL="http://127.0.0.1:{port}/v1/accounts/{account_id}",
    )
    assert code == 2
    assert len(err.splitlines()) == 1, err
    assert err.startswith(ERROR + "SITOO_API_BASE_URL: ")
    assert "/v2/accounts/{account_id}" in err
    assert "disabled" not in err
    assert list(tmp_path.iterdir()) == []


def test_a_wrong_account_is_one_line_naming_the_account_setting(
    sim: Simulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """An account number the API does not know stops `run --once` in one line naming
    SITOO_ACCOUNT_ID and the account, exit 2, and shows the API's own error text."""
    code, err = _run_once(sim, tmp_path, monkeypatch, capsys, SITOO_ACCOUNT_ID="1501")
    assert code == 2
    assert len(err.splitlines()) == 1, err
    assert err.startswith(ERROR)
    assert "SITOO_ACCOUNT_ID" in err
    assert "1501" in err
    assert "Unknown account 1501" in err


def test_a_site_the_account_lacks_is_one_line_listing_its_sites(
    sim: Simulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A SITOO_SITE_IDS entry the account does not have is named with the sites it has, exit 2."""
    code, err = _run_once(sim, tmp_path, monkeypatch, capsys, SITOO_SITE_IDS="9")
    assert code == 2
    assert len(err.splitlines()) == 1, err
    assert err.startswith(ERROR + "SITOO_SITE_IDS: ")
    assert "9" in err
    assert "1, 2" in err


def _settings(**values: object) -> Settings:
    base = {"api_id": "1500-7", "api_password": SecretStr("pw"), "http_max_attempts": 2}
    return Settings(**{**base, **values})  # type: ignore[arg-type]


def _check(settings: Settings, handler: httpx.MockTransport) -> None:
    with make_client(settings, transport=handler, sleep=lambda _s: None) as client:
        check_credentials(settings, client, unreachable_is_fatal=True)


def test_an_unconcluded_diagnosis_leaves_the_tick_to_go_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A 404 on the check whose follow-up cannot conclude (the site list fails with a 503)
    is only a warning: the tick goes on, as with any check that cannot conclude."""

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/sites.json"):
            return httpx.Response(503)
        return httpx.Response(404, json={"statuscode": 404, "errortext": "Site not found"})

    _check(_settings(site_ids="1"), httpx.MockTransport(handler))  # no error


def test_a_404_on_a_default_site_with_a_good_site_list_is_no_error() -> None:
    """With SITOO_SITE_IDS unset, the check's default site missing while /sites.json answers
    means the base, account and credentials are right: the tick goes on."""

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/sites.json"):
            return httpx.Response(200, json={"totalcount": 1, "items": [{"eshopid": 4}]})
        return httpx.Response(404, json={"statuscode": 404, "errortext": "Site not found"})

    _check(_settings(), httpx.MockTransport(handler))  # no error


def test_a_404_everywhere_under_a_custom_host_names_the_base_url_and_the_account() -> None:
    """A base of the right shape on which nothing is found names both settings it may be."""

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, text="<html>nope</html>")

    settings = _settings(api_base_url="https://proxy.example/sitoo/v2/accounts/{account_id}")
    with pytest.raises(ConfigError, match=r"^SITOO_API_BASE_URL or the account is wrong") as info:
        _check(settings, httpx.MockTransport(handler))
    assert "SITOO_API_ID" in str(info.value)  # the account comes from the API ID here
    assert "\n" not in str(info.value)
