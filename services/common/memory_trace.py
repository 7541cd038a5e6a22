"""Diagnosis of a service's memory growth: Python allocations (tracemalloc) against heap (RSS).

Off unless `FIRECREST_MESH_TRACEMALLOC=<seconds>` is in the service's environment: then tracemalloc
starts (about 25 frames deep, with the CPU cost that implies) and a thread logs, every that many
seconds, the process's RSS, the bytes Python holds, and the 15 places whose allocations grew most
since the first report. Python-held bytes that stay flat while RSS grows point at the C heap
(fragmentation of glibc's malloc arenas, memory of C libraries) rather than at a Python structure.
Called once by `services.common.server.run`.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import tracemalloc

log = logging.getLogger(__name__)
ENV = "FIRECREST_MESH_TRACEMALLOC"
TOP = 15


def _rss_kib() -> int:
    try:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
    except (OSError, StopIteration, ValueError):
        return -1


def _report(baseline: tracemalloc.Snapshot) -> None:
    snapshot = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])
    current, _ = tracemalloc.get_traced_memory()
    growth = snapshot.compare_to(baseline, "traceback")[:TOP]
    log.warning("memory trace", extra={"fields": {
        "rss_kib": _rss_kib(), "python_kib": current // 1024,
        "top_growth": [{"kib": round(s.size_diff / 1024, 1), "count": s.count_diff,
                        "where": [f"{f.filename}:{f.lineno}" for f in s.traceback[-4:]]} for s in growth]}})


def start_if_asked() -> None:
    """Starts the trace and its reporting thread when the environment asks for it; else nothing."""
    try:
        interval = float(os.environ.get(ENV, "0"))
    except ValueError:
        interval = 0.0
    if interval <= 0:
        return
    tracemalloc.start(25)

    def reports() -> None:
        time.sleep(interval)
        baseline = tracemalloc.take_snapshot()
        while True:
            time.sleep(interval)
            _report(baseline)

    threading.Thread(target=reports, name="memory-trace", daemon=True).start()
