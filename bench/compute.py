"""Compute benchmarks through the real gateway against the local Slurm, beside the floors of the
commands the service runs (the same command line over one warm SSH connection, as the service's user).

    .venv/bin/python bench/compute.py [--requests N]

Scenarios (issue 8's acceptance), each printed beside its target and the figures before the change:
- job by id of a pending and of a running job (alice), c=1 and c=32: one filtered `squeue` (with the
  job's steps), no accounting;
- job by id of a finished job, c=1, alternating blocks with the floor of the service's `sacct` line;
- job list of alice at c=1, 8 and 32 (coalesced: concurrent identical lists of one user share one
  scheduler call), of the size issue 8 measured (p50 ≈ one small sacct): her 20 jobs named
  `bench-list` (sacct filters the name itself); alice's whole window holds over 1,000 jobs of the
  test suites, whose JSON alone (0.7 MB) keeps Envoy and the client busy at c=32;
- job list of a user with ~8,000 jobs in the window (bob, default 24 h window), c=1, alternating with
  the floor of the service's `sacct` line for that window;
- submit, c=1 and 32.
The ~8,000 jobs are made cheaply once (they stay in the 24 h window): job arrays of `true`, held, split
into one job per task (`scontrol update` per task), released and cancelled a few seconds later (they
become eligible, so sacct's window counts them, and never run but a handful); the controller holds
them for MinJobAge (5 min), so the bench adds 1,000 at a time while it holds fewer than MaxJobCount −
2,500. They are bob's, run locally with `runuser` (the bench machine is the cluster). Saves
bench/results/compute.md and .json. Nothing here asserts on time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import RESULTS, GatewayConnection, Row, measure, percentile, table  # noqa: E402
from services.common.config import load_config  # noqa: E402
from services.common.oidc_client import fetch_token  # noqa: E402
from services.common.ssh.certificates import CertificateCache  # noqa: E402
from services.common.ssh.channel import execute  # noqa: E402
from services.common.ssh.transport import open_transport  # noqa: E402
from services.common.ssh.runner import command_line  # noqa: E402
from services.common.token_verifier import TokenVerifier  # noqa: E402
from services.compute.scheduler import JobQuery  # noqa: E402
from services.slurm import delimited, sacct, squeue  # noqa: E402

SECRETS = {"alice": "alice-secret", "bob": "bob-secret"}
MANY_USER, MANY_JOBS = "bob", 8000
LIST_NAME, LIST_JOBS = "bench-list", 20
SLURM_CONF = Path(__file__).resolve().parents[1] / "state" / "cluster" / "etc" / "slurm.conf"
# Before this change (commit 2fadff2): issue 8's side-by-side measurement (10 s runs; req/s, p50 ms)
# and bench/results/compute.md of 2026-11-26 (775 jobs in alice's 7-day window).
BEFORE = {
    "get pending/running c=1": "9.7 req/s, p50 103.8 ms (issue); 8.6 req/s, p50 113.5 (bench)",
    "get c=32": "76 req/s (issue); 19.7 req/s, p50 1451 ms (bench)",
    "get finished c=1": "p50 103.8 ms vs sacct floor 100.1 ms (issue)",
    "list c=1": "9.4 req/s, p50 ~105 ms (issue); 3.8 req/s, p50 259 ms with 775 jobs (bench)",
    "list c=32": "48.5 req/s (issue); 6.8 req/s, p50 4248 ms with 775 jobs (bench)",
    "submit c=1": "65 req/s, p50 13.5 ms (issue); 74 req/s, p50 12.2 (bench)",
}


def slurm_as(user: str, argv: list[str], stdin: str | None = None) -> str:
    return subprocess.run(["runuser", "-u", user, "--", "env", f"SLURM_CONF={SLURM_CONF}", *argv], input=stdin,
                          capture_output=True, text=True, cwd="/tmp", check=True).stdout


def held_by_controller() -> int:
    out = subprocess.run(["squeue", "--noheader", "--states=all", "--Format=JobID:0"], capture_output=True,
                         text=True, env={"SLURM_CONF": str(SLURM_CONF), "PATH": "/usr/bin:/bin"}).stdout
    return len(out.split())


def jobs_in_window(user: str) -> int:
    return len(slurm_as(user, ["sacct", "-X", "-n", "-P", "-o", "JobIDRaw", f"--user={user}",
                               "--starttime=now-86400seconds"]).split())


def ensure_history(user: str, wanted: int) -> int:
    """Tops the user's 24 h window up to `wanted` jobs (arrays of 1,000 split, released, cancelled)."""
    have = jobs_in_window(user)
    limit = 10000 - 2500  # MaxJobCount (default) minus room for everyone else's jobs
    while have < wanted - 500:
        while held_by_controller() > limit - 1000:
            print("  waiting for the controller to purge ended jobs (MinJobAge)", flush=True)
            time.sleep(20)
        job = slurm_as(user, ["sbatch", "--parsable", "--hold", "--array=0-999", "--job-name=bench-history",
                              "--output=/dev/null", "--error=/dev/null", "--wrap=true"]).strip()
        slurm_as(user, ["scontrol"], "".join(f"update JobId={job}_{i} Comment=bench-history\n" for i in range(1000)))
        slurm_as(user, ["scontrol", "release", f"{job}_[0-999]"])
        time.sleep(3)  # the scheduler marks them eligible (sacct's window counts eligible jobs)
        slurm_as(user, ["scancel", job])
        have += 1000
        print(f"  {user}: array {job} added, ~{have} jobs in the window", flush=True)
    time.sleep(3)  # accounting catches up
    return jobs_in_window(user)


