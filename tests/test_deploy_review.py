"""deploy/ reviewed against what the product does: the settings the files name, the probes
and health check against a running service, exit codes, the build's inputs."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement

from sitoo_sync import cli
from sitoo_sync.settings import Settings, load_settings
from sitoo_sync.simulator import SimConfig, Simulator
from sitoo_sync.streams import unknown_environment
from tests.support import PipeLines

ROOT = Path(__file__).parent.parent
DEPLOY = ROOT / "deploy"
SITOO_SYNC = [sys.executable, "-m", "sitoo_sync"]
DEPLOYMENT = DEPLOY / "kubernetes-deployment.yaml"
CRONJOB = DEPLOY / "kubernetes-cronjob.yaml"


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def _deployment_container() -> dict[str, Any]:
    [container] = _yaml(DEPLOYMENT)["spec"]["template"]["spec"]["containers"]
    return dict(container)


def _cronjob_pod() -> dict[str, Any]:
    return dict(_yaml(CRONJOB)["spec"]["jobTemplate"]["spec"]["template"]["spec"])


def _dockerfile_env() -> dict[str, str]:
    """The image's ENV (one instruction with `\\` continuations)."""
    text = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")
    [line] = [ln for ln in text.splitlines() if ln.startswith("ENV ")]
    return dict(pair.split("=", 1) for pair in shlex.split(line[4:]))


def _healthcheck_command() -> list[str]:
    """The Dockerfile's HEALTHCHECK command as the shell form runs it (`sh -c`)."""
    text = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")
    [line] = [ln for ln in text.splitlines() if ln.startswith("HEALTHCHECK ")]
    return ["/bin/sh", "-c", line.split(" CMD ", 1)[1].strip()]


def _compose_value(text: str, environ: Mapping[str, str]) -> str:
    """A compose value with `${X}`, `${X:-default}` and `${X:?message}` interpolated as
    compose does (an empty variable counts as unset for `:-` and `:?`)."""

    def one(m: re.Match[str]) -> str:
        name, op, arg = m.group(1), m.group(2) or "", m.group(3) or ""
        value = environ.get(name, "")
        if op == ":-":
            return value or arg
        if op == ":?" and not value:
            raise ValueError(arg)
        return value

    return re.sub(r"\$\{(\w+)(:-|:\?)?([^}]*)\}", one, text)


def test_every_setting_the_deploy_files_name_is_one_sitoo_sync_reads() -> None:
    """No SITOO_* name in deploy/ is a misspelling that sitoo-sync would ignore: each is a
    setting, a stream's setting, or SITOO_CONFIG."""
    names = {
        name
        for path in DEPLOY.iterdir()
        if path.is_file()
        for name in re.findall(r"\bSITOO_[A-Z0-9_]*[A-Z0-9]\b", path.read_text())
    }
    assert {"SITOO_API_PASSWORD_FILE", "SITOO_TARGET_URL", "SITOO_METRICS_PORT"} <= names
    assert unknown_environment(dict.fromkeys(names, "x")) == {}


def test_compose_syncs_every_site_when_site_ids_is_not_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """compose.yaml without SITOO_SITE_IDS syncs every site of the account, as sitoo-sync
    does when it is unset, not only site 1."""
    environment = _yaml(DEPLOY / "compose.yaml")["services"]["sitoo-sync"]["environment"]
    shell = {"SITOO_API_ID": "10020-140"}
    for name, text in environment.items():
        monkeypatch.setenv(name, _compose_value(str(text), shell))
    monkeypatch.setenv("SITOO_API_PASSWORD_FILE", "")  # the mounted secret is not here
    assert load_settings().site_ids == []
    monkeypatch.setenv(
        "SITOO_SITE_IDS", _compose_value(environment["SITOO_SITE_IDS"], {"SITOO_SITE_IDS": "3,4"})
    )
    assert load_settings().site_ids == [3, 4]


def test_compose_publishes_metrics_on_the_hosts_loopback_only() -> None:
    """The service's /metrics and /healthz port is not opened to the host's network."""
    ports = _yaml(DEPLOY / "compose.yaml")["services"]["sitoo-sync"]["ports"]
    assert ports
    assert all(str(p).startswith("127.0.0.1:") for p in ports)


