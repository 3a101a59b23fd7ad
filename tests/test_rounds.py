"""Rounds: work handed over by concurrent callers runs for all of them in one call."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import pytest

from sitoo_sync.warehouse.rounds import Rounds


class Doubler:
    """A round function that records each round's items and takes a moment, so callers
    arriving meanwhile gather for the next round."""

    def __init__(self) -> None:
        self.rounds: list[list[int]] = []
        self.lock = threading.Lock()

    def __call__(self, items: Sequence[int]) -> list[int]:
        with self.lock:
            self.rounds.append(list(items))
        time.sleep(0.01)
        return [2 * i for i in items]


def test_concurrent_asks_share_rounds_and_each_gets_its_own_answer() -> None:
    """Forty threads asking at once each get the answer to their own item, every item runs
    exactly once, and they share far fewer rounds than there are items."""
    run = Doubler()
    rounds: Rounds[int, int] = Rounds(run)
    with ThreadPoolExecutor(40) as pool:
        answers = list(pool.map(rounds.ask, range(200)))
    assert answers == [2 * i for i in range(200)]
    assert sorted(i for r in run.rounds for i in r) == list(range(200))
    assert len(run.rounds) < 100


def test_one_caller_at_a_time_runs_one_round_each() -> None:
    """Without concurrency every ask is a round of its own, answered at once."""
    run = Doubler()
    rounds: Rounds[int, int] = Rounds(run)
    assert [rounds.ask(i) for i in (1, 2, 3)] == [2, 4, 6]
    assert run.rounds == [[1], [2], [3]]


def test_what_a_round_raises_every_caller_in_it_raises_and_later_rounds_go_on() -> None:
    """A failing round fails each of its callers (with that error); the next round runs."""
    calls: list[list[str]] = []

    def run(items: Sequence[str]) -> list[str]:
        calls.append(list(items))
        if "bad" in items:
            raise ValueError("the server went away")
        return [i.upper() for i in items]

    rounds: Rounds[str, str] = Rounds(run)
    with pytest.raises(ValueError, match="went away"):
        rounds.ask("bad")
    assert rounds.ask("good") == "GOOD"


def test_told_items_run_without_their_teller_waiting_and_close_waits_for_the_round() -> None:
    """An item told while a round is under way goes with the next one, its teller not
    waiting; `close` returns once every handed-over item ran; after it a told item is dropped
    and an asked one refused."""
    seen: list[list[int]] = []
    started, gate = threading.Event(), threading.Event()

    def run(items: Sequence[int]) -> list[int]:
        seen.append(list(items))
        started.set()
        gate.wait(timeout=5)  # the first round holds until the item is told
        return list(items)

    rounds: Rounds[int, int] = Rounds(run)
    asker = threading.Thread(target=rounds.ask, args=(1,))
    asker.start()
    assert started.wait(timeout=5)
    began = time.perf_counter()
    rounds.tell(5)
    assert time.perf_counter() - began < 1  # not the 5 s a round of its own would wait
    gate.set()
    rounds.close()
    asker.join()
    assert seen == [[1], [5]]
    rounds.tell(6)  # a free after the connection's locks were all freed: dropped
    assert seen == [[1], [5]]
    with pytest.raises(RuntimeError):
        rounds.ask(1)
