"""The files in deploy/ are valid: units verify, manifests parse, the image's install works."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from sitoo_sync import cli

ROOT = Path(__file__).parent.parent
DEPLOY = ROOT / "deploy"
SITOO_SYNC = Path(sys.executable).parent / "sitoo-sync"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not found")
@pytest.mark.parametrize(
    "units",
    [["sitoo-sync.service"], ["sitoo-sync-once.service", "sitoo-sync-once.timer"]],
)
def test_systemd_units_verify(units: list[str], tmp_path: Path) -> None:
    """`systemd-analyze verify` accepts the units (ExecStart pointed at this install)."""
    for unit in units:
        text = (DEPLOY / unit).read_text()
        text = text.replace("/opt/sitoo-sync/.venv/bin/sitoo-sync", str(SITOO_SYNC))
        (tmp_path / unit).write_text(text)
    result = subprocess.run(
        ["systemd-analyze", "verify", *(str(tmp_path / u) for u in units)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "sitoo-sync run" in (DEPLOY / units[0]).read_text()


def test_service_unit_gives_the_graceful_stop_time_to_work() -> None:
    """systemd waits longer than sitoo-sync's own stop timeout before it kills."""
    text = (DEPLOY / "sitoo-sync.service").read_text()
    assert "KillSignal=SIGTERM" in text
    timeout = int(re.search(r"TimeoutStopSec=(\d+)", text).group(1))  # type: ignore[union-attr]
    assert timeout > 60  # SITOO_STOP_TIMEOUT_SECONDS defaults to 60


def test_service_unit_does_not_restart_on_a_configuration_error() -> None:
    """A configuration error (exit 2, which a restart cannot mend) stops the unit as failed
    instead of restarting it every RestartSec, while a failed tick (exit 1) still restarts."""
    text = (DEPLOY / "sitoo-sync.service").read_text()
    assert "Restart=on-failure" in text
    assert re.search(r"^RestartPreventExitStatus=2$", text, re.MULTILINE)
    assert cli.EXIT_USAGE == 2


