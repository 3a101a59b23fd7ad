"""Found in an operations review: what an operator meets running the CLI and the service."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from sitoo_sync.cli import main
from sitoo_sync.settings import Settings

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"


@pytest.mark.parametrize("fmt", ["console", "json"])
def test_a_refused_url_setting_does_not_print_the_password_it_holds(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], fmt: str
) -> None:
    """A configuration error that quotes a URL setting back (a wrong scheme) masks the
    credentials in it on the console as the JSON log does: one line, exit 2, no password."""
    monkeypatch.setenv("SITOO_LOG_FORMAT", fmt)
    monkeypatch.setenv("SITOO_API_ID", "1500-1")
    monkeypatch.setenv("SITOO_API_PASSWORD", "apipw-abcdefgh")
    monkeypatch.setenv("SITOO_API_BASE_URL", "ftp://admin:hunter2@sitoo.example/v2/accounts/1")
    assert main(["run", "--once"]) == 2
    captured = capsys.readouterr()
    assert "SITOO_API_BASE_URL" in captured.err
    assert "hunter2" not in captured.err + captured.out
    assert len(captured.err.splitlines()) == 1


def test_the_cronjobs_pods_are_given_the_time_a_graceful_stop_takes() -> None:
    """A CronJob pod stopped mid-tick (its deadline, a node drain) is killed only after the
    graceful stop's time, as the Deployment's is, not after Kubernetes' default 30 s: a
    `run --once` stops as the service's ticks do, after the window in flight commits."""
    job = yaml.safe_load((DEPLOY / "kubernetes-cronjob.yaml").read_text())
    pod = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    stop = Settings.model_fields["stop_timeout_seconds"].default
    assert pod.get("terminationGracePeriodSeconds", 30) > stop
