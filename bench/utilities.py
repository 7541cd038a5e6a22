"""Benchmark of the utilities service: ls, stat and head through the gateway vs. the SSH floor.

As alice, on a fixture folder of 20 files in /scratch/alice/bench-utilities:

- c=1: the gateway's p50 (REST through Envoy, as pyfirecrest calls it) beside the *floor*: the
  simplest correct command line for the operation (the one the service sends: one process under
  the remote `timeout`) over one warm paramiko connection, no gateway, gRPC or certificator. For ls,
  FirecREST v2's `ls -l` line is measured too, for reference. Gateway and floor run in alternating
  blocks, so load from elsewhere on the machine hits both alike. Two more figures split the gap:
  the service's own time (the `ms` its server logs per RPC: admission, handler, SSH), and
  `/status/systems` through the gateway (Envoy, gRPC and a Python service without SSH: what any
  request costs before the SSH work).
- c=32: the gateway's throughput and errors, compared with the baseline run (`--baseline` saves one
  into bench/results/utilities.baseline.json; every other run compares with it).
- CPU (user + system) of the utilities process per request, at c=1 and c=32.
- RSS (VmRSS) of each mesh process (state/run/*.pid), at rest before the load and after it.

    .venv/bin/python bench/utilities.py [--baseline] [--quick]

Needs the mesh running (`scripts/mesh.py up`) and root (the fixtures are written directly with
alice's ownership, removed afterwards). Saves bench/results/utilities.md and .json. Nothing here
asserts on time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pwd
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import RESULTS, GatewayConnection, Row, cpu_seconds, measure, percentile, table  # noqa: E402
from services.common.config import load_config  # noqa: E402
from services.common.oidc_client import fetch_token  # noqa: E402
from services.common.ssh.certificates import CertificateCache  # noqa: E402
from services.common.ssh.channel import execute  # noqa: E402
from services.common.ssh.transport import open_transport  # noqa: E402
from services.common.ssh.runner import command_line  # noqa: E402
from services.common.token_verifier import TokenVerifier  # noqa: E402
from services.utilities.commands import head_tail, ls, stat  # noqa: E402

USER, SECRET = "alice", "alice-secret"
ROOT = f"/scratch/{USER}/bench-utilities"
LISTED = f"{ROOT}/twenty"
FILE = f"{LISTED}/file 00.txt"
OPS = ("ls", "stat", "head")
BASELINE = RESULTS / "utilities.baseline.json"
METHODS = {"ls": "ListFiles", "stat": "StatFile", "head": "HeadFile"}
V2_LS = ["ls", "-l", "--quoting-style=c", "--time-style=+%Y-%m-%dT%H:%M:%S", "--", LISTED]


def prepare() -> None:
    """20 files of 20 lines, written as root with alice's ownership (idempotent)."""
    pw = pwd.getpwnam(USER)
    os.makedirs(LISTED, exist_ok=True)
    for i in range(20):
        with open(f"{LISTED}/file {i:02d}.txt", "w") as f:
            f.write("".join(f"line {n}\n" for n in range(20)))
    for root, _dirs, files in os.walk(ROOT):
        os.chown(root, pw.pw_uid, pw.pw_gid)
        for name in files:
            os.chown(os.path.join(root, name), pw.pw_uid, pw.pw_gid)


def gateway_requests():
    ops = "/filesystem/local/ops"

    def ls_twenty(g):
        if len(json.loads(g.get(f"{ops}/ls", {"path": LISTED}))["output"]) != 20:
            raise RuntimeError("not 20 entries")

    def stat_file(g):
        if int(json.loads(g.get(f"{ops}/stat", {"path": FILE}))["output"]["size"]) != 150:
            raise RuntimeError("wrong size")

    def head_file(g):
        if json.loads(g.get(f"{ops}/head", {"path": FILE}))["output"]["content"].count("\n") != 10:
            raise RuntimeError("not 10 lines")
    return {"ls": ls_twenty, "stat": stat_file, "head": head_file}


