"""Found in an operations review: what an operator meets running the CLI and the service."""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

import pytest
import yaml

from sitoo_sync.cli import main
from sitoo_sync.errors import ConfigError, WarehouseError
from sitoo_sync.settings import Settings, load_settings
from sitoo_sync.warehouse import file_locks
from sitoo_sync.warehouse.file_locks import try_file

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


@pytest.mark.parametrize(
    ("variable", "value", "secret"),
    [
        ("SITOO_TARGET_URL", "postgresql+psycopg//dbuser:hunter2@db/x", "hunter2"),
        ("SITOO_API_BASE_URL", "https//api:hunter2@api.example/v2", "hunter2"),
    ],
)
def test_a_mistyped_url_setting_is_not_quoted_back_with_its_password(
    variable: str, value: str, secret: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A URL setting refused for its form (its `://` mistyped, so no log mask knows where
    its credentials are) is named in the error without the password it holds."""
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as refused:
        load_settings()
    assert variable in str(refused.value)
    assert secret not in str(refused.value)


def test_a_lock_file_that_cannot_be_written_is_one_error_not_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Writing the holder's pid into a lock file on a full disk is a WarehouseError that
    names the file and the cause, and leaves the lock free for the next try."""
    path = tmp_path / "stream.lock"
    opened = file_locks._lock_file

    class Full:
        """The lock file as opened, on a disk with no room left for its pid."""

        def __init__(self, handle: Any) -> None:
            self.handle = handle

        def __getattr__(self, name: str) -> Any:
            return getattr(self.handle, name)

        def write(self, _text: str) -> int:
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(file_locks, "_lock_file", lambda p: Full(opened(p)))
    with pytest.raises(WarehouseError, match="No space left on device") as failed:
        try_file(path)
    monkeypatch.undo()
    assert str(path) in str(failed.value)
    lock = try_file(path)  # nothing held: the next try takes it
    assert lock is not None
    lock.release()
