"""How the process's C allocator (glibc malloc) is set up, before any thread starts.

A tick runs up to SITOO_CONCURRENCY x 2 threads that fetch and parse pages. glibc gives
each thread that allocates an arena of its own (up to 8 per core) and keeps what they
free for reuse, and it raises its threshold for returning big blocks to the system as it
sees big blocks freed, so a page's buffers stay resident after the page is gone. Two
arenas and a fixed 128 KiB threshold (a big block is mapped, and unmapped when freed)
cut the peak of a 300k-entry journal backfill from 258 to 249 MB at concurrency 4 and
from 320 to 300 MB at 32, at the same speed (`sitoo-sync bench --journal-scale`).

The environment's own MALLOC_ARENA_MAX / MALLOC_MMAP_THRESHOLD_ win when set; elsewhere
than glibc (musl, macOS) nothing is done.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

#: mallopt(3) parameters.
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
ARENAS = 2
MMAP_THRESHOLD = 128 * 1024


def tune() -> bool:
    """Set glibc's arena count and mmap threshold, unless the environment sets them;
    True when glibc took at least one setting."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
        libc.gnu_get_libc_version  # noqa: B018  # glibc only: musl has mallopt too, as a no-op
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    done = False
    if "MALLOC_ARENA_MAX" not in os.environ:
        done |= mallopt(_M_ARENA_MAX, ARENAS) == 1
    if "MALLOC_MMAP_THRESHOLD_" not in os.environ:
        done |= mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
    return done
