"""`GET /status/systems` through the gateway at concurrency 1 and 32, driven by `wrk`, beside issue 8's
figures, with every mesh process's memory (VmRSS) at rest and after the load.

    .venv/bin/python bench/status.py [--label after] [--duration 5] [--rounds 1]

The request is the gateway's whole path without SSH: Lua filter, JWT (RS256; Envoy's JWT cache),
transcoding, mutual TLS to the status service, which verifies the token itself (its cache) and
answers from memory. `wrk -t1` (one C event-loop thread, keep-alive HTTP/1.1, the token in a header)
drives the load, as bench/zero_trust.py does: the Python harness of the other benchmarks is itself the
bottleneck at c=32 on this machine's 2 cores. Each case warms up 1 s, then runs --duration seconds,
--rounds times (c=1, c=32, c=1, ...); rounds are merged as latency histograms.

Also recorded: CPU time per request of Envoy and the status service (from /proc, over each case;
other users' requests to them count too), the CPU the rest of the machine used meanwhile (other
users' tests and benchmarks: on a shared 2-core machine they move every figure), Envoy's JWT cache
hits and misses over the run (admin /stats), and the RSS of every process of
state/run/*.pid (`harness.process_rss()`) before
and after the load.

--label names this run's column (`before`, `after`, ...): bench/results/status.json keeps the runs
of every label and status.md shows them side by side with the issue's figures and targets. Needs a
running mesh (`make up`) and wrk.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.harness import RESULTS, cpu_seconds, process_rss  # noqa: E402
from bench.zero_trust import WRK_SCRIPT, Tokens, summarize, wrk  # noqa: E402
from services.common.config import load_config  # noqa: E402

PATH = "/status/systems"
CONCURRENCIES = (1, 32)
# Issue 8's side-by-side measurement (10 s runs, before this work): ours and FirecREST v2's.
ISSUE = {"ours": {1: {"p50_ms": 1.3, "req_per_s": 702}, 32: {"req_per_s": 1789}},
         "v2": {1: {"p50_ms": 1.1, "req_per_s": 829}, 32: {"req_per_s": 636}}}
# Acceptance (issue 8, part 4): c=1 p50 ≤ 1.1 ms (v2's); c=32 ≥ 1,800 req/s with p99 ≤ 40 ms.
TARGETS = [(1, "p50_ms", "≤", 1.1), (32, "req_per_s", "≥", 1800), (32, "p99_ms", "≤", 40)]
ISSUE_MIB_AT_REST = 419


def machine_busy_seconds() -> float:
    """CPU time the whole machine spent busy (all cores, not idle or waiting for I/O), seconds."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def mesh_pids(config) -> dict[str, int]:
    """Envoy and the status service (each runs directly under the supervisor)."""
    run = config.state("run")
    return {name: int((run / f"{name}.pid").read_text()) for name in ("envoy", "status")}


def envoy_counters(config, names: tuple[str, ...]) -> dict[str, int]:
    url = f"http://{config.gateway.admin}/stats?filter=" + "|".join(names)
    with urllib.request.urlopen(url, timeout=5) as resp:
        lines = resp.read().decode().splitlines()
    return {k.strip(): int(v) for k, v in (line.split(":", 1) for line in lines) if v.strip().isdigit()}