def floor_lines(system) -> dict[str, dict[str, str]]:
    """Per operation, the floor (the service's own line: the simplest correct one) and references."""
    seconds = system.ssh.timeouts.command_execution
    line = lambda *argvs: command_line(seconds, argvs)  # noqa: E731
    return {
        "ls": {"floor": line(*ls.command(LISTED)), "v2's ls -l": line(V2_LS)},
        "stat": {"floor": line(stat.command(FILE))},
        "head": {"floor": line(head_tail.command("head", FILE, None, None, False))},
    }


def warm_transport(config, system):
    token = fetch_token(config.identity.token_url, f"firecrest-{USER}", SECRET)

    async def certificate():
        cache = CertificateCache.for_service(config, "utilities")
        try:
            return await cache.session_certificate(TokenVerifier(config.identity).verify(token))
        finally:
            await cache.close()
    return open_transport(system, USER, asyncio.run(certificate()))


def timed(fn, n: int) -> tuple[list[float], int]:
    """Latencies (ms) of n calls of fn(), and how many raised."""
    latencies, errors = [], 0
    for _ in range(n):
        start = time.perf_counter()
        try:
            fn()
        except Exception as exc:  # counted, reported
            errors += 1
            if errors == 1:
                print(f"  error: {exc!r}")
            continue
        latencies.append((time.perf_counter() - start) * 1000)
    return latencies, errors


def row(name: str, concurrency: int, latencies: list[float], errors: int, elapsed: float) -> Row:
    s = sorted(latencies)
    return Row(name, concurrency, len(s) + errors, errors, round(percentile(s, 0.5), 2),
               round(percentile(s, 0.99), 2), round(sum(s) / len(s), 2) if s else float("nan"),
               round(len(s) / elapsed, 1) if elapsed else float("nan"))


def rss_mib() -> dict[str, float]:
    """VmRSS of each mesh process (state/run/<name>.pid), MiB."""
    out = {}
    for pid_file in sorted((load_config().state("run")).glob("*.pid")):
        try:
            pid = int(pid_file.read_text().split()[0])
            for text in Path(f"/proc/{pid}/status").read_text().splitlines():
                if text.startswith("VmRSS:"):
                    out[pid_file.stem] = round(int(text.split()[1]) / 1024, 1)
        except (OSError, ValueError, IndexError):
            continue
    return out


def handler_p50(op: str, count: int) -> float:
    """p50 of the service's own time (the `ms` its server logs per RPC: admission, handler, SSH) over
    the last `count` calls of `op`."""
    method = f"/firecrest_mesh.utilities.v1.UtilitiesService/{METHODS[op]}"
    times = []
    with open(load_config().state("logs", "utilities.log"), "rb") as log:
        log.seek(max(0, log.seek(0, os.SEEK_END) - 2000 * count))  # the tail: ~500 bytes a line
        for line in log.read().decode(errors="replace").splitlines()[1:]:
            if method in line and '"ms"' in line:
                try:
                    times.append(float(json.loads(line)["ms"]))
                except (ValueError, KeyError):
                    continue
    return round(percentile(sorted(times[-count:]), 0.5), 2) if times else float("nan")


