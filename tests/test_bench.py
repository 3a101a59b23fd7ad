"""`sitoo-sync bench --chain` runs every scale figure in one run, in order."""

from __future__ import annotations

from typing import Any

import pytest

from sitoo_sync import bench
from sitoo_sync.cli import main


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
