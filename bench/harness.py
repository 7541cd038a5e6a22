"""Benchmark harness: drives a scenario at several concurrencies, prints and saves a results table.

A scenario is a callable `request(client) -> None` that performs one request and raises on a wrong
answer. `measure()` runs it `requests` times at each concurrency with one client per worker thread
(`make_client`: a `GatewayConnection`, or any client the scenario takes), and reports p50/p99 latency
and throughput. Benchmarks are separate from tests: nothing here asserts on time.
"""

from __future__ import annotations

import http.client
import json
import os
import statistics
import urllib.parse
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass
class Row:
    scenario: str
    concurrency: int
    requests: int
    errors: int
    p50_ms: float
    p99_ms: float
    mean_ms: float
    req_per_s: float


class GatewayConnection:
    """One keep-alive HTTP/1.1 connection to the gateway as one user (http.client: the leanest client,
    so the figures measure the gateway and the services rather than the client; an httpx client costs
    ~0.6 ms more per request on this machine). `token` is called before each request (a renewing
    token source, or `lambda: token`)."""

    def __init__(self, address: str, token: Callable[[], str], timeout: float = 120):
        host, port = address.rsplit(":", 1)
        self.conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
        self.token = token

    def request(self, method: str, path: str, params: dict | None = None, json_body=None) -> tuple[int, bytes]:
        """(status, body) of one request; `json_body` is sent as JSON."""
        headers = {"Authorization": f"Bearer {self.token()}"}
        body = None
        if json_body is not None:
            body, headers["Content-Type"] = json.dumps(json_body).encode(), "application/json"
        self.conn.request(method, f"{path}?{urllib.parse.urlencode(params)}" if params else path, body, headers)
        response = self.conn.getresponse()
        return response.status, response.read()

    def get(self, path: str, params: dict | None = None) -> bytes:
        """The body of a GET that must answer 200 (RuntimeError otherwise)."""
        status, body = self.request("GET", path, params)
        if status != 200:
            raise RuntimeError(f"GET {path}: {status} {body[:200]!r}")
        return body

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> "GatewayConnection":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


def measure(scenario: str, request: Callable[[object], None], make_client: Callable[[], object],
            concurrency: int, requests: int, warmup: int = 5) -> Row:
    """Runs `requests` calls of `request` on `concurrency` threads (after a warm-up)."""
    local = threading.local()

    def client():
        if not hasattr(local, "client"):
            local.client = make_client()
        return local.client

    def one(_):
        start = time.perf_counter()
        try:
            request(client())
            return time.perf_counter() - start, None
        except Exception as exc:  # counted, reported, never hidden
            return time.perf_counter() - start, exc

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(one, range(min(warmup, requests))))
        began = time.perf_counter()
        results = list(pool.map(one, range(requests)))
        elapsed = time.perf_counter() - began
    latencies = sorted(d * 1000 for d, e in results if e is None)
    errors = [e for _, e in results if e is not None]
    if errors:
        print(f"  {scenario} c={concurrency}: {len(errors)} errors, first: {errors[0]!r}")
    return Row(scenario, concurrency, requests, len(errors),
               round(percentile(latencies, 0.50), 2), round(percentile(latencies, 0.99), 2),
               round(statistics.fmean(latencies), 2) if latencies else float("nan"),
               round(len(latencies) / elapsed, 1))


def table(rows: list[Row]) -> str:
    header = "| scenario | concurrency | requests | errors | p50 ms | p99 ms | mean ms | req/s |"
    lines = [header, "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r.scenario} | {r.concurrency} | {r.requests} | {r.errors} | {r.p50_ms} | "
                     f"{r.p99_ms} | {r.mean_ms} | {r.req_per_s} |")
    return "\n".join(lines)


def save(name: str, rows: list[Row], notes: str = "") -> Path:
    """Prints the table and writes bench/results/<name>.md and .json."""
    RESULTS.mkdir(exist_ok=True)
    text = f"# {name}\n\n{time.strftime('%Y-%m-%d %H:%M:%S %Z')}\n\n{notes}\n\n{table(rows)}\n"
    print(text)
    (RESULTS / f"{name}.md").write_text(text)
    (RESULTS / f"{name}.json").write_text(json.dumps([asdict(r) for r in rows], indent=1))
    return RESULTS / f"{name}.md"


# --- Memory -------------------------------------------------------------------------------------------

def memory_kib(pid: int) -> dict[str, int] | None:
    """VmRSS and its two parts of `pid`, KiB: `anon` (the process's own heap and stacks: what a leak
    grows) and `file` (pages of its binary, libraries and mapped files, which the kernel can drop and
    read back: Envoy's ~60 MiB of code, Prometheus's memory-mapped head chunks). None once exited."""
    try:
        fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                      if line.startswith(("VmRSS:", "RssAnon:", "RssFile:")))
        return {"rss": int(fields["VmRSS"].split()[0]), "anon": int(fields["RssAnon"].split()[0]),
                "file": int(fields["RssFile"].split()[0])}
    except (OSError, ValueError, KeyError):
        return None


def process_memory(run_dir: Path | str | None = None) -> dict[str, dict[str, int]]:
    """`memory_kib()` of every mesh process with its `pid`: one entry per `state/run/<name>.pid` of the
    launcher (scripts/mesh.py; each program runs directly under the supervisor) whose process is
    alive, by that name. `run_dir` defaults to the configuration's state/run folder."""
    if run_dir is None:
        from services.common.config import load_config  # lazy: the harness imports nothing of the mesh
        run_dir = load_config().state("run")
    found: dict[str, dict[str, int]] = {}
    for pid_file in sorted(Path(run_dir).glob("*.pid")):
        try:
            pid = int(pid_file.read_text())
        except (OSError, ValueError):
            continue
        memory = memory_kib(pid)
        if memory is not None:
            found[pid_file.stem] = {**memory, "pid": pid}
    return found


def process_rss(run_dir: Path | str | None = None) -> dict[str, int]:
    """Resident memory (VmRSS, KiB) of every mesh process (`process_memory`), by name."""
    return {name: memory["rss"] for name, memory in process_memory(run_dir).items()}


# --- CPU -----------------------------------------------------------------------------------------------

def stat_cpu_seconds(stat_file: Path) -> float:
    """utime + stime, seconds, of a /proc `stat` file: a process's (all its threads) or one thread's
    (/proc/<pid>/task/<tid>/stat)."""
    fields = stat_file.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of `pid` (all its threads), seconds."""
    return stat_cpu_seconds(Path(f"/proc/{pid}/stat"))


def cpu_at_rest(names: tuple[str, ...], seconds: float = 20.0) -> dict[str, float]:
    """% of one core each named mesh process (`process_memory`) used over `seconds` with no load from
    here: what a process costs the machine while nobody calls it (a garbage collector stuck at its
    memory limit shows here, not in any latency)."""
    pids = {name: m["pid"] for name, m in process_memory().items() if name in names}
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    time.sleep(seconds)
    return {name: round(100 * (cpu_seconds(pid) - before[name]) / seconds, 1) for name, pid in pids.items()}
