"""Where a REST call's time goes at concurrency 1: the live gateway beside the floor of its parts.

Issue 8 asks for `GET /status/systems` at c=1 in ≤ 1.1 ms p50 (FirecREST v2's, one uvicorn process)
and for file operations within 1.5 ms of their SSH floor. Our path has two hops (Envoy, then a Python
gRPC service), so this bench measures what those two hops cost with nothing of ours in them, and what
each of our additions costs on top, on the same machine, in interleaved rounds:

- *bare stack*: Envoy with only the transcoder and the router (plaintext HTTP/2 upstream, one worker,
  as ours) in front of a bare `grpc.aio` server (a process of its own) whose GetLiveness returns a
  constant: `GET /status/liveness`. The floor of "Envoy + Python gRPC" for any REST call.
- *gateway, no Lua*: the live gateway's configuration on a side port with its Lua filter removed
  (every other filter, mutual TLS and the real status service as they are): `GET /status/systems`.
- *gateway*: the live gateway itself (Lua shaping, JWT, rate limits, access log, mutual TLS, the status
  service verifying the token again): `/status/liveness` (public: no token checks) and `/status/systems`.

Each case: `wrk -t1 -c1` for --duration seconds after a 1 s warm-up, --rounds times; p50/p99 from the
merged latency histograms, and the CPU per request of that case's Envoy worker (from /proc). Saves
bench/results/gateway_floor.md and .json. Needs the mesh running (`make up`) and wrk. Nothing here
asserts on time.

    .venv/bin/python bench/gateway_floor.py [--duration 5] [--rounds 3] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.harness import RESULTS, Row, stat_cpu_seconds, table  # noqa: E402
from bench.zero_trust import WRK_SCRIPT, Tokens, summarize, wrk  # noqa: E402
from services.common.config import load_config  # noqa: E402

ENVOY = ROOT / ".venv" / "bin" / "envoy"
SIDE_BASE_IDS = (97, 98)  # neither the mesh's Envoy (41) nor each other's shared memory
TARGET_MS = 1.1  # issue 8, part 4: /status/systems at c=1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_bare(port: int) -> None:
    """The bare gRPC server: StatusService.GetLiveness returning a constant, nothing else."""
    import grpc
    from gen.python.firecrest_mesh.status.v1 import status_pb2, status_pb2_grpc

    class Liveness(status_pb2_grpc.StatusServiceServicer):
        async def GetLiveness(self, request, context):
            return status_pb2.GetLivenessResponse()

    async def serve() -> None:
        server = grpc.aio.server()
        status_pb2_grpc.add_StatusServiceServicer_to_server(Liveness(), server)
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        await server.wait_for_termination()
    asyncio.run(serve())


def bare_envoy_config(listen: int, admin: int, upstream: int) -> dict:
    """Listener → grpc_json_transcoder → router → the bare server over plaintext HTTP/2."""
    return {
        "static_resources": {
            "listeners": [{"address": {"socket_address": {"address": "127.0.0.1", "port_value": listen}},
                           "filter_chains": [{"filters": [{
                               "name": "envoy.filters.network.http_connection_manager",
                               "typed_config": {
                                   "@type": "type.googleapis.com/envoy.extensions.filters.network."
                                            "http_connection_manager.v3.HttpConnectionManager",
                                   "stat_prefix": "bare", "codec_type": "AUTO",
                                   "route_config": {"virtual_hosts": [{
                                       "name": "bare", "domains": ["*"],
                                       "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "bare"}}]}]},
                                   "http_filters": [
                                       {"name": "envoy.filters.http.grpc_json_transcoder", "typed_config": {
                                           "@type": "type.googleapis.com/envoy.extensions.filters.http."
                                                    "grpc_json_transcoder.v3.GrpcJsonTranscoder",
                                           "proto_descriptor": str(ROOT / "gen" / "envoy" / "api_descriptor.pb"),
                                           "services": ["firecrest_mesh.status.v1.StatusService"]}},
                                       {"name": "envoy.filters.http.router", "typed_config": {
                                           "@type": "type.googleapis.com/envoy.extensions.filters.http."
                                                    "router.v3.Router"}}]}}]}]}],
            "clusters": [{"name": "bare", "type": "STATIC", "connect_timeout": "1s",
                          "typed_extension_protocol_options": {
                              "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                                  "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3."
                                           "HttpProtocolOptions",
                                  "explicit_http_config": {"http2_protocol_options": {}}}},
                          "load_assignment": {"cluster_name": "bare", "endpoints": [{"lb_endpoints": [{
                              "endpoint": {"address": {"socket_address": {"address": "127.0.0.1",
                                                                          "port_value": upstream}}}}]}]}}]},
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin}}}}


def without_lua(live: dict, listen: int, admin: int) -> dict:
    """The live gateway's configuration on other ports, its Lua filter removed."""
    config = copy.deepcopy(live)
    listener = config["static_resources"]["listeners"][0]
    listener["address"]["socket_address"]["port_value"] = listen
    manager = listener["filter_chains"][0]["filters"][0]["typed_config"]
    manager["http_filters"] = [f for f in manager["http_filters"] if f["name"] != "envoy.filters.http.lua"]
    config["admin"]["address"]["socket_address"]["port_value"] = admin
    return config


