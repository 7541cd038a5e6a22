"""Benchmark of the utilities service: filesystem ops through the gateway vs. the raw-SSH floor.

Scenarios (as alice): ls of the home folder, ls of a 10,000-entry folder, stat, checksum of a 100 MB
file, upload and download of 1 MiB. Each runs through the gateway (REST, as pyfirecrest calls it) and,
as the floor, the very same command line over warm raw SSH connections (4 connections, as the
service's pool uses at most; no gateway, no gRPC, no certificator). The note reports the gateway's
p50 as a ratio to the floor's.

    .venv/bin/python bench/utilities.py [--quick]

Needs the mesh running (`scripts/mesh.py up`) and root (the fixtures are written directly with
alice's ownership, removed afterwards). Saves bench/results/utilities.md and .json.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import itertools
import math
import os
import pwd
import shutil
import sys
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import Row, measure, save  # noqa: E402
from services.common.config import load_config  # noqa: E402
from services.common.token_verifier import TokenVerifier  # noqa: E402
from services.common.ssh.certificates import CertificateCache  # noqa: E402
from services.common.ssh.pool import execute, open_transport  # noqa: E402
from services.common.oidc_client import fetch_token  # noqa: E402
from services.common.ssh.runner import command_line  # noqa: E402
from services.utilities.commands import checksum, download, ls, stat, upload  # noqa: E402

USER, SECRET = "alice", "alice-secret"
ROOT = f"/scratch/{USER}/bench-utilities"
MANY = f"{ROOT}/many"
BIG = f"{ROOT}/big.bin"
SMALL = f"{ROOT}/small.bin"
MIB = 1 << 20
CONCURRENCIES = (1, 8, 32)
TOKEN_MAX_AGE = 120  # seconds; tokens live 300 s


def prepare() -> bytes:
    """Fixtures written as root with alice's ownership (idempotent); returns the 1 MiB payload."""
    pw = pwd.getpwnam(USER)
    os.makedirs(MANY, exist_ok=True)
    if len(os.listdir(MANY)) != 10000:
        shutil.rmtree(MANY)
        os.mkdir(MANY)
        for i in range(10000):
            open(f"{MANY}/entry {i:05d}.dat", "wb").close()
    if not os.path.exists(BIG) or os.path.getsize(BIG) != 100 * 1000 * 1000:
        with open(BIG, "wb") as f:
            for _ in range(100):
                f.write(os.urandom(1000 * 1000))
    payload = hashlib.sha256(b"bench").digest() * (MIB // 32)
    with open(SMALL, "wb") as f:
        f.write(payload)
    for root, dirs, files in os.walk(ROOT):
        os.lchown(root, pw.pw_uid, pw.pw_gid)
        for name in files:
            os.lchown(os.path.join(root, name), pw.pw_uid, pw.pw_gid)
    return payload


class TokenClient:
    """An httpx client on the gateway whose bearer token is renewed before it gets old."""

    def __init__(self, base_url: str, token_url: str):
        self._token_url = token_url
        self.http = httpx.Client(base_url=base_url, timeout=120)
        self._issued = 0.0

    def __call__(self) -> httpx.Client:
        if time.monotonic() - self._issued > TOKEN_MAX_AGE:
            self.http.headers["Authorization"] = f"Bearer {fetch_token(self._token_url, f'firecrest-{USER}', SECRET)}"
            self._issued = time.monotonic()
        return self.http


def expect(response: httpx.Response, status: int) -> httpx.Response:
    if response.status_code != status:
        raise RuntimeError(f"{response.status_code}: {response.text[:200]}")
    return response


def gateway_scenarios(payload: bytes):
    ops = "/filesystem/local/ops"
    digest = hashlib.sha256(payload).hexdigest()

    def ls_home(c):
        expect(c().get(f"{ops}/ls", params={"path": f"/home/{USER}"}), 200)

    def ls_many(c):
        out = expect(c().get(f"{ops}/ls", params={"path": MANY}), 200).json()["output"]
        if len(out) != 10000:
            raise RuntimeError(f"{len(out)} entries")

    def stat_file(c):
        expect(c().get(f"{ops}/stat", params={"path": SMALL}), 200)

    def checksum_big(c):
        expect(c().get(f"{ops}/checksum", params={"path": BIG}), 200)

    counter = itertools.count()

    def upload(c):
        name = f"up-{next(counter) % 64}.bin"
        expect(c().post(f"{ops}/upload", params={"path": ROOT}, files={"file": (name, payload)}), 204)

    def download(c):
        body = expect(c().get(f"{ops}/download", params={"path": SMALL}), 200).content
        if hashlib.sha256(body).hexdigest() != digest:
            raise RuntimeError("download differs")
    return {"ls home": ls_home, "ls 10k entries": ls_many, "stat": stat_file,
            "checksum 100 MB": checksum_big, "upload 1 MiB": upload, "download 1 MiB": download}


def floor_lines(system) -> dict[str, tuple[str, bool]]:
    """The service's own command lines per scenario, and whether the scenario sends the payload."""
    line = lambda *argvs: command_line(system.ssh.timeouts.command_execution, argvs)  # noqa: E731
    return {
        "ls home": (line(*ls.command(f"/home/{USER}")), False),
        "ls 10k entries": (line(*ls.command(MANY)), False),
        "stat": (line(stat.command(SMALL)), False),
        "checksum 100 MB": (line(checksum.command(BIG)), False),
        "upload 1 MiB": (line(upload.command(f"{ROOT}/up-floor.bin", b"", 0)), True),
        "download 1 MiB": (line(download.command(SMALL, system.max_ops_file_size)), False),
    }


class Transports:
    """Warm raw SSH connections for the floor: 4 shared, as the service's pool uses per user."""

    def __init__(self, config, system, count: int = 4):
        token = fetch_token(config.identity.token_url, f"firecrest-{USER}", SECRET)

        async def certificate():
            cache = CertificateCache.for_service(config, "utilities")
            try:
                return await cache.session_certificate(TokenVerifier(config.identity).verify(token))
            finally:
                await cache.close()
        cert = asyncio.run(certificate())
        self.items = [open_transport(system, USER, cert) for _ in range(count)]
        self._next = itertools.count()
        self._lock = threading.Lock()

    def pick(self):
        with self._lock:
            return self.items[next(self._next) % len(self.items)]

    def close(self):
        for t in self.items:
            t.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests (smoke run)")
    args = parser.parse_args()
    config = load_config()
    system = config.system("local")
    payload = prepare()
    base_url = f"http://{config.gateway.listen}"
    counts = {"ls home": 200, "ls 10k entries": 40, "stat": 200, "checksum 100 MB": 24,
              "upload 1 MiB": 100, "download 1 MiB": 100}
    scale = 0.25 if args.quick else 1.0

    gateway = gateway_scenarios(payload)
    lines = floor_lines(system)
    transports = Transports(config, system)
    rows: list[Row] = []
    ratios: list[str] = []
    try:
        for name, request in gateway.items():
            line, sends = lines[name]

            def floor_request(transport, _line=line, _sends=sends):
                result = execute(transport, _line, payload if _sends else None, 60, 64 * MIB)
                if result.exit_status != 0:
                    raise RuntimeError(result.error_text())
            for c in CONCURRENCIES:
                n = max(c, math.ceil(counts[name] * scale * (2 if c > 1 else 1)))
                g = measure(f"{name} (gateway)", request,
                            lambda: TokenClient(base_url, config.identity.token_url), c, n)
                f = measure(f"{name} (raw SSH floor)", floor_request, transports.pick, c, n)
                rows += [g, f]
                ratios.append(f"| {name} | {c} | {g.p50_ms} | {f.p50_ms} | "
                              f"{g.p50_ms / f.p50_ms:.2f} | {g.req_per_s / f.req_per_s:.2f} |")
                print(f"{name} c={c}: gateway p50 {g.p50_ms} ms, floor p50 {f.p50_ms} ms")
    finally:
        transports.close()
        shutil.rmtree(ROOT, ignore_errors=True)
    notes = "\n".join([
        "Utilities ops as alice on the local system. *gateway*: REST through Envoy (JWT, transcoding, Lua)"
        " → utilities service (gRPC) → pooled SSH (≤4 connections × 8 channels) → the command. *raw SSH"
        " floor*: the same command line (same `timeout` wrapper, same `find`/`stat`/`sha256sum`/`head`/`sh"
        " -c cat`) on 4 warm paramiko connections, no gateway or service. Ratio = gateway / floor"
        " (p50 latency: >1 is overhead; req/s: <1 is overhead).",
        "",
        "| scenario | concurrency | gateway p50 ms | floor p50 ms | p50 ratio | req/s ratio |",
        "|---|---:|---:|---:|---:|---:|",
        *ratios,
    ])
    save("utilities", rows, notes)


if __name__ == "__main__":
    main()