def _worst_start_check_seconds(env: Mapping[str, str]) -> float:
    """How long the start's credentials check can take before /metrics listens, against an
    API that accepts and never answers (no Retry-After): every attempt's timeout and the
    longest backoff between them, with the settings `env` gives or their defaults."""
    values = {k.removeprefix("SITOO_").lower(): v for k, v in env.items()}
    fields = Settings.model_fields
    attempts = int(values.get("http_max_attempts", fields["http_max_attempts"].default))
    timeout = float(values.get("http_timeout_seconds", fields["http_timeout_seconds"].default))
    base = float(
        values.get("http_backoff_base_seconds", fields["http_backoff_base_seconds"].default)
    )
    cap = float(values.get("http_backoff_max_seconds", fields["http_backoff_max_seconds"].default))
    backoff = sum(min(cap, base * 2.0**n) for n in range(attempts - 1))
    return attempts * timeout + backoff


def _probe_window(probe: Mapping[str, Any]) -> float:
    """Seconds from the container's start until `probe` has failed enough to act."""
    delay = probe.get("initialDelaySeconds", 0)
    return float(delay + probe.get("periodSeconds", 10) * (probe.get("failureThreshold", 3) - 1))


def test_liveness_waits_for_the_start_check_of_an_api_that_does_not_answer() -> None:
    """A pod started while the API hangs is not restarted before /metrics can listen (186 s
    measured with the defaults): a startup probe on the liveness path outlasts the start's
    credentials check, and the Dockerfile's health check has a start period as long."""
    container = _deployment_container()
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    worst = _worst_start_check_seconds(env)
    assert worst > _probe_window(container["livenessProbe"])  # why the startup probe exists
    startup = container["startupProbe"]
    assert startup["httpGet"] == container["livenessProbe"]["httpGet"]
    assert _probe_window(startup) > worst
    start_period = re.search(r"--start-period=(\d+)s", (DEPLOY / "Dockerfile").read_text())
    assert start_period is not None
    assert int(start_period.group(1)) > worst


