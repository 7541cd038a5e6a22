"""Compute benchmarks through the real gateway with alice's token against the local Slurm.

    .venv/bin/python bench/compute.py [--requests N]

Scenarios: submit latency (`POST /compute/S/jobs`, 201), single-job status (`GET .../jobs/{id}`),
job list with 100+ jobs in the history (`GET .../jobs?time_window=7d`), each at concurrency
1/8/32. Saves bench/results/compute.md (and .json). Submitted jobs are trivial (`true`) and run on
the local node. Nothing here asserts on time.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import measure, save  # noqa: E402
from services.common.config import load_config  # noqa: E402
from services.common.oidc_client import fetch_token  # noqa: E402

HISTORY = 100  # jobs the list scenario needs in the history
SCRIPT = "#!/bin/bash\ntrue\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200, help="requests per scenario and concurrency")
    args = parser.parse_args()
    config = load_config()
    system = config.systems[0].name
    base = f"http://{config.gateway.listen}"
    token = fetch_token(config.identity.token_url, "firecrest-alice", "alice-secret")
    started = time.monotonic()

    def client() -> httpx.Client:
        nonlocal token
        if time.monotonic() - started > 200:  # tokens live 300 s: renew for long runs
            token = fetch_token(config.identity.token_url, "firecrest-alice", "alice-secret")
        return httpx.Client(base_url=base, timeout=120, headers={"Authorization": f"Bearer {token}"})
    # Job output goes to scratch so that the benchmark does not grow the home folder other benchmarks list.

    def submit(c: httpx.Client) -> str:
        resp = c.post(f"/compute/{system}/jobs", json={"job": {"working_directory": "/scratch/alice",
                                                              "name": "bench", "script": SCRIPT}})
        if resp.status_code != 201:
            raise RuntimeError(f"submit: {resp.status_code} {resp.text[:200]}")
        return resp.json()["jobId"]

    with client() as c:
        job_id = submit(c)
        history = len(c.get(f"/compute/{system}/jobs", params={"time_window": "7d"}).json()["jobs"])

    def get_job(c: httpx.Client) -> None:
        resp = c.get(f"/compute/{system}/jobs/{job_id}")
        if resp.status_code != 200 or resp.json()["jobs"][0]["jobId"] != job_id:
            raise RuntimeError(f"get: {resp.status_code} {resp.text[:200]}")

    def list_jobs(c: httpx.Client) -> None:
        resp = c.get(f"/compute/{system}/jobs", params={"time_window": "7d"})
        if resp.status_code != 200 or len(resp.json()["jobs"]) < HISTORY:
            raise RuntimeError(f"list: {resp.status_code}, {len(resp.json().get('jobs') or [])} jobs")

    rows = []
    for concurrency in (1, 8, 32):
        rows.append(measure("submit (POST jobs)", submit, client, concurrency, args.requests // 2, warmup=2))
    with client() as c:
        history = len(c.get(f"/compute/{system}/jobs", params={"time_window": "7d"}).json()["jobs"])
        while history < HISTORY:  # make sure the list scenario has its 100+ jobs
            submit(c)
            history += 1
    time.sleep(3)  # let accounting catch up with the burst
    with client() as c:
        history = len(c.get(f"/compute/{system}/jobs", params={"time_window": "7d"}).json()["jobs"])
    for concurrency in (1, 8, 32):
        rows.append(measure("get one job", get_job, client, concurrency, args.requests))
    for concurrency in (1, 8, 32):
        rows.append(measure(f"list jobs ({history} in 7d)", list_jobs, client, concurrency, args.requests // 2))
    save("compute", rows, notes=(
        f"Through the gateway ({base}) as alice, Slurm 22.05 on one local node, "
        f"{args.requests} requests per get row, half that per submit/list row. Submit = sbatch over a "
        "pooled SSH connection; get = one sacct --parsable2 (explicit --format, random delimiter) + "
        "squeue --json concurrently; list = the same with the 7-day window."))
    return 0


if __name__ == "__main__":
    sys.exit(main())
