"""Starts and stops the mesh's processes on one machine (the embedded default).

    python scripts/mesh.py up      start what is not running, wait until every part is healthy
    python scripts/mesh.py down    stop everything this script started
    python scripts/mesh.py status  one line per process
    python scripts/mesh.py stop NAME   stop one process (fault tests; `up` starts it again)

Called by `make up` / `make down` after the local HPC system is up (cluster/up.sh). Each process
writes its log to state/logs/<name>.log and its pid to state/run/<name>.pid; `up` is idempotent.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from gateway import render as gateway_render
from services.common import mesh_pki, mesh_tls
from services.common.config import REPO_ROOT, Config, load_config

PYTHON = sys.executable
ENVOY_BASE_ID = 41  # distinct from other Envoys a developer may run on this machine
# Envoy worker threads. Measured on the 2-core reference machine (`/status/systems` at c=32, wrk, 3
# interleaved rounds, bench/results/status.md): 2 workers gave about the same req/s as 1 but a p99 of
# 80-114 ms in every round, 1 worker 28 and 39 ms (273 ms in a round disturbed by other load): the
# second worker competes for the cores with the services. Each worker has its own connections to every
# service, JWT cache and Lua VM.
ENVOY_WORKERS = 1


@dataclass
class Process:
    name: str
    argv: list[str]
    ready: callable  # () -> bool


def grpc_serving(config: Config, name: str) -> bool:
    """gRPC health of the mesh component `name`, asked over mutual TLS as the launcher."""
    try:
        with mesh_tls.channel(config, mesh_pki.LAUNCHER, name) as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=1)
            return reply.status == health_pb2.HealthCheckResponse.SERVING
    except grpc.RpcError:
        return False


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


def processes(config: Config) -> list[Process]:
    """What runs, in start order: identity provider, certificator, services, gateway."""
    procs = []
    if config.identity.embedded_provider:
        procs.append(Process("idp", [PYTHON, "-m", "services.idp"],
                             lambda: http_ok(config.identity.issuer + "/.well-known/openid-configuration")))
    for name, address in config.services.items():
        if not (REPO_ROOT / "services" / name / "__main__.py").exists():
            continue  # configured but not implemented yet
        procs.append(Process(name, [PYTHON, "-m", f"services.{name}"],
                             lambda n=name: grpc_serving(config, n)))
    envoy_config = config.state("envoy", "envoy.yaml")
    gateway = config.gateway
    procs.append(Process("envoy", [PYTHON, str(REPO_ROOT / "scripts" / "keep_parent.py"),
                                   str(Path(PYTHON).parent / "envoy"), "-c", str(envoy_config),
                                   "--base-id", str(ENVOY_BASE_ID), "--concurrency", str(ENVOY_WORKERS),
                                   "--file-flush-interval-msec", "1000",  # access log within 1 s
                                   "--log-level", "warn"],
                         lambda: http_ok(f"http://{gateway.listen}/status/liveness/")))
    return procs


def pid_file(config: Config, name: str) -> Path:
    return config.state("run", f"{name}.pid")


def running_pid(config: Config, name: str) -> int | None:
    try:
        pid = int(pid_file(config, name).read_text())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def render_gateway(config: Config) -> bool:
    """Renders the gateway config; True when it differs from what the running gateway loaded."""
    path = gateway_render.render(config, config.state("envoy", "envoy.yaml"))
    stamp = config.state("run", "envoy.inputs")
    # The transcoder reads the descriptor set only at start: a new one also needs a restart; so do
    # new command-line flags.
    argv = next(proc.argv for proc in processes(config) if proc.name == "envoy")
    inputs = hashlib.sha256(path.read_bytes() + gateway_render.DESCRIPTOR_SET.read_bytes()
                            + path.with_name("firecrest.lua").read_bytes()
                            + json.dumps(argv).encode()).hexdigest()
    changed = not stamp.exists() or stamp.read_text() != inputs
    stamp.write_text(inputs)
    return changed


def stop(config: Config, name: str) -> None:
    pid = running_pid(config, name)
    if pid is not None:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and running_pid(config, name):
            time.sleep(0.1)
        if running_pid(config, name):
            os.kill(pid, signal.SIGKILL)
        print(f"stopped {name}")
    pid_file(config, name).unlink(missing_ok=True)


def wait_ready(config: Config, proc: Process, timeout: float = 60) -> None:
    log = config.state("logs", f"{proc.name}.log")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.ready():
            return
        if running_pid(config, proc.name) is None:
            tail = log.read_text(errors="replace").splitlines()[-15:] if log.exists() else []
            raise SystemExit(f"{proc.name} exited during start-up; last lines of {log}:\n" + "\n".join(tail))
        time.sleep(0.2)
    raise SystemExit(f"{proc.name} did not become healthy in {timeout:.0f} s; see {log}")


def ensure_mesh_pki(config: Config) -> None:
    """The mesh CA and component certificates: generated (embedded default) or checked (site PKI).
    Processes whose certificate was renewed are restarted so that they load it."""
    if not config.mesh_tls.generate:
        if missing := mesh_pki.missing_files(config):
            raise SystemExit("mesh_tls.generate is false but these files are missing: "
                             + ", ".join(str(m) for m in missing))
        return
    renewed = mesh_pki.ensure(config)
    if renewed:
        print(f"mesh PKI: wrote {', '.join(renewed)} in {config.mesh_tls.dir}")
    for name in (["envoy", *config.services] if "ca" in renewed else renewed):
        if running_pid(config, name):
            stop(config, name)


def up(config: Config) -> None:
    for folder in ("run", "logs"):
        config.state(folder).mkdir(parents=True, exist_ok=True)
    ensure_mesh_pki(config)
    if render_gateway(config):
        stop(config, "envoy")  # Envoy does not reload a changed bootstrap file by itself
    for proc in processes(config):
        pid = running_pid(config, proc.name)
        if pid is None:
            log = open(config.state("logs", f"{proc.name}.log"), "ab")
            child = subprocess.Popen(proc.argv, cwd=REPO_ROOT, stdin=subprocess.DEVNULL, stdout=log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
            pid_file(config, proc.name).write_text(str(child.pid))
            print(f"started {proc.name} (pid {child.pid})")
        wait_ready(config, proc)
    gw = config.gateway.listen
    print(json.dumps({"gateway": f"http://{gw}", "admin": f"http://{config.gateway.admin}",
                      "token_url": config.identity.token_url,
                      "systems": [s.name for s in config.systems]}))


def down(config: Config) -> None:
    for proc in reversed(processes(config)):
        stop(config, proc.name)


def status(config: Config) -> None:
    for proc in processes(config):
        pid = running_pid(config, proc.name)
        state = "healthy" if pid and proc.ready() else ("running, not ready" if pid else "stopped")
        print(f"{proc.name:14} {state}{f' (pid {pid})' if pid else ''}")


def main() -> None:
    command = sys.argv[1] if len(sys.argv) > 1 else "up"
    actions = {"up": up, "down": down, "status": status,
               "stop": lambda config: stop(config, sys.argv[2])}
    if command not in actions or (command == "stop" and len(sys.argv) != 3):
        raise SystemExit(__doc__)
    config = load_config()
    config.state("run").mkdir(parents=True, exist_ok=True)
    # One launcher at a time: concurrent `up`s would start two copies of a process.
    with open(config.state("run", "launcher.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        actions[command](config)


if __name__ == "__main__":
    main()
