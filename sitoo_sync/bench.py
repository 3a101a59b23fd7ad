"""`sitoo-sync bench`: how close a full backfill comes to the cost of just reading the API.

The simulator runs in its own process, so its CPU is not ours. Each phase runs in a fresh
child process, so its peak RSS is its own:

* floor — fetch and JSON-parse every page of `/pos-z-reports` the way the sync walks them,
  and nothing else;
* sync  — the real thing: fetch, normalize, load into the target with cursors, exactly
  as `sitoo-sync run --once` does.

Both are run `rounds` times alternately and the best time of each is kept, so one noisy
moment on a shared machine does not decide the ratio. Figures are printed, not asserted.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from sitoo_sync.api.client import make_client
from sitoo_sync.errors import ConfigError
from sitoo_sync.settings import Settings, load_settings
from sitoo_sync.streams import select_streams
from sitoo_sync.streams.base import items_of
from sitoo_sync.streams.cursors import WindowContext
from sitoo_sync.streams.pos_z_reports import POS_Z_REPORTS
from sitoo_sync.sync import run_once
from sitoo_sync.warehouse import drop_schema, given_as, open_warehouse

RATIO_GOAL = 1.3
RSS_GOAL_MB = 250.0


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_phase(phase: str) -> int:
    """One phase in this (child) process; prints one JSON line of figures."""
    settings = load_settings()
    figures: dict[str, Any] = {"phase": phase}
    if phase == "journal-floor":
        started, cpu_started = time.perf_counter(), time.process_time()
        entries, requests = journal_floor(settings)
        figures.update(
            seconds=time.perf_counter() - started,
            cpu_seconds=time.process_time() - cpu_started,
            records=entries,
            requests=requests,
            peak_rss_mb=_peak_rss_mb(),
        )
        print(json.dumps(figures))
        return 0
    if phase == "tick-floor":
        seconds, requests, entries = tick_floor(settings)
        figures.update(seconds=seconds, requests=requests, records=entries)
        print(json.dumps(figures))
        return 0
    if phase == "sync":
        _import_what_a_tick_uses(settings)
    with make_client(settings) as client:
        started, cpu_started = time.perf_counter(), time.process_time()
        if phase == "floor":
            records, requests = zreport_floor(settings, client.url(POS_Z_REPORTS.api, ""))
            figures.update(records=records, rows=0, seconds=time.perf_counter() - started)
            figures.update(requests=requests, peak_rss_mb=_peak_rss_mb())
            print(json.dumps(figures))
            return 0
        else:
            streams = select_streams(settings.streams)
            warehouse = open_warehouse(settings.target_url, schema=settings.target_schema)
            report = run_once(settings, warehouse, client, streams)
            if not report.ok:
                print(json.dumps({"error": [r.error for r in report.results]}))
                return 1
            figures.update(
                rows=sum(r.rows for r in report.results),
                windows=sum(r.windows for r in report.results),
                rejects=sum(r.rejects for r in report.results),
            )
        figures["seconds"] = time.perf_counter() - started
        figures["cpu_seconds"] = time.process_time() - cpu_started  # all threads
        figures["requests"] = sum(client.requests.values())
    figures["peak_rss_mb"] = _peak_rss_mb()
    print(json.dumps(figures))
    return 0


def check_targets(targets: Sequence[str]) -> None:
    """Refuse, before any data is generated, a `--target` that cannot be used: no URL, a
    driver not installed, a file whose directory is missing. A ConfigError names --target."""
    for target in targets:
        try:
            open_warehouse(target, schema=f"sitoo_bench_{uuid.uuid4().hex[:8]}").close()
        except ConfigError as exc:
            if "SITOO_TARGET_SCHEMA" in str(exc):  # a target without schemas: SQLite, say
                continue
            raise given_as(exc, "--target") from None


def _plain_client(settings: Settings, **options: Any) -> httpx.Client:
    """The floors' client: plain httpx with the API's credentials, no retries, no counting."""
    api_id, password = settings.require_credentials()
    return httpx.Client(auth=httpx.BasicAuth(api_id, password), timeout=60, **options)


def zreport_floor(settings: Settings, base: str) -> tuple[int, int]:
    """The POS z-report floor: a plain httpx client pages through the same windows the
    stream asks for, decoding each page with `response.json()` (the standard library's
    parser; the product's msgspec is faster, so the floor stays the plain client) and
    storing nothing. Returns (records, requests)."""
    records, requests = 0, 0
    with _plain_client(settings) as http:

        def fetch(params: Any) -> list[Any]:
            nonlocal requests
            requests += 1
            response = http.get(base + POS_Z_REPORTS.path, params=params)
            return items_of(response.raise_for_status().json())

        ctx = WindowContext(fetch=fetch, key=POS_Z_REPORTS.key)
        for window in POS_Z_REPORTS.cursor.windows(ctx, None):
            records += len(window.records)
    return records, requests


def _import_what_a_tick_uses(settings: Settings) -> None:
    """Import, before the clock starts, the modules a tick imports on first use (the
    streams, the warehouse backend, its driver): a long-lived service pays that once per
    process, not per tick, and the floor pays none of it inside its timing either."""
    select_streams(settings.streams)
    # A warehouse object connects on first use; making one imports its backend and driver
    # (psycopg: 80 ms, when SQLAlchemy makes the first engine).
    open_warehouse(settings.target_url, schema=settings.target_schema).close()
    importlib.import_module("sitoo_sync.sync")


def journal_floor(settings: Settings) -> tuple[int, int]:
    """The journal floor: a plain httpx client lists the registers, then pages every
    register's journal (`date_type=added`, `num=1000`, following `next`), `concurrency`
    registers at once, decoding each page with `response.json()` and storing nothing.
    Returns (entries, requests)."""
    with _floor_client(settings) as http, ThreadPoolExecutor(settings.concurrency) as pool:
        registers, listing = _list_registers(http, settings, pool)
        pages = list(pool.map(lambda register: _journal(http, settings, register, 0), registers))
    return sum(e for e, _ in pages), listing + sum(n for _, n in pages)


def tick_floor(settings: Settings) -> tuple[float, int, int]:
    """The floor of a journal tick with nothing new: the requests such a tick makes, by a
    plain httpx client, `concurrency` at once, each decoded with `response.json()`.

    A steady tick knows its registers (its warehouse has their cursors) and asks each for
    what was added since, while the register listing runs beside them; so here the
    registers are listed first, untimed, and then the listing's pages and one journal page
    per register, asking for entries added from the next second on (none), are timed
    together. Returns (seconds, requests, entries); entries is 0 unless the API had some.
    """
    with _floor_client(settings) as http, ThreadPoolExecutor(settings.concurrency) as pool:
        registers, _ = _list_registers(http, settings, pool)
        after = int(time.time()) + 1
        started = time.perf_counter()
        sites = [pool.submit(_list_site, http, settings, site) for site in settings.site_ids]
        pages = list(pool.map(lambda r: _journal(http, settings, r, after), registers))
        requests = sum(s.result()[1] for s in sites) + sum(n for _, n in pages)
        seconds = time.perf_counter() - started
    return seconds, requests, sum(e for e, _ in pages)


def _floor_client(settings: Settings) -> httpx.Client:
    """The journal floors' client: a connection for each request in flight."""
    return _plain_client(
        settings, limits=httpx.Limits(max_connections=max(16, settings.concurrency))
    )


def _list_registers(
    http: httpx.Client, settings: Settings, pool: ThreadPoolExecutor
) -> tuple[list[str], int]:
    """Every register of the configured sites, the sites listed side by side on `pool`;
    (ids, requests)."""
    sites = list(pool.map(lambda site: _list_site(http, settings, site), settings.site_ids))
    return [r for found, _ in sites for r in found], sum(n for _, n in sites)


def _list_site(http: httpx.Client, settings: Settings, site_id: int) -> tuple[list[str], int]:
    """Every register of a site, as the register listing pages them; (ids, requests)."""
    url = f"{settings.v2_base_url}/sites/{site_id}/cashregisters.json"
    found: list[str] = []
    start, requests = 0, 0
    while True:
        params: dict[str, str | int] = {"includenotregistered": "true", "start": start, "num": 100}
        page = http.get(url, params=params).raise_for_status().json()
        requests += 1
        found += [r["registerid"] for r in page["items"]]
        start += len(page["items"])
        if not page["items"] or start >= page["totalcount"]:
            return found, requests


def _journal(
    http: httpx.Client, settings: Settings, register: str, date_from: int
) -> tuple[int, int]:
    """Page one register's journal from `date_from` to its end; (entries, requests)."""
    url = f"{settings.journals_base_url}/journal-entries"
    params: dict[str, str | int] = {
        "register_id": register,
        "date_type": "added",
        "sort_order": "asc",
        "num": 1000,
        "date_from": date_from,
    }
    entries, requests = 0, 0
    while True:
        page = http.get(url, params=params).raise_for_status().json()
        requests += 1
        entries += len(page["items"])
        if not page.get("next"):
            return entries, requests
        params["next"] = page["next"]


def _child(
    phase: str, env: dict[str, str], server: subprocess.Popen[str] | None = None
) -> dict[str, Any]:
    """Run one phase in a fresh process and return its figures; with `server` (the
    simulator), also the CPU seconds the server spent meanwhile (`server_cpu_seconds`)."""
    cmd = [sys.executable, "-m", "sitoo_sync", "bench", "--phase", phase]
    before = _cpu_seconds_of(server.pid) if server is not None else None
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)  # noqa: S603  # our own CLI
    if out.returncode != 0:
        raise RuntimeError(f"bench phase {phase} failed:\n{out.stdout}\n{out.stderr}")
    figures: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    after = _cpu_seconds_of(server.pid) if server is not None else None
    if before is not None and after is not None:
        figures["server_cpu_seconds"] = after - before
    return figures


