"""The process's C allocator is set up for many fetching threads (sitoo_sync/allocator.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

# A child process: after `tune()` (or not), eight threads, all alive at once (glibc gives a
# new thread the arena of one that has ended), allocate and free big and small blocks;
# glibc's malloc_info then says how many arenas ("heaps") exist.
_CHILD = textwrap.dedent(
    """
    import ctypes, re, sys, tempfile, threading
    from sitoo_sync import allocator
    if sys.argv[1] == "tune":
        assert allocator.tune()
    libc = ctypes.CDLL("libc.so.6")
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    alive = threading.Barrier(8)
    def work():
        alive.wait()
        for _ in range(50):
            blocks = [libc.malloc(size) for size in (64, 4096, 300_000)]
            for b in blocks:
                libc.free(b)
        alive.wait()  # none ends before every one has allocated
    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads: t.start()
    for t in threads: t.join()
    libc.fopen.restype = ctypes.c_void_p
    libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
    libc.fclose.argtypes = [ctypes.c_void_p]
    with tempfile.NamedTemporaryFile(suffix=".xml") as out:
        fp = libc.fopen(out.name.encode(), b"w")
        libc.malloc_info(0, fp)
        libc.fclose(fp)
        info = open(out.name).read()
    print(len(re.findall(r'<heap nr="', info)))
    """
)


def _arenas(mode: str) -> int:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, mode], env=env, capture_output=True, text=True, check=True
    )
    return int(out.stdout.strip())


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or os.confstr("CS_GNU_LIBC_VERSION") is None,
    reason="glibc only: elsewhere tune() leaves the allocator alone",
)
def test_tuned_glibc_keeps_two_arenas_for_many_threads() -> None:
    """Untuned, eight allocating threads make glibc open more than two arenas; after
    tune() there are at most two, whatever the threads do."""
    assert _arenas("plain") > 2
    assert _arenas("tune") <= 2