def service_cpu_seconds(name: str = "utilities") -> float:
    """user + system CPU of a mesh process so far (state/run/<name>.pid), seconds."""
    return cpu_seconds(int(load_config().state("run", f"{name}.pid").read_text().split()[0]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", action="store_true", help=f"save this run as the baseline ({BASELINE.name})")
    parser.add_argument("--quick", action="store_true", help="fewer requests (smoke run)")
    args = parser.parse_args()
    config = load_config()
    system = config.system("local")
    prepare()
    blocks, block = (3, 30) if args.quick else (6, 60)  # c=1: alternating blocks of gateway and floor
    at_32 = 320 if args.quick else 960
    token = fetch_token(config.identity.token_url, f"firecrest-{USER}", SECRET)
    address = str(config.gateway.listen)
    requests = gateway_requests()

    def systems(g):  # the gateway and a Python gRPC service without SSH: the framework's own cost
        g.get("/status/systems", {})
    requests_systems = systems
    lines = floor_lines(system)
    transport = warm_transport(config, system)
    rest = rss_mib()
    rows: list[Row] = []
    c1: dict[str, dict[str, float]] = {}
    cpu: dict[str, dict[str, float]] = {op: {} for op in OPS}  # utilities CPU ms per request
    handler: dict[str, list[float]] = {op: [] for op in OPS}  # the service's own time, p50 per block
    try:
        gateway = GatewayConnection(address, lambda: token, timeout=60)
        for op in OPS:
            samples: dict[str, list[float]] = {"gateway": [], "/status/systems": []}
            errors = dict.fromkeys(["gateway", "/status/systems", *lines[op]], 0)
            elapsed = dict.fromkeys(errors, 0.0)
            for name in lines[op]:
                samples[name] = []

            def floor(line=None):
                result = execute(transport, line, None, 60, 1 << 24)
                if result.exit_status != 0:
                    raise RuntimeError(result.error_text())
            used = 0.0
            for _ in range(blocks):
                began, cpu_before = time.perf_counter(), service_cpu_seconds()
                got, failed = timed(lambda: requests[op](gateway), block)
                elapsed["gateway"] += time.perf_counter() - began
                used += service_cpu_seconds() - cpu_before
                samples["gateway"] += got
                errors["gateway"] += failed
                handler[op].append(handler_p50(op, block))
                began = time.perf_counter()
                got, failed = timed(lambda: requests_systems(gateway), block)
                elapsed["/status/systems"] += time.perf_counter() - began
                samples["/status/systems"] += got
                errors["/status/systems"] += failed
                for name, line in lines[op].items():
                    began = time.perf_counter()
                    got, failed = timed(lambda: floor(line), block)
                    elapsed[name] += time.perf_counter() - began
                    samples[name] += got
                    errors[name] += failed
            cpu[op]["1"] = round(used * 1000 / (blocks * block), 2)
            c1[op] = {}
            for name, latencies in samples.items():
                r = row(f"{op} ({name})", 1, latencies, errors[name], elapsed[name])
                rows.append(r)
                c1[op][name] = r.p50_ms
            c1[op]["service"] = round(sorted(handler[op])[len(handler[op]) // 2], 2)
            print(f"{op} c=1: gateway p50 {c1[op]['gateway']} ms, floor p50 {c1[op]['floor']} ms "
                  f"(+{c1[op]['gateway'] - c1[op]['floor']:.2f} ms); service's own time p50 {c1[op]['service']} ms; "
                  f"/status/systems p50 {c1[op]['/status/systems']} ms", flush=True)
        for op in OPS:
            cpu_before = service_cpu_seconds()
            r = measure(f"{op} (gateway)", requests[op], lambda: GatewayConnection(address, lambda: token, timeout=60), 32, at_32, warmup=32)
            cpu[op]["32"] = round((service_cpu_seconds() - cpu_before) * 1000 / (at_32 + 32), 2)
            rows.append(r)
            print(f"{op} c=32: {r.req_per_s} req/s, {r.errors} errors, p99 {r.p99_ms} ms", flush=True)
    finally:
        transport.close()
        shutil.rmtree(ROOT, ignore_errors=True)
    loaded = rss_mib()
    result = {"time": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "rows": [r.__dict__ for r in rows],
              "rss_mib": {"rest": rest, "after_load": loaded}, "service_cpu_ms_per_request": cpu, "c1_p50_ms": c1,
              "load_average": os.getloadavg()}
    if args.baseline:
        BASELINE.write_text(json.dumps(result, indent=1) + "\n")
        print(f"saved as the baseline: {BASELINE}")
    base = json.loads(BASELINE.read_text()) if BASELINE.exists() else None
    print(report(result, base, lines))
    if not args.baseline:
        (RESULTS / "utilities.md").write_text(report(result, base, lines))
        (RESULTS / "utilities.json").write_text(json.dumps({**result, "baseline": base}, indent=1) + "\n")


def report(result: dict, base: dict | None, lines: dict[str, dict[str, str]]) -> str:
    rows = [Row(**r) for r in result["rows"]]
    by = {(r.scenario, r.concurrency): r for r in rows}
    old = {(r["scenario"], r["concurrency"]): r for r in base["rows"]} if base else {}
    c1 = ["| op | gateway p50 ms | floor p50 ms | gateway − floor ms | service's own time p50 ms | service − floor ms"
          " | /status/systems p50 ms (no SSH) | baseline gateway p50 | baseline floor p50 | baseline gateway − floor |",
          "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    own = result.get("c1_p50_ms", {})
    for op in OPS:
        g, f = by[(f"{op} (gateway)", 1)], by[(f"{op} (floor)", 1)]
        og, of = old.get((f"{op} (gateway)", 1)), old.get((f"{op} (floor)", 1))
        base_cells = (f"{og['p50_ms']} | {of['p50_ms']} | {og['p50_ms'] - of['p50_ms']:.2f}"
                      if og and of else "– | – | –")
        service = own.get(op, {}).get("service", float("nan"))
        plain = own.get(op, {}).get("/status/systems", float("nan"))
        c1.append(f"| {op} | {g.p50_ms} | {f.p50_ms} | {g.p50_ms - f.p50_ms:.2f} | {service} | "
                  f"{service - f.p50_ms:.2f} | {plain} | {base_cells} |")
    cpu = result.get("service_cpu_ms_per_request", {})
    bcpu = (base or {}).get("service_cpu_ms_per_request", {})
    cpu_rows = ["| op | c=1 | c=32 | baseline c=1 | baseline c=32 |", "|---|---:|---:|---:|---:|"]
    for op in OPS:
        cpu_rows.append(f"| {op} | {cpu.get(op, {}).get('1', '–')} | {cpu.get(op, {}).get('32', '–')} | "
                        f"{bcpu.get(op, {}).get('1', '–')} | {bcpu.get(op, {}).get('32', '–')} |")
    c32 = ["| op | req/s | errors | p99 ms | baseline req/s | baseline errors | ratio |", "|---|---:|---:|---:|---:|---:|---:|"]
    for op in OPS:
        g, o = by[(f"{op} (gateway)", 32)], old.get((f"{op} (gateway)", 32))
        c32.append(f"| {op} | {g.req_per_s} | {g.errors} | {g.p99_ms} | "
                   + (f"{o['req_per_s']} | {o['errors']} | {g.req_per_s / o['req_per_s']:.2f} |" if o and o['req_per_s'] else "– | – | – |"))
    rss = ["| process | RSS at rest MiB | after load MiB | baseline at rest | baseline after load |",
           "|---|---:|---:|---:|---:|"]
    brss = base["rss_mib"] if base else {"rest": {}, "after_load": {}}
    for name in sorted(set(result["rss_mib"]["rest"]) | set(result["rss_mib"]["after_load"])):
        rss.append(f"| {name} | {result['rss_mib']['rest'].get(name, '–')} | "
                   f"{result['rss_mib']['after_load'].get(name, '–')} | {brss['rest'].get(name, '–')} | "
                   f"{brss['after_load'].get(name, '–')} |")
    total = lambda d: round(sum(d.values()), 1)  # noqa: E731
    rss.append(f"| total | {total(result['rss_mib']['rest'])} | {total(result['rss_mib']['after_load'])} | "
               f"{total(brss['rest']) if brss['rest'] else '–'} | "
               f"{total(brss['after_load']) if brss['after_load'] else '–'} |")
    floors = [f"- {op}, {name}: `{line}`" for op, named in lines.items() for name, line in named.items()]
    return "\n".join([
        "# utilities", "", result["time"] + (f" (baseline: {base['time']})" if base else "")
        + (f"; load average at the end {', '.join(f'{x:.2f}' for x in result['load_average'])} on 2 cores"
           if result.get("load_average") else ""), "",
        "As alice on the local system, 20 files of 20 lines. *gateway*: REST through Envoy (JWT, transcoding,"
        " Lua) → utilities service (gRPC, mutual TLS) → pooled SSH → the command, one keep-alive HTTP/1.1"
        " connection per client thread. *floor*: the simplest correct command line for the operation (the"
        " one the service sends) on one warm paramiko connection, no gateway, service or certificator;"
        " c=1 alternates blocks of gateway and floor requests. Baseline: the same bench on the code before"
        " the change.", "",
        "Command lines:", *floors, "",
        "## c=1: gateway p50 vs the floor", "", *c1, "",
        "## c=32: gateway throughput", "", *c32, "",
        "## CPU of the utilities process per request (ms, user + system)", "", *cpu_rows, "",
        "## RSS of the mesh processes (VmRSS)", "", *rss, "",
        "## All rows", "", table(rows), ""])


if __name__ == "__main__":
    main()
