"""glibc malloc settings for a service process: few arenas, and freed memory handed back to the system.

A service's threads (the default executor's parse workers, the SSH workers, paramiko's transport
threads, gRPC's) each take a glibc malloc arena of their own, up to 8 per core, and an arena keeps
what is freed in it for its own later use. A job list's sacct output (megabytes, parsed on a worker
thread) lands in whichever arena that thread holds, so the peaks of many threads added up: under the
soak compute's RSS grew about 10 % in 4 minutes while the memory Python holds stayed at 11-22 MiB
(`services.common.memory_trace`). So, called once by `services.common.server.run` before any thread:
- `limit_arenas()`: two arenas (`MALLOC_ARENA_MAX=2`, the value commonly used for threaded Python and
  Java servers), which the threads share;
- `start_trimming()`: `malloc_trim(0)` every TRIM_SECONDS on a thread of its own, which gives the free
  pages inside the heaps back (about 3 ms a call under the soak, 17 ms at most).
An operator's own `MALLOC_ARENA_MAX` in the environment wins (glibc read it already). Off glibc
(musl, macOS) both do nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading
import time

ARENA_MAX = 2
TRIM_SECONDS = 10.0
_M_MMAP_THRESHOLD, _M_ARENA_MAX = -3, -8  # mallopt's parameter numbers (malloc.h)


def _libc_function(name: str):
    """glibc's function `name`, or None (another C library, or none loadable)."""
    try:
        return getattr(ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6"), name)
    except (OSError, AttributeError):
        return None


def _mallopt(parameter: int, value: int) -> bool:
    mallopt = _libc_function("mallopt")
    if mallopt is None:
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return mallopt(parameter, value) == 1


def limit_arenas(arenas: int = ARENA_MAX) -> bool:
    """Limits glibc's malloc to `arenas` arenas unless MALLOC_ARENA_MAX is set; True if it did."""
    if os.environ.get("MALLOC_ARENA_MAX"):
        return False
    return _mallopt(_M_ARENA_MAX, arenas)


def fix_mmap_threshold(size: int) -> bool:
    """Blocks of `size` bytes and more are mmapped (and unmapped when freed), for good: glibc's own
    threshold climbs with the largest block freed. True if it was set."""
    return _mallopt(_M_MMAP_THRESHOLD, size)


def start_trimming(interval: float = TRIM_SECONDS) -> threading.Thread | None:
    """A daemon thread that hands free heap pages back every `interval` seconds; None off glibc."""
    trim = _libc_function("malloc_trim")
    if trim is None:
        return None
    trim.argtypes = (ctypes.c_size_t,)
    trim.restype = ctypes.c_int

    def trimming() -> None:
        while True:
            time.sleep(interval)
            trim(0)

    thread = threading.Thread(target=trimming, name="malloc-trim", daemon=True)
    thread.start()
    return thread
