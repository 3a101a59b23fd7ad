"""Where a tick normalizes: windows that arrive together are normalized in one call (the
`Joining` thread of in-process and single-writer targets, PostgreSQL's `Gathered` rounds)."""

from __future__ import annotations

import threading
import time
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from sitoo_sync.normalize import journal_pages
from sitoo_sync.normalize.journal_entries import TABLES as JOURNAL_TABLES
from sitoo_sync.simulator import SimConfig, Simulator
from sitoo_sync.streams.journal_entries import JOURNAL_ENTRIES
from sitoo_sync.turns import Gathered, Joining
from tests.conftest import SyncFn
from tests.support import assert_each_entry_once, target_settings
from tests.targets import ALL_TARGETS, LOAD_METADATA_NAMES, Target, target_for
from tests.test_journal_entries import simulator_truth

Window = tuple[list[Any], Mapping[str, Any]]
TABLES = {t.name: t for t in JOURNAL_TABLES}


def _one(records: list[Any], context: Mapping[str, Any]) -> list[Any]:
    if "boom" in records:
        raise ValueError(f"cannot normalize {context['partition']}")
    return ["one", *records]


def _waiting_behind_a_busy_thread(
    joining: Joining, windows: Sequence[list[Any]], many: Any
) -> list[Any]:
    """`windows` handed over by as many partition threads while the joining thread is busy
    with other work; what each partition gets back (or what it raises)."""
    busy, release = threading.Event(), threading.Event()

    def block() -> None:
        busy.set()
        release.wait(10)

    def partition(index: int) -> Any:
        try:
            return joining.normalize(_one, many, windows[index], {"partition": str(index)})
        except ValueError as exc:
            return exc

    with ThreadPoolExecutor(len(windows) + 1) as pool:
        blocker = pool.submit(joining.run, block)
        assert busy.wait(10)
        results = []
        for i in range(len(windows)):  # handed over in this order
            results.append(pool.submit(partition, i))
            _until(lambda i=i: len(joining._jobs) == i + 1)
        release.set()
        blocker.result()
        return [r.result() for r in results]


def _until(condition: Any, timeout: float = 10.0) -> None:
    """Wait until `condition()` holds (a thread has handed its work over)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the work was not handed over in time"
        time.sleep(0.001)


def test_windows_waiting_together_are_normalized_in_one_call_in_their_order() -> None:
    """Three partitions' windows handed over while the thread is busy go to the stream's
    `many` in one call, in the order they came, and each partition gets its own result."""
    calls: list[list[Window]] = []

    def many(windows: Sequence[Window]) -> list[Any]:
        calls.append(list(windows))
        return [["many", *records] for records, _ in windows]

    joining = Joining()
    try:
        got = _waiting_behind_a_busy_thread(joining, [["a"], ["b"], ["c"]], many)
    finally:
        joining.close()
    assert got == [["many", "a"], ["many", "b"], ["many", "c"]]
    assert [[records for records, _ in call] for call in calls] == [[["a"], ["b"], ["c"]]]
    assert [context["partition"] for _, context in calls[0]] == ["0", "1", "2"]


def test_a_stream_without_many_and_a_failing_many_normalize_window_by_window() -> None:
    """Without `many` each window is normalized alone; when `many` fails, each window of the
    call is normalized alone too, and only the partition whose window fails sees its error."""

    def many(windows: Sequence[Window]) -> list[Any]:
        raise RuntimeError("one bad window")

    for joined in (None, many):
        joining = Joining()
        try:
            got = _waiting_behind_a_busy_thread(joining, [["a"], ["boom"], ["c"]], joined)
        finally:
            joining.close()
        assert got[0] == ["one", "a"]
        assert got[2] == ["one", "c"]
        assert isinstance(got[1], ValueError)
        assert "cannot normalize 1" in str(got[1])


def test_windows_handed_over_during_a_round_are_gathered_into_the_next() -> None:
    """Without a thread of its own: a lone window is normalized by `one` on its partition's
    thread; the windows handed over while it runs go to `many` together in the next round,
    in their order, each partition getting its own result; a failing `many` falls back to
    `one` per window, and only the failing window's partition sees its error."""
    first_running, release = threading.Event(), threading.Event()
    threads: list[str] = []

    def one(records: list[Any], context: Mapping[str, Any]) -> list[Any]:
        threads.append(threading.current_thread().name)
        if records == ["first"]:
            first_running.set()
            release.wait(10)
        return _one(records, context)

    calls: list[list[list[Any]]] = []
    for failing in (False, True):
        calls.clear()

        def many(windows: Sequence[Window], failing: bool = failing) -> list[Any]:
            calls.append([records for records, _ in windows])
            if failing:
                raise RuntimeError("one bad window")
            return [["many", *records] for records, _ in windows]

        gathered = Gathered()
        first_running.clear()
        release.clear()
        windows = [["a"], ["boom"] if failing else ["b"], ["c"]]
        with ThreadPoolExecutor(4, thread_name_prefix="partition") as pool:
            first = pool.submit(gathered.normalize, one, many, ["first"], {"partition": "f"})
            assert first_running.wait(10)
            later = []
            for i, records in enumerate(windows):
                later.append(
                    pool.submit(gathered.normalize, one, many, records, {"partition": str(i)})
                )
                rounds = gathered._rounds[one, many]
                _until(lambda i=i, r=rounds: len(r._items) == i + 1)
            release.set()
            assert first.result() == ["one", "first"]
            got = [f.exception() or f.result() for f in later]
        assert calls == [windows]
        if failing:
            assert got[0] == ["one", "a"]
            assert got[2] == ["one", "c"]
            assert isinstance(got[1], ValueError)
        else:
            assert got == [["many", "a"], ["many", "b"], ["many", "c"]]
    assert all(name.startswith("partition") for name in threads)