class Api:
    """Tokens of the dev users (renewed before they expire) and clients on the gateway."""

    def __init__(self, config):
        self.config, self.address, self.tokens = config, str(config.gateway.listen), {}
        self.base = f"http://{self.address}"

    def token(self, user: str) -> str:
        got = self.tokens.get(user)
        if got is None or time.monotonic() - got[1] > 200:  # tokens live 300 s
            got = (fetch_token(self.config.identity.token_url, f"firecrest-{user}", SECRETS[user]), time.monotonic())
            self.tokens[user] = got
        return got[0]

    def client(self, user: str = "alice") -> GatewayConnection:
        return GatewayConnection(self.address, lambda: self.token(user))


def warm_transport(config, system, api: Api, user: str):
    async def certificate():
        cache = CertificateCache.for_service(config, "compute")
        try:
            return await cache.session_certificate(TokenVerifier(config.identity).verify(api.token(user)))
        finally:
            await cache.close()
    return open_transport(system, user, asyncio.run(certificate()))


def timed(fn, n: int, check=None) -> list[float]:
    """Latencies (ms) of `n` calls of `fn`; `check(result)`, when given, runs after each call's timing
    (parsing and checking a 4 MB answer is the client's work, not the system's)."""
    latencies = []
    for _ in range(n):
        start = time.perf_counter()
        result = fn()
        latencies.append((time.perf_counter() - start) * 1000)
        if check is not None:
            check(result)
    return latencies


def alternating(name: str, gateway, floor, blocks: int, block: int, check=None) -> tuple[Row, Row]:
    """c=1: alternating blocks of the gateway request and the floor command, so load drifts hit both;
    `check` takes each gateway answer, outside its timing."""
    samples = {"gateway": [], "floor": []}
    elapsed = {"gateway": 0.0, "floor": 0.0}
    for _ in range(blocks):
        for kind, fn in (("gateway", gateway), ("floor", floor)):
            began = time.perf_counter()
            samples[kind] += timed(fn, block, check if kind == "gateway" else None)
            elapsed[kind] += time.perf_counter() - began
    rows = []
    for kind, label in (("gateway", name), ("floor", f"{name}: floor (sacct line over warm SSH)")):
        s = sorted(samples[kind])
        rows.append(Row(label, 1, len(s), 0, round(percentile(s, 0.5), 2), round(percentile(s, 0.99), 2),
                        round(sum(s) / len(s), 2), round(len(s) / elapsed[kind], 1)))
    return rows[0], rows[1]


