"""Work that concurrent partitions hand over, done for all of them in one round.

A tick's partitions each ask the target small things at about the same moment (a lock, the
keys a re-read meets). One statement each means a round trip each and, in a process whose
threads share one interpreter lock, a wait for that lock after each. `Rounds` lets whoever
finds no round under way run everything handed over meanwhile in one call of `run`; the
others wait for their answers. With one caller at a time it is one call each, as before.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

A = TypeVar("A")
R = TypeVar("R")


class Rounds(Generic[A, R]):
    """`ask(item)` answers `run([..., item, ...])[i]`, with concurrent items in one round.

    `run` gets the items of a round in the order they were handed over and returns one
    answer per item; what it raises, every caller of the round raises. `tell(item)` hands
    over an item whose answer nobody waits for (it goes with the next round, or now).
    """

    def __init__(self, run: Callable[[Sequence[A]], Sequence[R]]) -> None:
        self._run = run
        self._cond = threading.Condition()
        self._items: dict[int, A] = {}
        self._waiting: set[int] = set()
        self._answers: dict[int, R | BaseException] = {}
        self._tickets = itertools.count()
        self._busy = False  # a round is under way
        self._closed = False

    def ask(self, item: A) -> R:
        """The answer for `item`, from the round it goes in."""
        ticket = self._hand_over(item, wait=True)
        with self._cond:
            while ticket not in self._answers:
                self._cond.wait()
            answer = self._answers.pop(ticket)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def tell(self, item: A) -> None:
        """Hand `item` over without waiting for its answer (after `close`, nothing)."""
        self._hand_over(item, wait=False)

    def _hand_over(self, item: A, *, wait: bool) -> int:
        with self._cond:
            if self._closed:
                if not wait:  # e.g. a lock freed after all of them were: nothing to do
                    return -1
                raise RuntimeError("rounds are closed")
            ticket = next(self._tickets)
            self._items[ticket] = item
            if wait:
                self._waiting.add(ticket)
            run = not self._busy
            self._busy = True
        if run:
            self._rounds()
        return ticket

    def _rounds(self) -> None:
        """Run rounds until nothing is handed over; this thread is the one running them."""
        while True:
            with self._cond:
                items = self._items
                if not items:
                    self._busy = False
                    self._cond.notify_all()
                    return
                self._items = {}
            answers: dict[int, R | BaseException]
            try:
                got = self._run(list(items.values()))
                answers = dict(zip(items, got, strict=True))
            except BaseException as exc:  # each caller of the round raises it
                answers = dict.fromkeys(items, exc)
            with self._cond:
                for ticket, answer in answers.items():
                    if ticket in self._waiting:
                        self._waiting.discard(ticket)
                        self._answers[ticket] = answer
                self._cond.notify_all()

    def close(self) -> None:
        """Wait for the rounds under way (they run everything handed over); none after: an
        item told then is dropped, an item asked then raises RuntimeError."""
        with self._cond:
            while self._busy:
                self._cond.wait()
            self._closed = True