def test_cronjob_fails_at_once_on_a_configuration_error(tmp_path: Path) -> None:
    """A configuration error, exit 2 from the CronJob's own command, fails the Job without
    the retry backoffLimit allows, as RestartPreventExitStatus=2 does for systemd."""
    pod = _cronjob_pod()
    [container] = pod["containers"]
    assert pod["restartPolicy"] == "Never"  # podFailurePolicy requires it
    rules = _yaml(CRONJOB)["spec"]["jobTemplate"]["spec"]["podFailurePolicy"]["rules"]
    fail_job = [r["onExitCodes"] for r in rules if r["action"] == "FailJob"]
    assert {"containerName": container["name"], "operator": "In", "values": [cli.EXIT_USAGE]} in (
        fail_job
    )
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SITOO_")},
        "SITOO_API_ID": "10020-140",
        "SITOO_API_PASSWORD": "x",
        "SITOO_TARGET_URL": f"duckdb:///{tmp_path / 'w.duckdb'}",
        "SITOO_CONCURRENCY": "0",
    }
    result = subprocess.run(
        [*SITOO_SYNC, *container["args"]], env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == cli.EXIT_USAGE, result.stderr
    assert "SITOO_CONCURRENCY" in result.stderr


@pytest.fixture
def hanging_journals() -> Iterator[Simulator]:
    """A simulator whose world is small; the journals API is pointed elsewhere by the test."""
    simulator = Simulator.create(SimConfig(seed=5, days=3, malformed_every=0)).start()
    yield simulator
    simulator.stop()


def _get(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.mark.slow
def test_image_health_check_and_liveness_pass_while_a_stream_is_late_and_sigterm_exits_0(
    hanging_journals: Simulator, tmp_path: Path
) -> None:
    """The service run as the image and the Deployment run it (their ENV and env, the
    password from a file) while a stream cannot sync: /healthz is 503, but the Dockerfile's
    HEALTHCHECK command and the startup and liveness probes pass, so nothing restarts it;
    SIGTERM stops it with exit 0 well within terminationGracePeriodSeconds."""
    sim = hanging_journals
    container = _deployment_container()
    password = tmp_path / "api-password"
    password.write_text(f"{sim.password}\n")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SITOO_")},
        **_dockerfile_env(),
        **{e["name"]: e["value"] for e in container["env"] if "value" in e},
        "SITOO_API_ID": sim.api_id,
        "SITOO_API_PASSWORD_FILE": str(password),
        "SITOO_TARGET_URL": f"duckdb:///{tmp_path / 'sitoo.duckdb'}",
        "SITOO_API_BASE_URL": f"{sim.base_url}/v2/accounts/{{account_id}}",
        # Nothing listens there: the journal's ticks fail, so /healthz stays 503.
        "SITOO_JOURNALS_BASE_URL": "http://127.0.0.1:9/v3",
        "SITOO_HTTP_BACKOFF_BASE_SECONDS": "0.01",
        "SITOO_HTTP_BACKOFF_MAX_SECONDS": "0.05",
        "SITOO_METRICS_PORT": "0",  # a free port, read from the service's log
    }
    env.pop("SITOO_TARGET_SCHEMA")  # the manifest's, for its PostgreSQL
    assert env["SITOO_METRICS_HOST"] == "0.0.0.0"
    proc = subprocess.Popen(
        [*SITOO_SYNC, *container["args"]],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines = PipeLines(proc.stderr)
    try:
        port = _wait_for_event(lines, proc, "metrics_listening")["port"]
        _wait_for_event(lines, proc, "run_finished", stream="journal_entries", status="failed")
        assert _get(port, "/healthz") == 503
        check = subprocess.run(
            _healthcheck_command(),
            env={**os.environ, "SITOO_METRICS_PORT": str(port), "PATH": _python_first()},
            capture_output=True,
            text=True,
            check=False,
        )
        assert check.returncode == 0, check.stderr
        for probe in ("startupProbe", "livenessProbe"):
            assert _get(port, container[probe]["httpGet"]["path"]) == 200, probe
        assert _get(port, container["readinessProbe"]["httpGet"]["path"]) == 503
        proc.send_signal(signal.SIGTERM)
        grace = _yaml(DEPLOYMENT)["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        assert proc.wait(timeout=grace) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _python_first() -> str:
    """PATH with this interpreter's directory first: the image's `python` is its Python."""
    return f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"


def _wait_for_event(
    lines: PipeLines,
    proc: subprocess.Popen[str],
    event: str,
    seconds: float = 120,
    **fields: Any,
) -> dict[str, Any]:
    """The first event called `event` with these `fields`, once the service logged it."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = [e for e in lines.events(event) if fields.items() <= e.items()]
        if found:
            return found[0]
        assert proc.poll() is None, f"the service exited ({proc.returncode}) before {event}"
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {event} {fields}")


def _read_only_root_works() -> bool:
    if os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("setpriv") is None:
        return False
    probe = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", "mount -o remount,bind,ro /"],
        capture_output=True,
        check=False,
    )
    return probe.returncode == 0


@pytest.mark.parametrize("manifest", [DEPLOYMENT, CRONJOB], ids=["deployment", "cronjob"])
def test_pods_run_as_the_images_user_with_a_read_only_root(manifest: Path) -> None:
    """The manifests run as uid and gid 10001 (the image's `sitoo`), without privilege
    escalation or capabilities, on a read-only root filesystem."""
    spec = _yaml(manifest)["spec"]
    pod = spec["template"]["spec"] if "template" in spec else _cronjob_pod()
    assert pod["securityContext"]["runAsUser"] == pod["securityContext"]["runAsGroup"] == 10001
    assert re.search(r"--uid 10001 --gid sitoo", (DEPLOY / "Dockerfile").read_text())
    [container] = pod["containers"]
    context = container["securityContext"]
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"]["drop"] == ["ALL"]


@pytest.mark.slow
@pytest.mark.skipif(not _read_only_root_works(), reason="needs root and mount namespaces")
def test_a_tick_runs_as_uid_10001_on_a_read_only_root_with_only_its_volume_writable(
    sim: Simulator,
) -> None:
    """`run --once` (the CronJob's command) as uid 10001 with / read-only (so /tmp and the
    home directory too) and one writable directory for the DuckDB file: it loads every
    stream, so readOnlyRootFilesystem breaks nothing."""
    volume = Path(tempfile.mkdtemp(prefix="sitoo-ro-"))
    try:
        volume.chmod(0o755)
        os.chown(volume, 10001, 10001)
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("SITOO_")},
            **sim.settings_env(),
            "HOME": str(volume),
            "PYTHONDONTWRITEBYTECODE": "1",
            "SITOO_LOG_FORMAT": "json",
            "SITOO_TARGET_URL": f"duckdb:///{volume / 'sitoo.duckdb'}",
        }
        command = " ".join(
            [
                f"mount --bind {volume} {volume} && mount -o remount,bind,ro / &&",
                f"cd {volume} && exec setpriv --reuid 10001 --regid 10001 --clear-groups",
                shlex.join([*SITOO_SYNC, *_cronjob_pod()["containers"][0]["args"]]),
            ]
        )
        result = subprocess.run(
            ["unshare", "-m", "--propagation", "private", "sh", "-c", command],
            env=env,
            cwd="/",
            capture_output=True,
            text=True,
            check=False,
            timeout=240,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        assert "Read-only file system" not in result.stderr
        assert (volume / "sitoo.duckdb").stat().st_uid == 10001
    finally:
        shutil.rmtree(volume, ignore_errors=True)


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _runtime_closure() -> dict[str, str]:
    """Every distribution `sitoo-sync[postgres,mysql]` needs at run time, at the version
    installed here (where the tests run)."""
    found: dict[str, str] = {}
    todo: list[tuple[str, set[str]]] = [("sitoo-sync", {"postgres", "mysql"})]
    while todo:
        name, extras = todo.pop()
        dist = distribution(name)
        if _normalized(name) != "sitoo-sync":
            found[_normalized(dist.metadata["Name"])] = dist.version
        for text in dist.requires or []:
            req = Requirement(text)
            markers = [{"extra": e} for e in extras or {""}]
            if req.marker and not any(req.marker.evaluate(m) for m in markers):
                continue
            key = _normalized(req.name)
            if key in found or (key == "sitoo-sync" and not req.extras):
                continue
            try:
                distribution(req.name)
            except PackageNotFoundError:
                continue
            todo.append((req.name, set(req.extras)))
    return found


def test_the_image_installs_the_versions_the_tests_ran_with() -> None:
    """The Dockerfile and the Makefile's test environment both install with
    deploy/constraints.txt, which pins every run-time dependency at the version this test
    environment has (so a new release on the registry breaks neither). Regenerate after an
    upgrade:
    `python -c 'from tests.test_deploy_review import _runtime_closure as c;
    print(*(f"{n}=={v}" for n, v in sorted(c().items())), sep="\\n")'`."""
    text = (DEPLOY / "Dockerfile").read_text()
    assert re.search(r"^COPY deploy/constraints\.txt \./$", text, re.M)
    assert re.search(
        r"^RUN pip install \"\.\[[a-z,]+\]\" --constraint constraints\.txt", text, re.M
    )
    makefile = (DEPLOY.parent / "Makefile").read_text()
    assert re.search(r"pip install .*-e '\.\[dev\]' --constraint deploy/constraints\.txt", makefile)
    pinned = {
        _normalized(name): version
        for line in (DEPLOY / "constraints.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
        for name, version in [line.split("==")]
    }
    assert pinned == _runtime_closure()


def _glob_regex(pattern: str) -> str:
    """A .dockerignore pattern as a regex: `**` any path, `*` and `?` within one name."""
    out = ""
    for token in re.split(r"(\*\*/?|\*|\?)", pattern):
        if token in ("**", "**/"):
            out += "(.*/)?" if token == "**/" else ".*"
        elif token == "*":
            out += "[^/]*"
        elif token == "?":
            out += "[^/]"
        else:
            out += re.escape(token)
    return out


def _dockerignored(path: str, patterns: list[str]) -> bool:
    """Whether Docker leaves `path` out of the build context: the last pattern matching the
    path or one of its parents decides (`!` re-includes)."""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for pattern in patterns:
        regex = _glob_regex(pattern.removeprefix("!").rstrip("/"))
        if any(re.fullmatch(regex, c) for c in candidates):
            ignored = not pattern.startswith("!")
    return ignored


def test_the_build_context_holds_what_the_image_copies_and_no_secret() -> None:
    """deploy/Dockerfile.dockerignore (read by BuildKit beside the Dockerfile) sends what the
    COPY lines need and leaves out the compose secret, a virtualenv, warehouse files, git."""
    ignore = DEPLOY / "Dockerfile.dockerignore"
    patterns = [
        ln.strip()
        for ln in ignore.read_text().splitlines()
        if ln.strip() and not ln.startswith("#")
    ]
    copied = [
        source
        for sources in re.findall(r"^COPY (.+) \./?\S*$", (DEPLOY / "Dockerfile").read_text(), re.M)
        for source in sources.split()
    ]
    for source in copied:
        path = ROOT / source
        files = [p for p in path.rglob("*.py")] if path.is_dir() else [path]
        for file in files:
            assert not _dockerignored(str(file.relative_to(ROOT)), patterns), file
    for secret in (
        "deploy/secrets/sitoo_api_password",
        ".venv/bin/python",
        "sitoo.duckdb",
        "sitoo-demo.duckdb.wal",
        ".git/config",
        "sitoo_sync/__pycache__/cli.cpython-311.pyc",
    ):
        assert _dockerignored(secret, patterns), secret


def test_the_timer_sets_persistent_only_where_it_acts() -> None:
    """Persistent= acts on OnCalendar= timers only: the timer does not promise a catch-up
    it cannot give."""
    text = (DEPLOY / "sitoo-sync-once.timer").read_text()
    if re.search(r"^Persistent=(true|yes|1)$", text, re.M):
        assert re.search(r"^OnCalendar=", text, re.M)