def service_side(label: str, method: str, count: int) -> Row:
    """The last `count` calls of `method` as the compute service logged them (its own ms per RPC): where
    the time goes, inside the service or outside it (Envoy, the clients)."""
    log = Path(__file__).resolve().parents[1] / "state" / "logs" / "compute.log"
    ms = []
    for line in log.read_text().splitlines()[-20000:]:
        if f"/{method} ok" in line:
            ms.append(json.loads(line)["ms"])
    s = sorted(ms[-count:])
    return Row(label, 32, len(s), 0, round(percentile(s, 0.5), 2), round(percentile(s, 0.99), 2),
               round(sum(s) / len(s), 2) if s else float("nan"), 0.0)


READING = """Reading. A job by id costs one filtered squeue (with its steps, concurrently) when the controller
still runs or queues the job: its floor is the squeue row. A finished job costs that squeue and then
the one sacct the first time; once accounting has answered it as ended, its later queries run the
sacct alone (services/slurm/ended_jobs.py), so the row measures one sacct plus the path around it
(gateway, gRPC, the service: see bench/gateway_floor.py for what that path costs without SSH).
Lists: identical concurrent lists of a user share one call (the "inside the compute service" row is
the service's own time per RPC); what the clients see beyond that at c=32 is spent outside the
service (Envoy and 32 Python client threads on 2 cores shared with other engineers' work). The list
of ~9,500 jobs is sacct (its 3.5 MB of records arrive over its last ~300 ms, and the service reads
and builds them as they come: sacct.HistoryStream), then what was left to build, gRPC, and Envoy's
transcoding of ~4.4 MB of JSON (~200-280 ms)."""