def _cpu_seconds_of(pid: int) -> float | None:
    """User + system CPU seconds process `pid` has used so far (Linux's /proc), or None
    where that cannot be read."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        fields = stat.rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def _start_simulator(reports: int) -> tuple[subprocess.Popen[str], dict[str, str]]:
    return _start_simulator_args(["--reports", str(reports), "--registers-per-store", "8"])


def _start_simulator_args(args: list[str]) -> tuple[subprocess.Popen[str], dict[str, str]]:
    cmd = [sys.executable, "-m", "sitoo_sync", "simulator", "--port", "0", *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)  # noqa: S603  # our own CLI
    assert proc.stdout is not None
    env: dict[str, str] = {}
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        if m := re.search(r"export (SITOO_\w+)='(.*)'", line):
            env[m.group(1)] = m.group(2)
        if "Ctrl-C" in line:
            return proc, env
    proc.kill()
    raise RuntimeError("the simulator did not start")


def _start_journal_simulator(
    registers_per_store: int, latency: float
) -> tuple[subprocess.Popen[str], dict[str, str]]:
    """A simulator of two days of journals with `latency` per request, and the environment
    that points a `run --once` of the journal stream alone at it."""
    registers = 5 * registers_per_store + 1
    print(
        f"Simulator with {registers} registers and {latency * 1000:.0f} ms latency per request ...",
        flush=True,
    )
    args = ["--registers-per-store", str(registers_per_store), "--days", "2"]
    sim, sim_env = _start_simulator_args([*args, "--latency", str(latency)])
    env = {**os.environ, **sim_env, "SITOO_LOG_LEVEL": "WARNING"}
    env["SITOO_STREAMS"] = "journal_entries"
    env.pop("SITOO_TARGET_SCHEMA", None)
    return sim, env


@contextmanager
def _fresh_target(target: str | None, tmp: Path, label: str) -> Iterator[dict[str, str]]:
    """Environment for a sync into an empty target: a new DuckDB/SQLite file or schema."""
    if target is None or target.startswith(("duckdb:", "sqlite:")):
        suffix = "sqlite" if target and target.startswith("sqlite:") else "duckdb"
        scheme = "sqlite" if suffix == "sqlite" else "duckdb"
        yield {"SITOO_TARGET_URL": f"{scheme}:///{tmp / f'bench-{label}.{suffix}'}"}
        return
    schema = f"sitoo_bench_{uuid.uuid4().hex[:8]}"
    try:
        yield {"SITOO_TARGET_URL": target, "SITOO_TARGET_SCHEMA": schema}
    finally:
        drop_schema(target, schema)


def _print_target(name: str, sync: dict[str, Any], floor: dict[str, Any], peak: float) -> None:
    child_rows = sync["rows"] - floor["records"]
    print(f"\n{name}")
    print(
        f"  full backfill       {sync['seconds']:.2f}s  "
        f"{sync['rows'] / sync['seconds']:,.0f} rows/s ({sync['rows']:,} rows), "
        f"{child_rows / sync['seconds']:,.0f} child rows/s"
    )
    print(
        f"  ratio to floor      {sync['seconds'] / floor['seconds']:.2f}x  (goal <= {RATIO_GOAL}x)"
    )
    print(f"  peak RSS            {peak:.0f} MB  (goal < {RSS_GOAL_MB:.0f} MB)")


def run_benchmark(*, reports: int, targets: list[str], rounds: int) -> int:
    """Run the benchmark and print its figures: DuckDB always, then each extra target."""
    print(f"Generating {reports:,} POS z-reports in a simulator process ...", flush=True)
    sim, sim_env = _start_simulator(reports)
    env = {**os.environ, **sim_env, "SITOO_LOG_LEVEL": "WARNING", "SITOO_STREAMS": "pos_z_reports"}
    env.pop("SITOO_TARGET_SCHEMA", None)
    names: list[str | None] = [None, *targets]
    floors: list[dict[str, Any]] = []
    syncs: dict[str | None, list[dict[str, Any]]] = {n: [] for n in names}
    try:
        with tempfile.TemporaryDirectory(prefix="sitoo-bench-") as tmp:
            _child("floor", env)  # warm-up: simulator caches, OS page cache, imports
            _build_simulated_sites(env)
            for i in range(max(1, rounds)):
                floors.append(_child("floor", env))
                line = f"  round {i + 1}: floor {floors[-1]['seconds']:.2f}s"
                for n, name in enumerate(names):
                    with _fresh_target(name, Path(tmp), f"{i}-{n}") as target_env:
                        syncs[name].append(_child("sync", {**env, **target_env}))
                    line += f", {_label(name)} {syncs[name][-1]['seconds']:.2f}s"
                print(line, flush=True)
    finally:
        sim.terminate()
        sim.wait(timeout=10)
    floor = min(floors, key=lambda f: f["seconds"])
    print()
    print(f"z-reports             {floor['records']:,} in {floor['requests']} requests")
    print(
        f"floor (fetch+parse)   {floor['seconds']:.2f}s  "
        f"{floor['records'] / floor['seconds']:,.0f} reports/s  "
        f"(peak RSS {floor['peak_rss_mb']:.0f} MB)"
    )
    for name in names:
        best = min(syncs[name], key=lambda f: f["seconds"])
        peak = max(s["peak_rss_mb"] for s in syncs[name])
        _print_target(_label(name), best, floor, peak)
    return 0


def _build_simulated_sites(env: dict[str, str]) -> None:
    """One request for the sites listing before the timed rounds. A z-report tick reads the
    sites' zones there, and the simulator builds its REST v2 world (its orders are every
    journal receipt of the 20,000 closings) on that first request: ~20 s the first round's
    sync would otherwise pay, and the floor never does."""
    account = env["SITOO_API_ID"].split("-")[0]
    base = env["SITOO_API_BASE_URL"].replace("{account_id}", account)
    auth = (env["SITOO_API_ID"], env["SITOO_API_PASSWORD"])
    httpx.get(f"{base}/sites.json", auth=auth, timeout=600).raise_for_status()


def _label(target: str | None) -> str:
    if target is None:
        return "duckdb (native)"
    scheme = target.split("://", 1)[0]
    return scheme.split("+", 1)[0]


def run_journal_benchmark(
    *, registers_per_store: int, latency: float, targets: list[str], rounds: int
) -> int:
    """Journal backfill ticks over many registers with API latency: concurrency 1 against 4.

    Each round runs both settings back to back into fresh targets; the best time of each
    setting is kept, and the speed-up is the ratio of those two best times.
    """
    print(
        f"Simulator with {5 * registers_per_store + 1} registers and {latency * 1000:.0f} ms "
        "latency per request ...",
        flush=True,
    )
    sim, sim_env = _start_simulator_args(
        [
            "--registers-per-store",
            str(registers_per_store),
            "--days",
            "2",
            "--latency",
            str(latency),
        ]
    )
    env = {
        **os.environ,
        **sim_env,
        "SITOO_LOG_LEVEL": "WARNING",
        "SITOO_STREAMS": "journal_entries",
    }
    env.pop("SITOO_TARGET_SCHEMA", None)
    names: list[str | None] = [None, *targets]
    runs: dict[tuple[str | None, int], list[dict[str, Any]]] = {
        (name, n): [] for name in names for n in (1, 4)
    }
    try:
        with tempfile.TemporaryDirectory(prefix="sitoo-bench-") as tmp:
            for i in range(max(1, rounds)):
                line = f"  round {i + 1}:"
                for t, name in enumerate(names):
                    for n in (1, 4):
                        label = f"journals-{i}-{t}-{n}"
                        with _fresh_target(name, Path(tmp), label) as target_env:
                            run_env = {**env, **target_env, "SITOO_CONCURRENCY": str(n)}
                            runs[name, n].append(_child("sync", run_env))
                        line += f" {_label(name)} x{n} {runs[name, n][-1]['seconds']:.2f}s"
                print(line, flush=True)
    finally:
        sim.terminate()
        sim.wait(timeout=10)
    for name in names:
        one, four = (min(runs[name, n], key=lambda f: f["seconds"]) for n in (1, 4))
        print(f"\n{_label(name)}")
        print(
            f"  journal tick, concurrency 1   {one['seconds']:.2f}s  "
            f"({one['requests']} requests, {one['rows']:,} rows)"
        )
        print(
            f"  journal tick, concurrency 4   {four['seconds']:.2f}s  "
            f"({four['requests']} requests, {four['rows']:,} rows)"
        )
        print(
            f"  speed-up                      {one['seconds'] / four['seconds']:.1f}x  (goal >= 3x)"
        )
    return 0


LATENCY_TICK_GOAL = 1.2
LATENCY_BACKFILL_GOAL = 1.3


def run_latency_benchmark(
    *,
    registers_per_store: int,
    latency: float,
    concurrencies: tuple[int, ...],
    targets: list[str],
    rounds: int,
) -> int:
    """Is API latency hidden? A journal backfill, then a tick with nothing new, per concurrency.

    Each is compared with its latency limit: the requests it made (counted by the client,
    retries included) times the latency, divided by the concurrency, which is the least
    time those requests can take. Beside it, what a plain client takes for the same
    requests at the same concurrency, measured in the same round: the journal floor for the
    backfill (the listing, then every register's pages), `tick_floor` for the tick. Every
    (target, concurrency) starts from a fresh target; the best of `rounds` is kept.
    """
    sim, env = _start_journal_simulator(registers_per_store, latency)
    names: list[str | None] = [None, *targets]
    best: dict[tuple[str | None, int, str], dict[str, Any]] = {}
    floors: dict[tuple[int, str], dict[str, Any]] = {}

    def keep(kept: dict[Any, dict[str, Any]], key: Any, figures: dict[str, Any]) -> None:
        if key not in kept or figures["seconds"] < kept[key]["seconds"]:
            kept[key] = figures

    try:
        with tempfile.TemporaryDirectory(prefix="sitoo-bench-") as tmp:
            for i in range(max(1, rounds)):
                line = f"  round {i + 1}: plain client"
                for n in concurrencies:
                    floor_env = {**env, "SITOO_CONCURRENCY": str(n)}
                    for phase, child in (
                        ("backfill", "journal-floor"),
                        ("no-op tick", "tick-floor"),
                    ):
                        figures = _child(child, floor_env)
                        keep(floors, (n, phase), figures)
                        line += f" x{n} {phase} {figures['seconds']:.2f}s"
                print(line, flush=True)
                for t, name in enumerate(names):
                    line = f"  round {i + 1}: {_label(name)}"
                    for n in concurrencies:
                        label = f"latency-{i}-{t}-{n}"
                        with _fresh_target(name, Path(tmp), label) as target_env:
                            run_env = {**env, **target_env, "SITOO_CONCURRENCY": str(n)}
                            for phase in ("backfill", "no-op tick"):
                                figures = _child("sync", run_env)
                                keep(best, (name, n, phase), figures)
                                line += f" x{n} {phase} {figures['seconds']:.2f}s"
                    print(line, flush=True)
    finally:
        sim.terminate()
        sim.wait(timeout=10)
    print(f"\nlimit = requests x {latency * 1000:.0f} ms / concurrency")
    print("plain = a plain httpx client making the same requests at the same concurrency")
    for name in names:
        print(f"\n{_label(name)}")
        print(
            "  concurrency  phase        seconds  requests    limit   ratio  goal"
            "     plain (ratio)  vs plain"
        )
        for n in concurrencies:
            for phase, goal in (
                ("backfill", LATENCY_BACKFILL_GOAL),
                ("no-op tick", LATENCY_TICK_GOAL),
            ):
                f = best[name, n, phase]
                limit = f["requests"] * latency / n
                floor = floors[n, phase]
                plain = floor["seconds"]
                plain_limit = floor["requests"] * latency / n  # its own requests' limit
                print(
                    f"  {n:>11}  {phase:<11} {f['seconds']:>7.2f}s  {f['requests']:>8}  "
                    f"{limit:>6.2f}s  {f['seconds'] / limit:>5.2f}x  <= {goal}x"
                    f"  {plain:>6.2f}s ({plain / plain_limit:.2f}x)  {f['seconds'] / plain:>6.2f}x"
                    f"  ({f['rows']:,} rows)"
                )
    return 0


REPLICAS_GOAL = 0.45
#: SITOO_CONCURRENCY per replica: latency-bound, and the default.
REPLICA_CONCURRENCIES = (1, 4)


def _run_replicas(count: int, env: dict[str, str]) -> tuple[float, list[float]]:
    """Start `count` `run --once` at once; seconds until the last exits, and each one's
    peak RSS in MB."""
    cmd = [sys.executable, "-m", "sitoo_sync", "run", "--once"]
    quiet = subprocess.DEVNULL
    started = time.perf_counter()
    procs = [subprocess.Popen(cmd, env=env, stdout=quiet, stderr=quiet) for _ in range(count)]  # noqa: S603  # our own CLI
    peaks: list[float] = []
    for proc in procs:
        _pid, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            raise RuntimeError(f"a replica exited {proc.returncode}")
        peaks.append(usage.ru_maxrss / 1024.0)
    return time.perf_counter() - started, peaks


def run_replicas_benchmark(
    *,
    registers_per_store: int,
    latency: float,
    replicas: int,
    targets: list[str],
    rounds: int,
    concurrencies: Sequence[int] = REPLICA_CONCURRENCIES,
) -> int:
    """A journal backfill by one `run --once`, then by `replicas` of them at once, on a server,
    at each SITOO_CONCURRENCY per replica.

    Each run starts from a fresh schema; the time is from starting the processes until the
    last one exits (start-up included, as a replica pays it). The best of `rounds` is kept.
    The ratio depends on what bounds one replica: where its requests' latency does (low
    concurrency), replicas divide it; where the host's CPU does (the replicas, the
    simulator and the server all on one machine), they can only share that CPU.
    """
    servers = [t for t in targets if not t.startswith(("duckdb:", "sqlite:"))]
    if not servers:
        raise ConfigError(
            "bench --replicas: give the server the replicas share, e.g. "
            "--target postgresql://postgres@127.0.0.1:5432/test"
        )
    sim, env = _start_journal_simulator(registers_per_store, latency)
    best: dict[tuple[str, int, int], tuple[float, list[float]]] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="sitoo-bench-") as tmp:
            for i in range(max(1, rounds)):
                for t, name in enumerate(servers):
                    line = f"  round {i + 1}: {_label(name)}"
                    for c in concurrencies:
                        run_env = {**env, "SITOO_CONCURRENCY": str(c)}
                        for n in (1, replicas):
                            label = f"replicas-{i}-{t}-{c}-{n}"
                            with _fresh_target(name, Path(tmp), label) as target:
                                seconds, peaks = _run_replicas(n, {**run_env, **target})
                            kept = best.get((name, c, n))
                            if kept is None or seconds < kept[0]:
                                best[name, c, n] = (seconds, peaks)
                            line += f" c{c} x{n} {seconds:.2f}s"
                    print(line, flush=True)
    finally:
        sim.terminate()
        sim.wait(timeout=10)
    requests = 5 * registers_per_store + 1  # one page of journal per register
    for name in servers:
        print(f"\n{_label(name)}: {replicas} replicas against 1 (goal <= {REPLICAS_GOAL}x)")
        print(
            "  concurrency  1 replica  (limit)  "
            f"{replicas} replicas  (limit)   ratio  peak RSS (largest replica)"
        )
        for c in concurrencies:
            (one, one_peaks), (many, many_peaks) = best[name, c, 1], best[name, c, replicas]
            limit = requests * latency / c
            print(
                f"  {c:>11}  {one:>8.2f}s  ({limit:>5.2f}s)  {many:>9.2f}s  "
                f"({limit / replicas:>5.2f}s)  {many / one:>5.2f}x  "
                f"{max(one_peaks):.0f} / {max(many_peaks):.0f} MB"
            )
    print(
        "\n(limit: the journal requests x latency / concurrency, spread over the replicas; "
        "start-up is outside it)"
    )
    return 0


SCALE_RATIO_GOAL = 1.5


def _duckdb_count(target_env: dict[str, str], table: str) -> int:
    from sitoo_sync.warehouse import open_warehouse

    warehouse = open_warehouse(target_env["SITOO_TARGET_URL"], read_only=True)
    try:
        [(count,)] = warehouse.query(f"SELECT count(*) FROM {warehouse.qualified(table)}")
    finally:
        warehouse.close()
    return int(count)


SCALE_RSS_SPREAD = 0.15


#: SITOO_CONCURRENCY values of the scale benchmark: the default, and the goal's high one.
SCALE_CONCURRENCIES = (4, 32)


def run_scale_benchmark(
    *, entries: tuple[int, ...], concurrencies: tuple[int, ...], registers_per_store: int
) -> int:
    """A journal backfill into a fresh DuckDB file per (entries, concurrency), beside the
    journal floor measured with the same simulator and concurrency just before it.

    The simulator (in its own process) makes each page's entries when asked
    (`--journal-entries`), so it holds none of them; the floor and the sync run in child
    processes, and each one's peak RSS is its own.
    """
    registers = 5 * registers_per_store + 1
    rows: list[tuple[int, int, dict[str, Any], dict[str, Any]]] = []
    with tempfile.TemporaryDirectory(prefix="sitoo-bench-") as tmp:
        for count in entries:
            print(
                f"Simulator: {count:,} journal entries over {registers} registers ...", flush=True
            )
            args = ["--registers-per-store", str(registers_per_store), "--days", "1"]
            sim, sim_env = _start_simulator_args([*args, "--journal-entries", str(count)])
            env = {**os.environ, **sim_env, "SITOO_LOG_LEVEL": "WARNING"}
            env["SITOO_STREAMS"] = "journal_entries"
            env.pop("SITOO_TARGET_SCHEMA", None)
            try:
                for n in concurrencies:
                    run_env = {**env, "SITOO_CONCURRENCY": str(n)}
                    floor = _child("journal-floor", run_env, sim)
                    with _fresh_target(None, Path(tmp), f"scale-{count}-{n}") as target_env:
                        sync = _child("sync", {**run_env, **target_env}, sim)
                        sync["entries"] = _duckdb_count(target_env, "journal_entries")
                    rows.append((count, n, floor, sync))
                    print(
                        f"  {count:,} entries, concurrency {n}: floor {floor['seconds']:.1f}s, "
                        f"sync {sync['seconds']:.1f}s, peak RSS {sync['peak_rss_mb']:.0f} MB",
                        flush=True,
                    )
            finally:
                sim.terminate()
                sim.wait(timeout=10)
    print(
        f"\njournal backfill into DuckDB, {registers} registers (entries/s: entries loaded; "
        "rejects are the simulator's none); floor: plain httpx, "
        "response.json() (stdlib json), same concurrency"
    )
    print("     entries  conc  seconds   entries/s  floor s  floor/s   ratio  peak RSS  floor RSS")
    for _count, n, floor, sync in rows:
        rate = sync["entries"] / sync["seconds"]
        print(
            f"  {floor['records']:>10,}  {n:>4}  {sync['seconds']:>7.1f}  {rate:>10,.0f}"
            f"  {floor['seconds']:>7.1f}  {floor['records'] / floor['seconds']:>7,.0f}"
            f"  {sync['seconds'] / floor['seconds']:>5.2f}x  {sync['peak_rss_mb']:>5.0f} MB"
            f"  {floor['peak_rss_mb']:>6.0f} MB"
        )
    peaks = [sync["peak_rss_mb"] for *_, sync in rows]
    spread = max(peaks) / min(peaks) - 1
    print(
        f"\ngoals: ratio <= {SCALE_RATIO_GOAL}x at >= 1M entries; peak RSS <= {RSS_GOAL_MB:.0f} MB "
        f"and within {SCALE_RSS_SPREAD:.0%} across runs (spread here {spread:.0%})"
    )
    _print_cpu(rows)
    return 0


def _cores() -> int:
    """The cores this process may run on (its affinity, which a container's cpuset narrows),
    else the host's."""
    affinity = getattr(os, "sched_getaffinity", None)
    return len(affinity(0)) if affinity is not None else os.cpu_count() or 1


def _print_cpu(rows: list[tuple[int, int, dict[str, Any], dict[str, Any]]]) -> None:
    """The CPU each run used, its own and the simulator's meanwhile, and the least time
    that CPU allows on this host's cores: a ratio the host cannot reach shows as such."""
    cores = _cores()
    print(
        f"\nCPU seconds ({cores} cores to run on; the simulator runs on them too; "
        "bound: (sync + simulator CPU) / cores, the least time the sync's CPU allows)"
    )
    print("     entries  conc  sync CPU  sim CPU  bound s  floor CPU  sim CPU  bound/floor")
    for _count, n, floor, sync in rows:
        sim_sync = sync.get("server_cpu_seconds")
        sim_floor = floor.get("server_cpu_seconds")
        if sim_sync is None or sim_floor is None:  # no /proc to read the simulator in
            continue
        bound = (sync["cpu_seconds"] + sim_sync) / cores
        print(
            f"  {floor['records']:>10,}  {n:>4}  {sync['cpu_seconds']:>8.1f}  {sim_sync:>7.1f}"
            f"  {bound:>7.1f}  {floor['cpu_seconds']:>9.1f}  {sim_floor:>7.1f}"
            f"  {bound / floor['seconds']:>10.2f}x"
        )


def run_chain_benchmark(*, targets: list[str], rounds: int) -> int:
    """Every figure of a retail chain's scale, one after another in one run, each printed
    with its floor or limit and its goal: the POS z-report backfill against its floor; the
    journal backfill at 100k, 1M and 5M entries and concurrency 4 and 32 against the journal
    floor, with peak RSS; latency hidden at concurrency 4, 16 and 32; and, given a server
    `--target`, three replicas against one. Takes about half an hour on two cores."""
    sections: list[tuple[str, Callable[[], int]]] = [
        (
            "POS z-report backfill vs. its floor",
            lambda: run_benchmark(reports=20000, targets=targets, rounds=rounds),
        ),
        (
            "Journal backfill at scale vs. the journal floor, and peak RSS",
            lambda: run_scale_benchmark(
                entries=(100_000, 1_000_000, 5_000_000),
                concurrencies=SCALE_CONCURRENCIES,
                registers_per_store=12,
            ),
        ),
        (
            "Latency hidden: 201 registers at 100 ms",
            lambda: run_latency_benchmark(
                registers_per_store=40,
                latency=0.1,
                concurrencies=(4, 16, 32),
                targets=targets,
                rounds=rounds,
            ),
        ),
    ]
    if any(not t.startswith(("duckdb:", "sqlite:")) for t in targets):
        sections.append(
            (
                "Replicas: 3 against 1 on the shared server",
                lambda: run_replicas_benchmark(
                    registers_per_store=40,
                    latency=0.1,
                    replicas=3,
                    targets=targets,
                    rounds=rounds,
                ),
            )
        )
    for number, (title, run) in enumerate(sections, 1):
        print(f"\n=== {number}/{len(sections)} {title} ===", flush=True)
        if run() != 0:
            return 1
    return 0
