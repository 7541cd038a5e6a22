"""wrk as the load of the latency benchmarks that need more than the Python harness can drive on this
machine's 2 cores (bench/zero_trust.py, bench/gateway_policies.py): one C event-loop thread, the
token from the environment (never the command line), the latency histogram reported by a Lua `done`
hook and merged across runs into a harness `Row`; and one token reused while it is young enough."""

from __future__ import annotations

import collections
import json
import os
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.harness import Row
from services.common.oidc_client import fetch_token  # noqa: E402

CLIENT, SECRET = "firecrest-alice", "alice-secret"
TOKEN_MAX_AGE = 180  # seconds; the embedded provider's tokens live 300 s

# wrk reports its latency histogram (µs) as one JSON line: merged across phases for the combined
# figures. The token comes from the environment, never from the command line (visible in ps).
WRK_SCRIPT = r"""
wrk.headers["Authorization"] = "Bearer " .. os.getenv("ZT_TOKEN")
done = function(summary, latency, requests)
  local e = summary.errors
  local parts = {}
  for i = 1, #latency do
    local v, c = latency(i)
    parts[#parts + 1] = string.format("[%d,%d]", v, c)
  end
  io.write(string.format('ZT-RESULT {"duration_us":%d,"requests":%d,"errors":{"connect":%d,'
    .. '"read":%d,"write":%d,"status":%d,"timeout":%d},"histogram":[%s]}\n',
    summary.duration, summary.requests, e.connect, e.read, e.write, e.status, e.timeout,
    table.concat(parts, ",")))
end
"""


@dataclass
class Sample:
    histogram: collections.Counter  # latency µs -> count
    requests: int
    seconds: float
    errors: int
    client_cpu_s: float


class Disturbed(RuntimeError):
    """Someone else restarted part of the mesh during a phase (tests, `mesh.py up`)."""


class Tokens:
    """One token for as long as it is young enough; the same for both variants."""

    def __init__(self, token_url: str):
        self.token_url = token_url
        self.issued = -1e9
        self.value = ""
        self.count = 0

    def get(self) -> str:
        if time.monotonic() - self.issued > TOKEN_MAX_AGE:
            self.value = fetch_token(self.token_url, CLIENT, SECRET)
            self.issued = time.monotonic()
            self.count += 1
        return self.value


def wrk(url: str, token: str, concurrency: int, seconds: float, script: Path) -> Sample:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(["wrk", "-t1", f"-c{concurrency}", f"-d{seconds}s", "--timeout", "10s",
                           "-s", str(script), url],
                          env={**os.environ, "ZT_TOKEN": token}, capture_output=True, text=True,
                          timeout=seconds + 60)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    lines = [l for l in proc.stdout.splitlines() if l.startswith("ZT-RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stdout[-1000:]}{proc.stderr[-1000:]}")
    result = json.loads(lines[0].removeprefix("ZT-RESULT "))
    return Sample(collections.Counter({v: c for v, c in result["histogram"]}), result["requests"],
                  result["duration_us"] / 1e6, sum(result["errors"].values()),
                  (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime))


def summarize(scenario: str, concurrency: int, samples: list[Sample]) -> Row:
    histogram = collections.Counter()
    for s in samples:
        histogram.update(s.histogram)
    n = sum(histogram.values())

    def pct(q: float) -> float:  # the harness's rule (nearest rank), on the histogram
        if not n:
            return float("nan")
        index, seen = min(n - 1, max(0, round(q * (n - 1)))), 0
        for value, count in sorted(histogram.items()):
            seen += count
            if seen > index:
                return value / 1000
        raise AssertionError
    mean = sum(v * c for v, c in histogram.items()) / n / 1000 if n else float("nan")
    requests = sum(s.requests for s in samples)
    return Row(scenario, concurrency, requests, sum(s.errors for s in samples), round(pct(0.50), 2),
               round(pct(0.99), 2), round(mean, 2), round(requests / sum(s.seconds for s in samples), 1))
