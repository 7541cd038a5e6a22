"""Cost of zero trust (issue 7): the mesh before (a baseline git ref) and after (this working tree),
measured in one run on the same machine, cluster, identity provider, tokens and requests.

    .venv/bin/python bench/zero_trust.py [--baseline-ref 6ab4c68] [--duration 5] [--rounds 2]

Cases: `GET /status/systems` (gateway + status service, no SSH) and `ls` of a 20-entry folder
(gateway + utilities service + certificator + pooled SSH), each at concurrency 1 and 32, driven by
`wrk` (one C event-loop thread; the Python harness of the other benchmarks is itself the bottleneck
at c=32 on this machine's 2 cores). Phases alternate baseline, current, baseline, current (--rounds)
to spread drift over both; each phase stops the mesh (`mesh.py down`: the supervisor starts every
process in its own tree, so it goes too, with the identity provider; the cluster keeps running),
starts the variant's own with its `scripts/mesh.py up`, checks that the processes running are that
variant's, warms up (SSH connections, token caches), then measures each
case for --duration seconds. The table reports every phase, both variants combined (the phases'
latency histograms merged) and current/baseline ratios against the issue's targets (`ls` p50
≤ 1.05, `/status/systems` p50 ≤ 1.15).

The baseline is the ref's tree (`git archive`, no worktree registration) in state/bench/baseline,
with symlinks `state` → this checkout's state (same signing key, SSH CA, known_hosts) and `.venv`;
it is deleted at the end. Whatever happens, the mesh is left running this working tree's version.
Needs root (the fixture folder is written as alice's) and a running cluster (`make up`). Stops and
restarts the mesh's services: do not run it while tests run. Saves bench/results/zero_trust.md and
.json.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import pwd
import shutil
import sys
import time
import urllib.parse
from dataclasses import asdict
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.harness import RESULTS, Row, table  # noqa: E402
from bench.mesh_variants import (CODE_DIRS, Disturbed, Variant, code_fingerprint, envoy_yaml_digest,  # noqa: E402
                                 extract_baseline, git, launcher_lock, process_names, remove_baseline,
                                 switch, verify)
from bench.wrk_load import WRK_SCRIPT, Sample, Tokens, summarize, wrk  # noqa: E402
from services.common.config import load_config  # noqa: E402

USER = "alice"
FOLDER = f"/scratch/{USER}/bench-zero-trust"
ENTRIES = 20
TARGETS = {"GET /status/systems": 1.15, f"ls ({ENTRIES} entries)": 1.05}  # max p50 ratio (issue 7)


# ---------------------------------------------------------------------------------------------
# The run


def prepare_folder() -> None:
    """FOLDER with ENTRIES entries (files and folders) owned by alice; idempotent."""
    pw = pwd.getpwnam(USER)
    shutil.rmtree(FOLDER, ignore_errors=True)
    os.makedirs(FOLDER)
    for i in range(ENTRIES):
        path = f"{FOLDER}/entry-{i:02d}"
        if i % 5 == 4:
            os.mkdir(path)
        else:
            Path(path + ".txt").write_text(f"entry {i}\n" * (i + 1))
            path += ".txt"
        os.lchown(path, pw.pw_uid, pw.pw_gid)
    os.lchown(FOLDER, pw.pw_uid, pw.pw_gid)


def sanity(base: str, token: str, cases: dict[str, str]) -> None:
    """Both requests answer correctly (wrk only counts status codes)."""
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=60) as c:
        systems = c.get(cases["GET /status/systems"])
        if systems.status_code != 200 or "local" not in systems.text:
            raise RuntimeError(f"/status/systems: {systems.status_code} {systems.text[:300]}")
        ls = c.get(cases[f"ls ({ENTRIES} entries)"])
        if ls.status_code != 200 or len(ls.json().get("output", [])) != ENTRIES:
            raise RuntimeError(f"ls: {ls.status_code} {ls.text[:300]}")


def others_testing() -> int:
    """How many pytest processes are running on the machine (other users' tests skew the figures)."""
    count = 0
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            count += b"pytest" in cmdline.read_bytes()
    return count


def run_phase(config, running: Variant, variant: Variant, round_: int, base, cases, tokens, args, script):
    """Starts `variant` (stopping `running`), warms up, measures every case. Returns the phase's
    record, its samples by (variant, scenario, concurrency), and the variant now running."""
    t0 = time.monotonic()
    started = switch(running, variant)
    startup = time.monotonic() - t0
    samples = {}
    with launcher_lock(config):
        pids = verify(config, variant, started)
        gateway_config = envoy_yaml_digest(config)
        token = tokens.get()
        sanity(base, token, cases)
        for path in cases.values():  # SSH connections, certificates, token caches
            wrk(base + path, token, 32, args.warmup, script)
        phase = {"variant": variant.label, "round": round_, "startup_s": round(startup, 1),
                 "pids": pids, "envoy_yaml": gateway_config, "load_average": os.getloadavg()[0],
                 "others_testing": others_testing(), "rows": []}
        for scenario, path in cases.items():
            for concurrency in (1, 32):
                s = wrk(base + path, tokens.get(), concurrency, args.duration, script)
                samples[(variant.label, scenario, concurrency)] = s
                row = summarize(f"{scenario} [{variant.label} #{round_}]", concurrency, [s])
                phase["rows"].append({**asdict(row), "seconds": round(s.seconds, 2),
                                      "client_cpu_s": round(s.client_cpu_s, 2)})
                print(f"  {variant.label} #{round_} {scenario} c={concurrency}: p50 {row.p50_ms} ms"
                      f" p99 {row.p99_ms} ms {row.req_per_s} req/s errors {row.errors}", flush=True)
        if verify(config, variant, started) != pids or envoy_yaml_digest(config) != gateway_config:
            raise Disturbed(f"{variant.label} #{round_}: the mesh changed during the phase")
    return phase, samples, variant


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline-ref", default="6ab4c68", help="git ref before zero trust")
    parser.add_argument("--duration", type=int, default=5, help="seconds per case and phase")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of warm-up per endpoint")
    parser.add_argument("--rounds", type=int, default=2, help="baseline+current pairs")
    parser.add_argument("--quick", action="store_true", help="1 round of 2 s cases (smoke run)")
    args, ignored = parser.parse_known_args()  # bench/run.py passes every script the same args
    if ignored:
        print(f"zero_trust: ignoring {' '.join(ignored)}")
    if args.quick:
        args.duration, args.warmup, args.rounds = 2, 1, 1
    if os.geteuid() != 0:
        raise SystemExit("zero_trust: run as root (the fixture folder is written as alice's)")
    if not shutil.which("wrk"):
        raise SystemExit("zero_trust: needs wrk (`bash cluster/install-packages.sh` installs it)")

    config = load_config()
    base = f"http://{config.gateway.listen}"
    cases = {"GET /status/systems": "/status/systems",
             f"ls ({ENTRIES} entries)": "/filesystem/local/ops/ls?"
                                        + urllib.parse.urlencode({"path": FOLDER})}
    work = config.state("bench")
    work.mkdir(parents=True, exist_ok=True)
    script = work / "zero_trust.lua"
    script.write_text(WRK_SCRIPT)
    baseline_dir = work / "baseline"

    head = git("rev-parse", "--short", "HEAD")
    dirty = git("status", "--porcelain", "--", *CODE_DIRS)
    current = Variant("current", ROOT, {k: v for k, v in os.environ.items()},
                      f"working tree at {head}" + (" + uncommitted changes" if dirty else " (clean)"))
    try:
        commit = extract_baseline(args.baseline_ref, baseline_dir)
    except BaseException:
        remove_baseline(baseline_dir)
        raise
    env = dict(os.environ)
    # The venv's .pth puts this checkout first on sys.path: the baseline's tree must come before it.
    env["PYTHONPATH"] = os.pathsep.join([str(baseline_dir), str(baseline_dir / "gen" / "python")])
    baseline = Variant("baseline", baseline_dir, env, f"{args.baseline_ref} ({commit[:10]})")
    fingerprints = {"baseline": code_fingerprint(baseline_dir), "current": []}
    try:
        current.names, baseline.names = process_names(current), process_names(baseline)
    except BaseException:
        remove_baseline(baseline_dir)
        raise

    tokens = Tokens(config.identity.token_url)
    phases: list[dict] = []
    samples: dict[tuple[str, str, int], list[Sample]] = collections.defaultdict(list)
    load_before = os.getloadavg()
    began = time.monotonic()
    prepare_folder()
    running = current
    error = None
    try:
        current.mesh("up")  # the starting point: this tree's mesh, healthy
        for round_ in range(1, args.rounds + 1):
            for variant in (baseline, current):
                for attempt in (1, 2):  # a phase someone else disturbed is run again, once
                    if variant is current:
                        fingerprints["current"].append(code_fingerprint(ROOT))
                    try:
                        phase, phase_samples, running = run_phase(
                            config, running, variant, round_, base, cases, tokens, args, script)
                        break
                    except Disturbed as exc:
                        running = variant
                        if attempt == 2:
                            raise
                        print(f"zero_trust: {exc}; running the phase again", flush=True)
                        if variant is current:
                            fingerprints["current"].pop()
                phases.append(phase)
                for key, sample in phase_samples.items():
                    samples[key].append(sample)
    except BaseException as exc:
        error = exc
        raise
    finally:
        try:
            if running is not current or error is not None:
                print("zero_trust: restoring this working tree's mesh", flush=True)
                try:
                    started = switch(running, current)
                except RuntimeError as exc:  # once more, e.g. a process slow to stop
                    print(f"zero_trust: {exc}; trying again", flush=True)
                    time.sleep(2)
                    started = switch(current, current)
                running = current
                verify(config, current, started)
                print("zero_trust: this working tree's mesh is running", flush=True)
        finally:
            remove_baseline(baseline_dir)
            shutil.rmtree(FOLDER, ignore_errors=True)
    elapsed = time.monotonic() - began
    report(args, baseline, current, fingerprints, phases, samples, tokens.count,
           load_before, os.getloadavg(), elapsed)


def report(args, baseline, current, fingerprints, phases, samples, token_count,
           load_before, load_after, elapsed) -> None:
    combined, ratio_lines, ratios = [], [], []
    for scenario in TARGETS:
        for concurrency in (1, 32):
            b = summarize(f"{scenario} [baseline]", concurrency, samples[("baseline", scenario, concurrency)])
            c = summarize(f"{scenario} [current]", concurrency, samples[("current", scenario, concurrency)])
            combined += [b, c]
            per_round = [summarize("", concurrency, [cs]).p50_ms / summarize("", concurrency, [bs]).p50_ms
                         for bs, cs in zip(samples[("baseline", scenario, concurrency)],
                                           samples[("current", scenario, concurrency)])]
            base_runs = [summarize("", concurrency, [bs]).p50_ms
                         for bs in samples[("baseline", scenario, concurrency)]]
            drift = max(base_runs) / min(base_runs) if len(base_runs) > 1 else float("nan")
            p50, rps = c.p50_ms / b.p50_ms, c.req_per_s / b.req_per_s
            ok = p50 <= TARGETS[scenario]
            ratios.append({"scenario": scenario, "concurrency": concurrency, "p50_ratio": round(p50, 3),
                           "req_per_s_ratio": round(rps, 3), "p50_ratio_per_round": [round(r, 3) for r in per_round],
                           "baseline_p50_drift": round(drift, 3),
                           "target_p50_ratio": TARGETS[scenario], "within_target": ok})
            ratio_lines.append(f"| {scenario} | {concurrency} | {b.p50_ms} | {c.p50_ms} | **{p50:.2f}** "
                               f"({' / '.join(f'{r:.2f}' for r in per_round)}) | {b.req_per_s} | "
                               f"{c.req_per_s} | **{rps:.2f}** | ≤ {TARGETS[scenario]:.2f}: "
                               f"{'yes' if ok else 'NO'} | {drift:.2f} |")
    same_code = all(f == fingerprints["baseline"] for f in fingerprints["current"])
    gateway_configs = {p["variant"]: p["envoy_yaml"] for p in phases}
    phase_loads = [f"{p['variant']} #{p['round']} {p['load_average']:.1f}"
                   + (" with others' tests" if p["others_testing"] else "") for p in phases]
    cpu = [r["client_cpu_s"] / r["seconds"] for p in phases for r in p["rows"] if r["concurrency"] == 32]
    notes = "\n".join([
        f"*baseline*: {baseline.description}, before zero trust. *current*: {current.description}"
        f" (code fingerprint {', '.join(dict.fromkeys(fingerprints['current']))}; baseline's"
        f" {fingerprints['baseline']}: {'IDENTICAL code — a ratio of ~1 is expected' if same_code else 'different code'}).",
        f"Gateway config (envoy.yaml sha256): baseline {gateway_configs.get('baseline')}, current"
        f" {gateway_configs.get('current')}."
        + (" **The working tree changed between rounds** (others editing): the current phases ran"
           " different code." if len(set(fingerprints["current"])) > 1 else ""),
        "",
        f"Same machine, cluster, identity provider, token ({token_count} fetched) and requests. Phases"
        f" alternate baseline, current ({args.rounds} rounds); each starts the variant's certificator,"
        f" services and Envoy with its own `scripts/mesh.py up`, checks the processes are that variant's,"
        f" warms up {args.warmup:g} s per endpoint at c=32, then runs each case {args.duration:g} s."
        f" Load: `wrk -t1` (keep-alive HTTP/1.1, token in a header); `ls` lists a {ENTRIES}-entry folder"
        f" in /scratch as alice. Combined = the phases' latency histograms merged. Ratio = current /"
        f" baseline (p50: > 1 is a cost; req/s: < 1 is a cost); per-round p50 ratios in brackets."
        f" Target (issue 7): p50 ratio ≤ 1.05 for `ls`, ≤ 1.15 for `/status/systems`. *Baseline drift*:"
        f" the baseline's slowest p50 over its fastest across rounds, a measure of this run's noise: a"
        f" ratio within it is not a measured cost.",
        "",
        f"Caveats: 2 cores shared by wrk (≈{100 * max(cpu or [0]):.0f} % of a core at c=32), Envoy"
        f" (--concurrency 1), the services, sshd and other users of the machine (load average"
        f" {load_before[0]:.2f} before, {load_after[0]:.2f} after; per phase"
        f" {', '.join(phase_loads)};"
        f" other pytest processes running in {sum(p['others_testing'] > 0 for p in phases)} of"
        f" {len(phases)} phases); c=32 figures are CPU-bound. Steady"
        f" state only: every token is verified once per process, then served from the services' caches."
        f" Run took {elapsed:.0f} s.",
        "",
        "| scenario | concurrency | baseline p50 ms | current p50 ms | p50 ratio (per round) |"
        " baseline req/s | current req/s | req/s ratio | p50 target | baseline drift |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|---:|",
        *ratio_lines,
        "",
        "Combined:",
        "",
        table(combined),
        "",
        "Per phase:",
    ])
    per_phase = [Row(**{k: v for k, v in r.items() if k not in ("seconds", "client_cpu_s")})
                 for p in phases for r in p["rows"]]
    RESULTS.mkdir(exist_ok=True)
    text = f"# zero_trust\n\n{time.strftime('%Y-%m-%d %H:%M:%S %Z')}\n\n{notes}\n\n{table(per_phase)}\n"
    print(text)
    (RESULTS / "zero_trust.md").write_text(text)
    (RESULTS / "zero_trust.json").write_text(json.dumps({
        "baseline": baseline.description, "current": current.description,
        "code_fingerprints": fingerprints, "identical_code": same_code,
        "duration_s": args.duration, "warmup_s": args.warmup, "rounds": args.rounds,
        "load_average": [load_before[0], load_after[0]], "elapsed_s": round(elapsed),
        "ratios": ratios, "combined": [asdict(r) for r in combined], "phases": phases}, indent=1))


if __name__ == "__main__":
    main()
