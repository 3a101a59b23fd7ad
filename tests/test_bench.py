"""`sitoo-sync bench --chain` runs every scale figure in one run, in order."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from sitoo_sync import bench
from sitoo_sync.cli import main
from sitoo_sync.simulator import Simulator
from tests.support import settings_for


def _record(calls: list[tuple[str, dict[str, Any]]], name: str, rc: int = 0) -> Any:
    def run(**kwargs: Any) -> int:
        calls.append((name, kwargs))
        return rc

    return run


def test_the_chain_runs_each_figure_with_the_issues_sizes(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """With a server target the chain runs the z-report floor, the journal scale (100k, 1M,
    5M entries at concurrency 4 and 32), latency at 4, 16 and 32, and three replicas."""
    calls: list[tuple[str, dict[str, Any]]] = []
    for name in ("run_benchmark", "run_scale_benchmark", "run_latency_benchmark"):
        monkeypatch.setattr(bench, name, _record(calls, name))
    monkeypatch.setattr(bench, "run_replicas_benchmark", _record(calls, "replicas"))
    server = "postgresql://postgres@127.0.0.1:5432/test"
    assert main(["bench", "--chain", "--target", server, "--rounds", "1"]) == 0
    assert [name for name, _ in calls] == [
        "run_benchmark",
        "run_scale_benchmark",
        "run_latency_benchmark",
        "replicas",
    ]
    scale = calls[1][1]
    assert scale["entries"] == (100_000, 1_000_000, 5_000_000)
    assert scale["concurrencies"] == (4, 32)
    assert calls[2][1]["concurrencies"] == (4, 16, 32)
    assert calls[3][1]["replicas"] == 3
    assert "=== 4/4 Replicas" in capsys.readouterr().out


def test_the_chain_stops_at_a_failed_figure_and_skips_replicas_without_a_server(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without a server there is no replica run, and a failing section ends the chain with
    exit 1 instead of printing figures after it."""
    calls: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr(bench, "run_benchmark", _record(calls, "zreports"))
    monkeypatch.setattr(bench, "run_scale_benchmark", _record(calls, "scale", rc=1))
    monkeypatch.setattr(bench, "run_latency_benchmark", _record(calls, "latency"))
    monkeypatch.setattr(bench, "run_replicas_benchmark", _record(calls, "replicas"))
    assert main(["bench", "--chain"]) == 1
    assert [name for name, _ in calls] == ["zreports", "scale"]


def test_cpu_seconds_of_a_process_grow_with_its_work_and_are_none_for_no_process() -> None:
    """The simulator's CPU is read from /proc: a process that works shows more CPU seconds
    afterwards, and a pid that does not exist reads as None, not as an error."""
    if not sys.platform.startswith("linux"):
        pytest.skip("reads /proc, which only Linux has")
    before = bench._cpu_seconds_of(os.getpid())
    assert before is not None
    deadline = time.process_time() + 0.2
    while time.process_time() < deadline:
        pass
    after = bench._cpu_seconds_of(os.getpid())
    assert after is not None
    assert after - before >= 0.1
    assert bench._cpu_seconds_of(2**22 + 7) is None


def test_the_cpu_bound_is_the_runs_cpu_over_the_hosts_cores(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The scale table's CPU line divides the sync's and the simulator's CPU by the cores
    and sets that beside the floor's time; a run without the simulator's CPU is left out."""
    monkeypatch.setattr(bench, "_cores", lambda: 2)
    floor = {"records": 1_000_000, "seconds": 10.0, "cpu_seconds": 6.0, "server_cpu_seconds": 4.0}
    sync = {"cpu_seconds": 25.0, "server_cpu_seconds": 5.0}
    unknown = {"cpu_seconds": 25.0}
    bench._print_cpu([(1_000_000, 4, floor, sync), (1_000_000, 32, floor, unknown)])
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines() if line.strip().startswith("1,000,000")]
    assert rows == [["1,000,000", "4", "25.0", "5.0", "15.0", "6.0", "4.0", "1.50x"]]
    assert "2 cores to run on" in out


def test_the_cores_counted_are_those_this_process_may_run_on() -> None:
    """The bound divides by the cores the process may use: at least one, never more than
    the host has."""
    assert 1 <= bench._cores() <= (os.cpu_count() or 1)


def test_the_tick_floor_asks_each_register_once_for_nothing_new_beside_the_listing(
    sim: Simulator, tmp_path: Path
) -> None:
    """The no-op tick's plain-client floor makes a steady tick's requests: the register
    listing (timed once, after an untimed one that stands for the registers a warehouse
    knows) and one journal page per register asking from now on, which holds nothing."""
    settings = settings_for(sim, tmp_path / "unused.duckdb", concurrency=4)
    entries, _ = bench.journal_floor(settings)
    journals, listings = sim.requests_to("/journal-entries"), sim.requests_to("cashregisters")

    seconds, requests, found = bench.tick_floor(settings)

    journal = sim.requests_to("/journal-entries") - journals
    listing = sim.requests_to("cashregisters") - listings
    assert entries > 0  # the registers have journals; the floor's pages are empty by asking
    assert found == 0
    assert journal == len(sim.world.registers)
    assert listing > 0
    assert listing % 2 == 0
    assert requests == journal + listing // 2
    assert seconds > 0