def test_crontab_line_runs_one_tick() -> None:
    """The crontab example has five schedule fields and runs `run --once`."""
    lines = [
        line
        for line in (DEPLOY / "crontab.example").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    [line] = lines
    fields = line.split()
    assert len(fields) > 5
    assert all(re.fullmatch(r"[\d*/,-]+", f) for f in fields[:5])
    assert "sitoo-sync run --once" in line


def test_crontab_line_keeps_the_exit_code_and_the_units_settings() -> None:
    """No pipe hides sitoo-sync's exit code from cron, and the line sets what the one-shot
    systemd unit sets (config file, password file)."""
    [line] = [
        line
        for line in (DEPLOY / "crontab.example").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert "|" not in line
    unit = (DEPLOY / "sitoo-sync-once.service").read_text()
    for setting in re.findall(r"^Environment=(SITOO_\w+=\S+)$", unit, flags=re.M):
        assert setting in line.split(), setting


def test_compose_file_has_the_service_and_postgres() -> None:
    """compose.yaml parses, builds from the Dockerfile and targets its PostgreSQL."""
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert services["warehouse"]["image"].startswith("postgres")
    app = services["sitoo-sync"]
    assert app["build"]["dockerfile"] == "deploy/Dockerfile"
    assert app["environment"]["SITOO_TARGET_URL"].startswith("postgresql://")
    assert app["environment"]["SITOO_API_PASSWORD_FILE"] == "/run/secrets/sitoo_api_password"
    assert app["depends_on"]["warehouse"]["condition"] == "service_healthy"


def test_kubernetes_cronjob_runs_one_tick_as_non_root() -> None:
    """The CronJob parses, forbids overlap, runs `run --once` as a non-root user."""
    job = yaml.safe_load((DEPLOY / "kubernetes-cronjob.yaml").read_text())
    assert job["kind"] == "CronJob"
    spec = job["spec"]
    assert spec["concurrencyPolicy"] == "Forbid"
    pod = spec["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    [container] = pod["containers"]
    assert container["args"] == ["run", "--once"]
    env = {e["name"] for e in container["env"]}
    assert {"SITOO_API_ID", "SITOO_API_PASSWORD_FILE", "SITOO_TARGET_URL"} <= env


def test_dockerfile_runs_as_non_root_and_installs_what_it_copies(tmp_path: Path) -> None:
    """The Dockerfile's COPY lines bring all a build needs: a wheel builds from just those."""
    text = (DEPLOY / "Dockerfile").read_text()
    assert re.search(r"^USER sitoo$", text, re.M)
    assert 'ENTRYPOINT ["sitoo-sync"]' in text
    context = tmp_path / "src"
    context.mkdir()
    for sources in re.findall(r"^COPY (.+) \./?\S*$", text, re.M):
        for source in sources.split():
            path = ROOT / source
            target = context / source
            if path.is_dir():
                shutil.copytree(path, target, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(path, target)
    install = re.search(r'^RUN pip install "(\.\[[a-z,]+\])"', text, re.M)
    assert install is not None
    wheels = tmp_path / "wheels"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "-w",
            str(wheels),
            str(context),
        ],
        check=True,
    )
    [wheel] = wheels.glob("sitoo_sync-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "sitoo_sync/cli.py" in names
    assert "sitoo_sync/py.typed" in names
    metadata = next(n for n in names if n.endswith("METADATA"))
    text = zipfile.ZipFile(wheel).read(metadata).decode()
    for extra in install.group(1)[2:-1].split(","):
        assert f"Provides-Extra: {extra}" in text


def test_kubernetes_deployment_runs_replicas_of_the_service_with_its_secret_and_probes() -> None:
    """The Deployment parses: several replicas of `run` as non-root, the password file from
    the Secret's volume, readiness on /healthz at the metrics port, memory bounded, and a
    grace period longer than the service's own stop timeout."""
    deployment = yaml.safe_load((DEPLOY / "kubernetes-deployment.yaml").read_text())
    assert deployment["kind"] == "Deployment"
    spec = deployment["spec"]
    assert spec["replicas"] >= 2
    assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()
    pod = spec["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["terminationGracePeriodSeconds"] > 60  # SITOO_STOP_TIMEOUT_SECONDS
    [container] = pod["containers"]
    assert container["args"] == ["run"]
    env = {e["name"]: e for e in container["env"]}
    assert env["SITOO_TARGET_URL"]["valueFrom"]["secretKeyRef"]["name"] == "sitoo-sync"
    port = int(env["SITOO_METRICS_PORT"]["value"])
    assert env["SITOO_METRICS_HOST"]["value"] == "0.0.0.0"
    [named] = [p for p in container["ports"] if p["containerPort"] == port]
    assert container["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": named["name"]}
    assert container["livenessProbe"]["httpGet"]["port"] == named["name"]
    # The password file is the Secret's key, mounted where SITOO_API_PASSWORD_FILE points.
    password = Path(env["SITOO_API_PASSWORD_FILE"]["value"])
    [mount] = [m for m in container["volumeMounts"] if Path(m["mountPath"]) == password.parent]
    [volume] = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    assert volume["secret"]["secretName"] == "sitoo-sync"
    assert [i["path"] for i in volume["secret"]["items"]] == [password.name]
    resources = container["resources"]
    request = _mebibytes(resources["requests"]["memory"])
    limit = _mebibytes(resources["limits"]["memory"])
    assert 310 <= request <= limit  # 310 MiB: the highest peak RSS of a journal backfill


def _mebibytes(quantity: str) -> int:
    match = re.fullmatch(r"(\d+)(Mi|Gi)", quantity)
    assert match is not None, quantity
    return int(match.group(1)) * (1024 if match.group(2) == "Gi" else 1)