# The harness makes each worker thread's client (a keep-alive http.client connection, the leanest
# client: the figures measure the gateway and the services, not the client) at its first request, so
# every row warms up 2 × concurrency requests first: each thread then has its connection open before
# the measured requests.


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200, help="requests per row (lists: this many too)")
    args = parser.parse_args()
    n = args.requests
    config = load_config()
    system = config.systems[0]
    name = system.name
    api = Api(config)
    before_rows = [Row(**r) for r in json.loads((RESULTS / "compute.before.json").read_text())]

    def submit(c: GatewayConnection, script: str = "#!/bin/bash\ntrue\n", name: str = "bench") -> str:
        status, body = c.request("POST", f"/compute/{system.name}/jobs",
                                 json_body={"job": {"working_directory": "/scratch/alice", "name": name, "script": script}})
        if status != 201:
            raise RuntimeError(f"submit: {status} {body[:200]!r}")
        return json.loads(body)["jobId"]

    def state_of(c: GatewayConnection, job_id: str) -> str:
        return json.loads(c.get(f"/compute/{name}/jobs/{job_id}"))["jobs"][0]["status"]["state"]

    print("setup: jobs of alice (pending, running, finished) and bob's history", flush=True)
    with api.client() as c:
        pending = submit(c, "#!/bin/bash\n#SBATCH --begin=now+1hour\ntrue\n")
        running = submit(c, "#!/bin/bash\nsleep 900\n")
        finished = submit(c)
        deadline = time.monotonic() + 120
        while (state_of(c, running) != "RUNNING" or state_of(c, finished) != "COMPLETED") and time.monotonic() < deadline:
            time.sleep(0.5)
    many = ensure_history(MANY_USER, MANY_JOBS)
    transports = {u: warm_transport(config, system, api, u) for u in ("alice", MANY_USER)}

    def floor_line(argv: list[str]) -> str:
        return command_line(system.scheduler.timeout, [argv])

    def run_floor(user: str, line: str) -> None:
        result = execute(transports[user], line, None, 120, 1 << 28)
        if result.exit_status != 0 or not result.stdout:
            raise RuntimeError(f"floor: {result.exit_status} {result.error_text()[:200]}")

    finished_floor = floor_line(sacct.command("alice", delimited.new_delimiter(), job_id=finished))
    window_floor = floor_line(sacct.command(MANY_USER, delimited.new_delimiter(), JobQuery()))
    squeue_floor = floor_line(squeue.command(delimited.new_delimiter(), job_id=pending, all_states=True))

    def check_job(job_id: str, state: str):
        def check(body: bytes) -> None:
            if json.loads(body)["jobs"][0]["status"]["state"] != state:
                raise RuntimeError(f"get {job_id}: {body[:200]!r}")
        return check

    def get(job_id: str, state: str):
        check = check_job(job_id, state)
        return lambda c: check(c.get(f"/compute/{name}/jobs/{job_id}"))

    def check_list(user: str, at_least: int):
        def check(body: bytes) -> None:
            jobs = json.loads(body).get("jobs") or []
            if len(jobs) < at_least or {j["user"] for j in jobs} != {user}:
                raise RuntimeError(f"list: {len(jobs)} jobs")
        return check

    def list_jobs(user: str, at_least: int, **params):
        check = check_list(user, at_least)
        return lambda c: check(c.get(f"/compute/{name}/jobs", params))

    with api.client() as c:  # a list of the size issue 8 measured (p50 ≈ one small sacct): alice's jobs of one name
        listed = json.loads(c.get(f"/compute/{name}/jobs", {"name": LIST_NAME}))["jobs"]
        for _ in range(LIST_JOBS - len(listed)):
            submit(c, name=LIST_NAME)
        time.sleep(3)  # accounting catches up
        small = len(json.loads(c.get(f"/compute/{name}/jobs", {"name": LIST_NAME}))["jobs"])
    rows: list[Row] = []
    for concurrency in (1, 32):
        rows.append(measure("get pending job", get(pending, "PENDING"), api.client, concurrency, n,
                            warmup=2 * concurrency))
    rows.append(measure("get running job", get(running, "RUNNING"), api.client, 1, n))
    began = time.perf_counter()
    s = sorted(timed(lambda: run_floor("alice", squeue_floor), n // 2))
    rows.append(Row("get pending job: floor (its squeue line over warm SSH)", 1, len(s), 0,
                    round(percentile(s, 0.5), 2), round(percentile(s, 0.99), 2), round(sum(s) / len(s), 2),
                    round(len(s) / (time.perf_counter() - began), 1)))
    with api.client() as c:  # 8 blocks of n/8: sacct's own time varies by several ms from call to call
        rows.extend(alternating("get finished job", lambda: c.get(f"/compute/{name}/jobs/{finished}"),
                                lambda: run_floor("alice", finished_floor), 8, max(5, n // 8),
                                check_job(finished, "COMPLETED")))
    for concurrency in (1, 8, 32):
        rows.append(measure(f"list jobs of alice ({small} named {LIST_NAME})", list_jobs("alice", small, name=LIST_NAME),
                            api.client, concurrency, 3 * n if concurrency > 1 else n // 2, warmup=2 * concurrency))
    rows.append(service_side("list jobs of alice, c=32: inside the compute service (its log)", "ListJobs", 3 * n))
    with api.client(MANY_USER) as c:  # 6 blocks of 2: this sacct alone varies by ±20 % from call to call
        rows.extend(alternating(f"list jobs of {MANY_USER} ({many} in 24h)", lambda: c.get(f"/compute/{name}/jobs"),
                                lambda: run_floor(MANY_USER, window_floor), 6, 2, check_list(MANY_USER, MANY_JOBS // 2)))
    for concurrency in (1, 32):
        rows.append(measure("submit (POST jobs)", submit, api.client, concurrency, n // 2, warmup=2 * concurrency))
    with api.client() as c:
        for job_id in (pending, running):
            c.request("DELETE", f"/compute/{name}/jobs/{job_id}")
    for t in transports.values():
        t.close()

    by = {r.scenario + f" c={r.concurrency}": r for r in rows}
    list1, list32 = (by[f"list jobs of alice ({small} named {LIST_NAME}) c={c}"] for c in (1, 32))
    fin, fin_floor = by["get finished job c=1"], by["get finished job: floor (sacct line over warm SSH) c=1"]
    m_label = f"list jobs of {MANY_USER} ({many} in 24h)"
    mny, mny_floor = by[f"{m_label} c=1"], by[f"{m_label}: floor (sacct line over warm SSH) c=1"]
    pend, run = by["get pending job c=1"], by["get running job c=1"]
    verdicts = [
        ("job by id, pending, c=1 p50 ≤ 25 ms", f"{pend.p50_ms} ms", pend.p50_ms <= 25, BEFORE["get pending/running c=1"]),
        ("job by id, running, c=1 p50 ≤ 25 ms", f"{run.p50_ms} ms", run.p50_ms <= 25, BEFORE["get pending/running c=1"]),
        ("job by id, finished, c=1 p50 ≤ sacct floor + 5 ms", f"{fin.p50_ms} ms vs floor {fin_floor.p50_ms} ms "
         f"(+{fin.p50_ms - fin_floor.p50_ms:.1f})", fin.p50_ms <= fin_floor.p50_ms + 5, BEFORE["get finished c=1"]),
        ("job list c=32 ≥ 5 × 48 = 240 req/s", f"{list32.req_per_s} req/s", list32.req_per_s >= 240, BEFORE["list c=32"]),
        ("job list c=32 ≥ 12 × its c=1 rate", f"{list32.req_per_s / list1.req_per_s:.1f} × ({list1.req_per_s} req/s at c=1)",
         list32.req_per_s >= 12 * list1.req_per_s, BEFORE["list c=1"]),
        ("job list c=32 p99 ≤ 300 ms, no errors", f"p99 {list32.p99_ms} ms, {list32.errors} errors",
         list32.p99_ms <= 300 and list32.errors == 0, BEFORE["list c=32"]),
        (f"job list, {many} jobs in the window, ≤ 1.3 × sacct floor", f"{mny.p50_ms} ms vs floor {mny_floor.p50_ms} ms "
         f"({mny.p50_ms / mny_floor.p50_ms:.2f} ×)", mny.p50_ms <= 1.3 * mny_floor.p50_ms, "not measured"),
    ]
    acceptance = ["| target | after | met | before |", "|---|---|---|---|"]
    acceptance += [f"| {t} | {a} | {'yes' if ok else 'NO'} | {b} |" for t, a, ok, b in verdicts]
    before_table = ("\n\nBefore (the run of 2026-11-26 before this change, bench/results/compute.before.json: "
                    "sacct + unfiltered squeue --json for every query):\n\n" + table(before_rows))
    text = (f"# compute\n\n{time.strftime('%Y-%m-%d %H:%M:%S %Z')}\n\n"
            f"Through the gateway ({api.base}) against Slurm 22.05 on one local node (2 cores shared with other "
            f"work), one keep-alive HTTP/1.1 connection (http.client) per client thread (the rows beside a floor parse and check each answer outside its timing). {n} requests per get row and per list row at c=8/32 ({n // 2} at c=1), {n // 2} per submit "
            "row (c=8/32 list rows: 3 × that), after a warm-up of 2 × concurrency requests (every worker thread's client made); floors are the service's own command line over one warm SSH connection as the same user, "
            "measured in blocks alternating with the gateway's. get = one filtered squeue (--jobs, fixed "
            "format) + its steps, concurrently; a job the controller no longer runs or queues adds one sacct. "
            "list = sacct of the window + the user's squeue (--user), concurrently; identical concurrent "
            "lists of one user share one call.\n\n"
            + "\n".join(acceptance) + "\n\n" + READING + "\n\n" + table(rows) + before_table + "\n")
    print(text)
    (RESULTS / "compute.md").write_text(text)
    (RESULTS / "compute.json").write_text(json.dumps({"rows": [r.__dict__ for r in rows],
                                                      "acceptance": [{"target": t, "after": a, "met": ok, "before": b}
                                                                     for t, a, ok, b in verdicts]}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