def start_envoy(config: dict, path: Path, base_id: int) -> subprocess.Popen:
    path.write_text(yaml.safe_dump(config))
    return subprocess.Popen([str(ENVOY), "-c", str(path), "--base-id", str(base_id), "--concurrency", "1",
                             "--log-level", "error"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def worker_cpu_seconds(pid: int) -> float:
    """CPU (user + system) of Envoy's one worker thread, seconds: the thread that serves requests."""
    total = 0.0
    for task in Path(f"/proc/{pid}/task").iterdir():
        if (task / "comm").read_text().strip().startswith("wrk:worker"):
            total += stat_cpu_seconds(task / "stat")
    return total


def wait_listening(port: int, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5, help="seconds per case and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="one round of 2 s cases (smoke run)")
    parser.add_argument("--serve-bare", type=int, help=argparse.SUPPRESS)  # the bare server's own process
    args, _ = parser.parse_known_args()
    if args.serve_bare:
        serve_bare(args.serve_bare)
        return
    if args.quick:
        args.duration, args.rounds = 2, 1
    config = load_config()
    work = config.state("bench")
    work.mkdir(parents=True, exist_ok=True)
    script = work / "gateway_floor_wrk.lua"
    script.write_text(WRK_SCRIPT)
    live_pid = int(config.state("run", "envoy.pid").read_text().split()[0])
    live = yaml.safe_load(config.state("envoy", "envoy.yaml").read_text())

    bare_grpc, bare_http, no_lua_http = free_port(), free_port(), free_port()
    processes = [subprocess.Popen([sys.executable, __file__, "--serve-bare", str(bare_grpc)])]
    try:
        processes.append(start_envoy(bare_envoy_config(bare_http, free_port(), bare_grpc),
                                     work / "gateway_floor_bare.yaml", SIDE_BASE_IDS[0]))
        processes.append(start_envoy(without_lua(live, no_lua_http, free_port()),
                                     work / "gateway_floor_no_lua.yaml", SIDE_BASE_IDS[1]))
        for port in (bare_grpc, bare_http, no_lua_http):
            wait_listening(port)
        gateway = f"http://{config.gateway.listen}"
        cases = [  # (name, url, Envoy pid)
            ("bare stack: /status/liveness", f"http://127.0.0.1:{bare_http}/status/liveness", processes[1].pid),
            ("gateway without Lua: /status/systems", f"http://127.0.0.1:{no_lua_http}/status/systems",
             processes[2].pid),
            ("gateway: /status/liveness (public)", f"{gateway}/status/liveness", live_pid),
            ("gateway: /status/systems", f"{gateway}/status/systems", live_pid),
        ]
        tokens = Tokens(config.identity.token_url)
        samples = {name: [] for name, _, _ in cases}
        cpu = {name: 0.0 for name, _, _ in cases}
        for _ in range(args.rounds):
            for name, url, pid in cases:
                wrk(url, tokens.get(), 1, 1, script)  # warm-up
                before = worker_cpu_seconds(pid)
                sample = wrk(url, tokens.get(), 1, args.duration, script)
                cpu[name] += worker_cpu_seconds(pid) - before
                samples[name].append(sample)
                print(f"  {name}: {sample.requests} requests", flush=True)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=10)

    rows: list[Row] = [summarize(name, 1, samples[name]) for name, _, _ in cases]
    envoy_us = {name: round(cpu[name] * 1e6 / max(1, sum(s.requests for s in samples[name])))
                for name, _, _ in cases}
    lines = ["# gateway floor", "", time.strftime("%Y-%m-%d %H:%M:%S %Z") + f"; load average at the end "
             f"{', '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores", "",
             __doc__.split("\n\n")[1].replace("\n", " "), "",
             f"`wrk -t1 -c1`, {args.rounds} × {args.duration:g} s per case, interleaved. Issue 8's target for "
             f"/status/systems at c=1: p50 ≤ {TARGET_MS} ms.", "",
             "| case | p50 ms | p99 ms | req/s | errors | Envoy worker CPU µs/request |",
             "|---|---:|---:|---:|---:|---:|"]
    lines += [f"| {r.scenario} | {r.p50_ms} | {r.p99_ms} | {r.req_per_s} | {r.errors} | {envoy_us[r.scenario]} |"
              for r in rows]
    text = "\n".join(lines) + "\n\n" + table(rows) + "\n"
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "gateway_floor.md").write_text(text)
    (RESULTS / "gateway_floor.json").write_text(json.dumps(
        {"rows": [r.__dict__ for r in rows], "envoy_worker_cpu_us": envoy_us,
         "duration_s": args.duration, "rounds": args.rounds}, indent=1))


if __name__ == "__main__":
    main()