def test_work_handed_over_from_the_thread_itself_runs_in_place_and_close_waits() -> None:
    """Work the thread hands itself runs at once (no deadlock); `close` lets the work
    already handed over finish, and later work is refused."""
    joining = Joining()
    assert joining.run(lambda: joining.run(lambda: 7)) == 7
    assert joining.run(lambda: joining.normalize(_one, None, ["x"], {})) == ["one", "x"]
    finished = threading.Event()

    def slow() -> None:
        time.sleep(0.2)
        finished.set()

    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(joining.run, slow)
        time.sleep(0.05)
        joining.close()
        assert finished.is_set()
        pending.result()
    with pytest.raises(RuntimeError, match="closed"):
        joining.run(lambda: 1)


@pytest.mark.parametrize("target_name", ALL_TARGETS)
def test_a_concurrent_journal_tick_joins_windows_and_loads_what_the_api_holds(
    target_name: str, tmp_path: Path, sync: SyncFn, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A journal backfill of many registers at concurrency 8 normalizes windows of several
    registers in one call, on every target, and loads exactly what the simulator holds."""
    sizes: list[int] = []
    joined = journal_pages._normalize_joined

    def counted(windows: Sequence[Window]) -> list[Any]:
        sizes.append(len(windows))
        return joined(windows)

    assert JOURNAL_ENTRIES.normalize_many is journal_pages.normalize_windows
    monkeypatch.setattr(journal_pages, "_normalize_joined", counted)
    with (
        Simulator.create(SimConfig(seed=5, days=1, registers_per_store=8)) as sim,
        target_for(target_name, tmp_path) as target,
    ):
        sim.faults.latency = 0.02
        settings = target_settings(sim, target, streams=["journal_entries"], concurrency=8)
        assert sync(settings).ok
        assert _truth(target) == simulator_truth(sim)
        assert_each_entry_once(sim, target.rows(TABLES["journal_entries"]))
    assert max(sizes, default=0) > 1, sizes


def _truth(target: Target) -> tuple[Counter[str], dict[str, str], dict[str, str]]:
    """What `test_journal_entries.warehouse_truth` reads, from any target: entries per type,
    receipt totals per store, cash moved per register."""

    def rows(table: str) -> list[dict[str, Any]]:
        names = [c for c in TABLES[table].column_names if c not in LOAD_METADATA_NAMES]
        return [dict(zip(names, row, strict=True)) for row in target.rows(TABLES[table])]

    receipts: dict[str, Decimal] = defaultdict(Decimal)
    for r in rows("journal_receipts"):
        if not r["ispractice"]:
            receipts[r["store_id"]] += r["moneytotal_signed"]
    cash: dict[str, Decimal] = defaultdict(Decimal)
    for r in rows("journal_cash_events"):
        cash[r["registerid"]] += r["moneycash"] or 0
    return (
        Counter(r["type"] for r in rows("journal_entries")),
        {k: f"{v:.2f}" for k, v in receipts.items()},
        {k: f"{v:.2f}" for k, v in cash.items()},
    )
