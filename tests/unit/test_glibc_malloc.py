"""Unit tests of `services.common.glibc_malloc`: eight threads allocating at once get glibc arenas of
their own unless the service limited them, and an operator's MALLOC_ARENA_MAX wins; the trimming
thread hands freed heap pages back. Each case runs in
a fresh interpreter (the limit holds for the life of a process); glibc's `malloc_stats()` prints one
`Arena N:` line per arena."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PROBE = """
import ctypes, sys, threading
from services.common import glibc_malloc
if sys.argv[1] == "limit":
    print("limited", glibc_malloc.limit_arenas(), file=sys.stderr)
barrier = threading.Barrier(8)
def work():
    blocks = [bytearray(64 * 1024) for _ in range(4)]  # under the mmap threshold: from the thread's arena
    barrier.wait()
threads = [threading.Thread(target=work) for _ in range(8)]
for t in threads: t.start()
for t in threads: t.join()
ctypes.CDLL("libc.so.6").malloc_stats()
"""

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux") or os.confstr("CS_GNU_LIBC_VERSION") is None,
                                reason="glibc only")


def arenas(mode: str, **env: str) -> tuple[int, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    done = subprocess.run([sys.executable, "-c", PROBE, mode], cwd=REPO, capture_output=True, text=True,
                          env={**clean, **env}, timeout=60, check=True)
    return sum(line.startswith("Arena ") for line in done.stderr.splitlines()), done.stderr


def test_threads_share_two_arenas_once_limited():
    unlimited, _ = arenas("none")
    limited, stderr = arenas("limit")
    assert "limited True" in stderr
    assert unlimited > 2 and limited <= 2


def test_the_operators_setting_wins():
    count, stderr = arenas("limit", MALLOC_ARENA_MAX="4")
    assert "limited False" in stderr and count <= 4


TRIM_PROBE = """
import ctypes, threading, time
from services.common import glibc_malloc
glibc_malloc.limit_arenas()
def rss():
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmRSS:"))
def work():  # 64 MiB in blocks under the mmap threshold, in a thread's arena; all but the last freed
    blocks = [bytearray(64 * 1024) for _ in range(1024)]
    del blocks[:-1]
    global keep; keep = blocks
t = threading.Thread(target=work); t.start(); t.join()
before = rss()
if "trim" in __import__("sys").argv:
    glibc_malloc.start_trimming(0.05)
    time.sleep(0.5)
print(before, rss())
"""


@pytest.mark.parametrize("trim", [False, True])
def test_trimming_gives_freed_heap_pages_back(trim):
    done = subprocess.run([sys.executable, "-c", TRIM_PROBE, *(["trim"] if trim else [])], cwd=REPO,
                          capture_output=True, text=True, timeout=60, check=True,
                          env={k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")})
    before, after = map(int, done.stdout.split())
    if trim:
        assert after < before - 32 * 1024  # KiB: most of the 64 MiB freed went back
    else:
        assert after > before - 8 * 1024  # without trimming the arena keeps it