def run(args, config) -> dict:
    base = f"http://{config.gateway.listen}"
    work = config.state("bench")
    work.mkdir(parents=True, exist_ok=True)
    script = work / "status_wrk.lua"
    script.write_text(WRK_SCRIPT)
    tokens = Tokens(config.identity.token_url)
    pids = mesh_pids(config)
    rss_at_rest = process_rss(config.state("run"))
    jwt_stats = ("jwt_authn.jwt_cache_hit", "jwt_authn.jwt_cache_miss")
    jwt_before = envoy_counters(config, jwt_stats)
    samples = {c: [] for c in CONCURRENCIES}
    cpu = {c: {name: 0.0 for name in pids} for c in CONCURRENCIES}
    others = {c: 0.0 for c in CONCURRENCIES}  # CPU seconds of everything but Envoy, status and wrk
    load = [os.getloadavg()[0]]
    for _ in range(args.rounds):
        for concurrency in CONCURRENCIES:
            wrk(base + PATH, tokens.get(), concurrency, 1, script)  # warm-up
            before = {name: cpu_seconds(pid) for name, pid in pids.items()}
            busy = machine_busy_seconds()
            sample = wrk(base + PATH, tokens.get(), concurrency, args.duration, script)
            busy = machine_busy_seconds() - busy
            for name, pid in pids.items():
                used = cpu_seconds(pid) - before[name]
                cpu[concurrency][name] += used
                busy -= used
            others[concurrency] += max(0.0, busy - sample.client_cpu_s)
            samples[concurrency].append(sample)
            load.append(os.getloadavg()[0])
            row = summarize(PATH, concurrency, [sample])
            print(f"  c={concurrency}: p50 {row.p50_ms} ms p99 {row.p99_ms} ms {row.req_per_s} req/s "
                  f"errors {row.errors}", flush=True)
    jwt_after = envoy_counters(config, jwt_stats)
    rows = {}
    for concurrency in CONCURRENCIES:
        row = summarize(PATH, concurrency, samples[concurrency])
        requests = sum(s.requests for s in samples[concurrency])
        rows[str(concurrency)] = {
            "p50_ms": row.p50_ms, "p99_ms": row.p99_ms, "mean_ms": row.mean_ms, "req_per_s": row.req_per_s,
            "requests": requests, "errors": row.errors,
            # Other users of the machine during the case (their tests and benchmarks): % of its cores.
            "others_cpu_pct": round(100 * others[concurrency]
                                    / (sum(s.seconds for s in samples[concurrency]) * (os.cpu_count() or 1)), 1),
            "cpu_us_per_request": {name: round(seconds * 1e6 / max(requests, 1))
                                   for name, seconds in cpu[concurrency].items()}}
    return {"time": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "duration_s": args.duration, "rounds": args.rounds,
            "commit": subprocess.run(["git", "-C", str(ROOT), "--no-optional-locks", "rev-parse", "--short",
                                      "HEAD"], capture_output=True, text=True).stdout.strip(),
            "envoy_argv": Path(f"/proc/{pids['envoy']}/cmdline").read_bytes().decode().split("\0")[1:-1],
            "load_average": [round(x, 2) for x in load],
            "jwt_cache": {k.rsplit(".", 1)[1]: jwt_after.get(k, 0) - jwt_before.get(k, 0)
                          for k in jwt_after},
            "rows": rows, "rss_kib": {"at_rest": rss_at_rest, "after_load": process_rss(config.state("run"))}}


def _fmt(value) -> str:
    return "–" if value is None else (f"{value:g}" if isinstance(value, float) else str(value))


