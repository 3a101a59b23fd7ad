"""A finished command spares the interpreter's last cycle search (sitoo_sync/teardown.py)."""

from __future__ import annotations

import atexit
import gc
import subprocess
import sys
import textwrap

import pytest

# A child process that records, from an atexit handler registered before the command starts
# (so it runs after the command's own), how many objects the collector holds frozen then.
_CHILD = textwrap.dedent(
    """
    import atexit, gc, sys
    atexit.register(lambda: print("frozen", gc.get_freeze_count()))
    from sitoo_sync.cli import main
    code = main(sys.argv[1:])
    print("returned", code, gc.get_freeze_count())
    """
)


def _run(*args: str) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, *args], capture_output=True, text=True, check=False
    )
    return out.stdout.splitlines()


def test_the_objects_alive_at_exit_are_frozen_only_once_the_command_returned() -> None:
    """The command runs with the collector untouched; at exit every live object is frozen."""
    lines = _run("docs", "--format", "markdown")
    returned = next(line for line in lines if line.startswith("returned"))
    assert returned == "returned 0 0"
    assert lines[-1].startswith("frozen")
    assert int(lines[-1].removeprefix("frozen ")) > 10_000


def test_registering_twice_adds_one_handler(monkeypatch: pytest.MonkeyPatch) -> None:
    """`main` run many times in one process (the tests do) registers the freeze once."""
    from sitoo_sync import teardown

    monkeypatch.setattr(teardown, "_registered", False)
    before = atexit._ncallbacks()
    try:
        teardown.freeze_at_exit()
        teardown.freeze_at_exit()
        assert atexit._ncallbacks() == before + 1
    finally:
        atexit.unregister(gc.freeze)
