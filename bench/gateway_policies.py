"""The gateway's cost of its policies: `GET /status/systems` through two extra real Envoys in front of
the same status service, one with every policy on and one with none, at concurrency 1 and 32, in one run.

    .venv/bin/python bench/gateway_policies.py [--duration 5] [--rounds 3] [--quick]

*on*: the IP filter (global and per-system allow and deny lists: the Lua filter names the system of
every REST call), the access control lists (a global rule and one per area and system, on alice's
`groups` claim), rate limits per user and per address for both classes (budgets far above what wrk
sends: every request is counted, none refused). *off*: no policy (the filters are left out of the
configuration, as in a deployment without policies). Both are rendered by gateway/render.py from
copies of the configuration with their own ports and base ids, with the shared gateway's worker count
(scripts/mesh.py), and are stopped afterwards; the shared gateway is not touched.

`wrk -t1` (as bench/status.py) drives each case for --duration seconds, off and on alternating, --rounds
times; rounds are merged as latency histograms. The ratio on/off of p50 and of req/s is printed and
saved with the table in bench/results/gateway_policies.{md,json}. Target (issue 12): p50 on ≤ 1.10 ×
off. Needs the mesh running (`make up`) and wrk. Nothing here asserts on time.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))  # scripts/mesh.py imports its neighbours

from bench.harness import RESULTS  # noqa: E402
from bench.harness import cpu_seconds  # noqa: E402
from bench.wrk_load import WRK_SCRIPT, Tokens, summarize, wrk  # noqa: E402
from mesh import ENVOY_WORKERS  # noqa: E402
from services.common.config import load_config  # noqa: E402

PATH = "/status/systems"
CONCURRENCIES = (1, 32)
TARGET_P50_RATIO = 1.10
BIG = {"per_second": 1_000_000, "burst": 1_000_000}  # counted, never reached
ON = {
    "trusted_proxy_hops": 0,
    "rate_limits": {"expensive": {"per_user": BIG, "per_address": BIG},
                    "default": {"per_user": BIG, "per_address": BIG}},
    "ip_filter": {"allow": ["127.0.0.0/8"], "deny": ["10.0.0.0/8"],
                  "systems": {"local": {"allow": ["127.0.0.0/8"], "deny": ["10.66.0.0/16"]}}},
    "access_control": [{"claim": "groups", "contains": "shared"},
                       {"claim": "groups", "contains": "proj-a", "areas": ["compute"], "systems": ["local"]},
                       {"claim": "groups", "contains": "shared", "areas": ["status"]}],
}
OFF = {"trusted_proxy_hops": 0,
       "rate_limits": {"expensive": {"per_user": None, "per_address": None},
                       "default": {"per_user": None, "per_address": None}},
       "ip_filter": {}, "access_control": []}
VARIANTS = {"off": (OFF, "127.0.0.1:18096", "127.0.0.1:19917", 925),
            "on": (ON, "127.0.0.1:18094", "127.0.0.1:19915", 923)}


def start_envoy(config, name: str, folder: Path) -> subprocess.Popen:
    """Renders the variant's configuration into `folder` and starts its Envoy; waits until it answers."""
    policies, listen, admin, base_id = VARIANTS[name]
    data = _config_data(config)
    data["state_dir"] = str(config.state_dir)
    data["gateway"].update(listen=listen, admin=admin, **policies)
    (folder / f"{name}.yaml").write_text(yaml.safe_dump(data))
    out = folder / name / "envoy.yaml"
    subprocess.run([sys.executable, "-m", "gateway.render", "--config", str(folder / f"{name}.yaml"),
                    "--out", str(out)], check=True, cwd=ROOT, capture_output=True)
    log = open(folder / f"{name}.log", "wb")
    proc = subprocess.Popen([str(Path(sys.executable).parent / "envoy"), "-c", str(out), "--base-id", str(base_id),
                             "--concurrency", str(ENVOY_WORKERS), "--log-level", "warn"],
                            stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"http://{listen}/status/liveness/", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise SystemExit(f"gateway_policies: the {name} Envoy did not start: "
                             f"{(folder / f'{name}.log').read_text()[-2000:]}")
        time.sleep(0.2)


def _config_data(config) -> dict:
    """The configuration file's mapping with any `extends:` resolved (config.py's reader)."""
    from services.common import config as config_module
    return config_module._read_yaml(config.path)


def run(args, config, folder: Path) -> dict:
    load_before = round(os.getloadavg()[0], 2)
    script = folder / "wrk.lua"
    script.write_text(WRK_SCRIPT)
    tokens = Tokens(config.identity.token_url)
    procs = {name: start_envoy(config, name, folder) for name in VARIANTS}
    try:
        for name, (_, listen, _, _) in VARIANTS.items():  # both serve alice the same answer
            r = httpx.get(f"http://{listen}{PATH}", headers={"Authorization": f"Bearer {tokens.get()}"}, timeout=10)
            if r.status_code != 200:
                raise SystemExit(f"gateway_policies: {name}: {r.status_code} {r.text[:300]}")
        samples = {(name, c): [] for name in VARIANTS for c in CONCURRENCIES}
        cpu = {(name, c): 0.0 for name in VARIANTS for c in CONCURRENCIES}  # the variant's Envoy, seconds
        for _ in range(args.rounds):
            for c in CONCURRENCIES:
                for name, (_, listen, _, _) in VARIANTS.items():
                    url = f"http://{listen}{PATH}"
                    wrk(url, tokens.get(), c, 1, script)  # warm-up
                    before = cpu_seconds(procs[name].pid)
                    sample = wrk(url, tokens.get(), c, args.duration, script)
                    cpu[(name, c)] += cpu_seconds(procs[name].pid) - before
                    samples[(name, c)].append(sample)
                    row = summarize(PATH, c, [sample])
                    print(f"  {name} c={c}: p50 {row.p50_ms} ms, {row.req_per_s} req/s, errors {row.errors}",
                          flush=True)
    finally:
        for proc in procs.values():
            proc.terminate()
            proc.wait(10)
    rows = {}
    for c in CONCURRENCIES:
        for name in VARIANTS:
            row = summarize(PATH, c, samples[(name, c)])
            rows[f"{name} c={c}"] = {"p50_ms": row.p50_ms, "p99_ms": row.p99_ms, "req_per_s": row.req_per_s,
                                     "errors": row.errors, "requests": sum(s.requests for s in samples[(name, c)]),
                                     "envoy_cpu_us_per_request": round(cpu[(name, c)] * 1e6 / max(
                                         1, sum(s.requests for s in samples[(name, c)])))}
        on, off = rows[f"on c={c}"], rows[f"off c={c}"]
        rows[f"ratio c={c}"] = {"p50": round(on["p50_ms"] / off["p50_ms"], 3),
                                "req_per_s": round(on["req_per_s"] / off["req_per_s"], 3),
                                "envoy_cpu": round(on["envoy_cpu_us_per_request"]
                                                   / max(1, off["envoy_cpu_us_per_request"]), 3)}
    return {"time": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "duration_s": args.duration, "rounds": args.rounds,
            "load_average": [load_before, round(os.getloadavg()[0], 2)],
            "envoy_workers": ENVOY_WORKERS, "rows": rows}


def report(result: dict) -> str:
    rows = result["rows"]
    out = [f"# gateway_policies\n\n{result['time']}: `GET {PATH}` through two extra Envoys in front of the same "
           f"status service, every policy on vs none (bench/gateway_policies.py), `wrk -t1`, "
           f"{result['rounds']} × {result['duration_s']} s per case, off and on alternating, "
           f"{result['envoy_workers']} Envoy worker(s). Target: p50 on/off ≤ {TARGET_P50_RATIO:.2f}.\n",
           "| c | off p50 ms | on p50 ms | p50 on/off | off req/s | on req/s | req/s on/off | off p99 ms | on p99 ms "
           "| Envoy CPU µs/req off/on | errors off/on | target met |",
           "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---|"]
    for c in CONCURRENCIES:
        on, off, ratio = rows[f"on c={c}"], rows[f"off c={c}"], rows[f"ratio c={c}"]
        met = "yes" if ratio["p50"] <= TARGET_P50_RATIO else "**no**"
        out.append(f"| {c} | {off['p50_ms']} | {on['p50_ms']} | {ratio['p50']} | {off['req_per_s']} | "
                   f"{on['req_per_s']} | {ratio['req_per_s']} | {off['p99_ms']} | {on['p99_ms']} | "
                   f"{off['envoy_cpu_us_per_request']}/{on['envoy_cpu_us_per_request']} | "
                   f"{off['errors']}/{on['errors']} | {met} |")
    out.append(f"\nLoad average during the run: {result['load_average'][0]} → {result['load_average'][1]} "
               "(a shared machine: other engineers' tests and benchmarks move every latency figure; the Envoy "
               "CPU per request is the steadier measure of the policies' cost).")
    if result.get("note"):
        out.append(f"\nNote: {result['note']}")
    return "\n".join(out) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per case and round")
    parser.add_argument("--rounds", type=int, default=3, help="repetitions of (c=1, c=32) × (off, on)")
    parser.add_argument("--quick", action="store_true", help="2 s cases, one round (smoke run)")
    parser.add_argument("--note", help="a note saved with the results")
    args, ignored = parser.parse_known_args()  # bench/run.py passes every script the same args
    if ignored:
        print(f"gateway_policies: ignoring {' '.join(ignored)}")
    if args.quick:
        args.duration, args.rounds = 2, 1
    if not shutil.which("wrk"):
        raise SystemExit("gateway_policies: needs wrk (`bash cluster/install-packages.sh` installs it)")
    with tempfile.TemporaryDirectory(prefix="gateway-policies-") as folder:
        result = run(args, load_config(), Path(folder))
    if args.note:
        result["note"] = args.note
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "gateway_policies.json").write_text(json.dumps(result, indent=1) + "\n")
    text = report(result)
    (RESULTS / "gateway_policies.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