def report(runs: dict[str, dict]) -> str:
    labels = list(runs)
    cols = " | ".join(labels)
    out = [f"# status\n\n`GET {PATH}` through the gateway (Envoy: Lua, JWT RS256, transcoding, mutual TLS) to the "
           "status service, driven by `wrk -t1` (keep-alive HTTP/1.1, alice's token). *issue: ours / v2* are "
           "issue 8's figures (our mesh and FirecREST v2 side by side, before this work). Targets (issue 8, "
           "part 4): c=1 p50 ≤ 1.1 ms; c=32 ≥ 1,800 req/s with p99 ≤ 40 ms.\n"]
    for label, r in runs.items():
        out.append(f"- *{label}*: {r['time']}, commit {r['commit']}, {r['rounds']} × {r['duration_s']} s per case, "
                   f"load average {r['load_average'][0]} → {r['load_average'][-1]}; Envoy "
                   f"`{' '.join(a for a in r['envoy_argv'] if not a.startswith('/'))}`; JWT cache hits "
                   f"{r['jwt_cache'].get('jwt_cache_hit', 0)}, misses {r['jwt_cache'].get('jwt_cache_miss', 0)}.")
    out.append("")
    out.append(f"| case | issue: ours | issue: v2 | {cols} | target | met ({labels[-1]}) |")
    out.append("|---|---:|---:|" + "---:|" * len(labels) + "---|---|")
    targets = {(c, key): (op, limit) for c, key, op, limit in TARGETS}
    for concurrency in CONCURRENCIES:
        for key, unit in (("p50_ms", "p50 ms"), ("p99_ms", "p99 ms"), ("req_per_s", "req/s"), ("errors", "errors")):
            values = [r["rows"].get(str(concurrency), {}).get(key) for r in runs.values()]
            target = targets.get((concurrency, key))
            met = ""
            if target and values[-1] is not None:
                op, limit = target
                met = "yes" if (values[-1] <= limit if op == "≤" else values[-1] >= limit) else "**no**"
            out.append(f"| c={concurrency} {unit} | {_fmt(ISSUE['ours'].get(concurrency, {}).get(key))} | "
                       f"{_fmt(ISSUE['v2'].get(concurrency, {}).get(key))} | "
                       + " | ".join(_fmt(v) for v in values)
                       + f" | {f'{target[0]} {target[1]:g}' if target else ''} | {met} |")
        values = [r["rows"].get(str(concurrency), {}).get("others_cpu_pct") for r in runs.values()]
        out.append(f"| c={concurrency} other processes' CPU, % of the machine | | | "
                   + " | ".join(_fmt(v) for v in values) + " | | |")
        for name in ("envoy", "status"):
            values = [r["rows"].get(str(concurrency), {}).get("cpu_us_per_request", {}).get(name) for r in runs.values()]
            out.append(f"| c={concurrency} CPU µs/request, {name} | | | " + " | ".join(_fmt(v) for v in values) + " | | |")

    out.append(f"\nMemory: VmRSS in MiB of every process of state/run/*.pid (issue 8: {ISSUE_MIB_AT_REST} MiB at rest "
               "over the mesh's processes), at rest before the load and after it.\n")
    out.append("| process | " + " | ".join(f"{label} at rest | {label} after load" for label in labels) + " |")
    out.append("|---|" + "---:|---:|" * len(labels))
    names = sorted({n for r in runs.values() for phase in r["rss_kib"].values() for n in phase})
    totals = {(label, phase): 0 for label in labels for phase in ("at_rest", "after_load")}
    for name in names:
        cells = []
        for label, r in runs.items():
            for phase in ("at_rest", "after_load"):
                kib = r["rss_kib"][phase].get(name)
                totals[(label, phase)] += kib or 0
                cells.append(_fmt(None if kib is None else round(kib / 1024, 1)))
        out.append(f"| {name} | " + " | ".join(cells) + " |")
    out.append("| **total** | " + " | ".join(f"**{totals[(label, phase)] / 1024:.1f}**" for label in labels
                                             for phase in ("at_rest", "after_load")) + " |")
    notes = [f"- *{label}*: {r['note']}" for label, r in runs.items() if r.get("note")]
    if notes:
        out.append("\nNotes:\n")
        out.extend(notes)
    return "\n".join(out) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--label", default="after", help="this run's column (before, after, ...)")
    parser.add_argument("--duration", type=int, default=5, help="seconds per case and round")
    parser.add_argument("--rounds", type=int, default=1, help="repetitions of (c=1, c=32)")
    parser.add_argument("--quick", action="store_true", help="2 s cases (smoke run)")
    parser.add_argument("--note", help="a note kept with this label's run and printed under the tables")
    parser.add_argument("--report-only", action="store_true",
                        help="no load: rewrite status.md from status.json (with --note: set the label's note)")
    args, ignored = parser.parse_known_args()  # bench/run.py passes every script the same args
    if ignored:
        print(f"status: ignoring {' '.join(ignored)}")
    if args.quick:
        args.duration = 2
    saved = RESULTS / "status.json"
    try:
        runs = json.loads(saved.read_text()).get("runs", {})
    except (OSError, ValueError, AttributeError):
        runs = {}  # none yet, or the older list-of-rows format
    if args.report_only:
        if args.note is not None:
            runs[args.label]["note"] = args.note
    else:
        if not shutil.which("wrk"):
            raise SystemExit("status: needs wrk (`bash cluster/install-packages.sh` installs it)")
        result = run(args, load_config())
        if args.note:
            result["note"] = args.note
        runs.pop(args.label, None)
        runs[args.label] = result
    RESULTS.mkdir(exist_ok=True)
    saved.write_text(json.dumps({"runs": runs}, indent=1) + "\n")
    text = report(runs)
    (RESULTS / "status.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
