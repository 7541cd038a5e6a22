"""Starts and stops the mesh's processes on one machine (the embedded default).

    python scripts/mesh.py up      start what is not running, wait until every part is healthy
    python scripts/mesh.py down    stop everything this script started
    python scripts/mesh.py status  one line per process
    python scripts/mesh.py stop NAME   stop one process (fault tests; `up` starts it again)

Called by `make up` / `make down` after the local HPC system is up (cluster/up.sh). The processes
run under scripts/process_supervisor.py (started by `up`, stopped by `down`), which restarts one that
dies with backoff; `stop NAME` tells it to stop NAME and not restart it until the next `up`. Each
process writes its log to state/logs/<name>.log and its pid to state/run/<name>.pid; `up` is
idempotent.
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

import process_supervisor as supervisor
import reserved_ports
from gateway import api_descriptor as gateway_api
from gateway import render as gateway_render
from monitoring import prometheus as prometheus_server
from services.common import mesh_pki, mesh_tls
from services.common.config import REPO_ROOT, Config, load_config
from services.storage import s3_server

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
    """What runs, in start order: identity provider, embedded S3 server, certificator, services, gateway."""
    procs = []
    if config.identity.embedded_provider:
        procs.append(Process("idp", [PYTHON, "-m", "services.idp"],
                             lambda: http_ok(config.identity.issuer + "/.well-known/openid-configuration")))
    if (s3 := s3_server.configured(config)) is not None:  # storage's staging area (SeaweedFS)
        procs.append(Process("s3", s3_server.argv(s3.embedded), lambda: s3_server.ready(s3.embedded)))
    for name, address in config.services.items():
        if not (REPO_ROOT / "services" / name / "__main__.py").exists():
            continue  # configured but not implemented yet
        procs.append(Process(name, [PYTHON, "-m", f"services.{name}"],
                             lambda n=name: grpc_serving(config, n)))
    envoy_config = config.state("envoy", "envoy.yaml")
    gateway = config.gateway
    # Envoy's parent is the supervisor, which outlives it (Envoy ends itself when its parent exits).
    procs.append(Process("envoy", [str(Path(PYTHON).parent / "envoy"), "-c", str(envoy_config),
                                   "--base-id", str(ENVOY_BASE_ID), "--concurrency", str(ENVOY_WORKERS),
                                   "--file-flush-interval-msec", "1000",  # access log within 1 s
                                   "--log-level", "warn"],
                         lambda: http_ok(f"http://{gateway.listen}/status/liveness/")))
    if config.metrics.prometheus:  # scrapes the exporters and Envoy (monitoring/prometheus.py)
        procs.append(Process("prometheus", prometheus_server.argv(config),
                             lambda: http_ok(f"http://{config.metrics.prometheus}/-/ready")))
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
    inputs = hashlib.sha256(path.read_bytes() + gateway_api.DESCRIPTOR_SET.read_bytes()
                            + path.with_name("firecrest.lua").read_bytes()
                            + json.dumps(argv).encode()).hexdigest()
    changed = not stamp.exists() or stamp.read_text() != inputs
    stamp.write_text(inputs)
    return changed


def render_prometheus(config: Config) -> bool:
    """Renders Prometheus' configuration; True when it, its rules or its command line differ from
    what the running server loaded."""
    if not config.metrics.prometheus:
        return False
    path = prometheus_server.render(config)
    stamp = config.state("run", "prometheus.inputs")
    inputs = hashlib.sha256(path.read_bytes() + prometheus_server.RULES.read_bytes()
                            + json.dumps(prometheus_server.argv(config)).encode()).hexdigest()
    changed = not stamp.exists() or stamp.read_text() != inputs
    stamp.write_text(inputs)
    return changed


def kill_by_pid_file(config: Config, name: str) -> None:
    """Stops a process that no running supervisor owns (left by a supervisor that died)."""
    pid = running_pid(config, name)
    if pid is not None:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + supervisor.STOP_TIMEOUT
        while time.monotonic() < deadline and running_pid(config, name):
            time.sleep(0.1)
        if running_pid(config, name):
            os.kill(pid, signal.SIGKILL)
        print(f"stopped {name} (unsupervised, pid {pid})")
    pid_file(config, name).unlink(missing_ok=True)


def supervisor_pid(config: Config) -> int | None:
    pid = running_pid(config, "supervisor")
    try:
        return pid if pid and b"process_supervisor" in Path(f"/proc/{pid}/cmdline").read_bytes() else None
    except OSError:
        return None


def supervised(config: Config) -> dict:
    """The supervisor's last report: name → state, want, pid, started_at, restarts, failures, ..."""
    return supervisor.read_json(config.state("run", "supervisor", "status.json")).get("programs", {})


def ensure_supervisor(config: Config) -> int:
    """The supervisor's pid; starts it (after stopping what a dead one left running) if needed."""
    if pid := supervisor_pid(config):
        return pid
    for proc in reversed(processes(config)):
        kill_by_pid_file(config, proc.name)
    folder = config.state("run", "supervisor")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "programs.json").unlink(missing_ok=True)  # a new supervisor starts with nothing wanted
    (folder / "status.json").unlink(missing_ok=True)
    log = open(config.state("logs", "supervisor.log"), "ab")
    child = subprocess.Popen([PYTHON, str(REPO_ROOT / "scripts" / "process_supervisor.py"),
                              str(config.state("run")), str(config.state("logs"))],
                             cwd=REPO_ROOT, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                             start_new_session=True)
    await_supervisor(config, lambda programs: supervisor.read_json(folder / "status.json"), "start")
    print(f"started supervisor (pid {child.pid})")
    return child.pid


def await_supervisor(config: Config, done, what: str, timeout: float = 30) -> dict:
    """Polls the supervisor's report until `done(programs)` is truthy."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        programs = supervised(config)
        if value := done(programs):
            return value
        if supervisor_pid(config) is None and what != "start":
            raise SystemExit(f"the supervisor is not running; see {config.state('logs', 'supervisor.log')}")
        time.sleep(0.1)
    raise SystemExit(f"the supervisor did not {what} in {timeout:.0f} s; see {config.state('logs', 'supervisor.log')}")


def want(config: Config, name: str, wanted: str) -> dict:
    """Tells the supervisor to run (`up`) or stop (`down`) `name`; returns its report once it did."""
    pid = ensure_supervisor(config)
    path = config.state("run", "supervisor", "programs.json")
    programs = supervisor.read_json(path).get("programs", {})
    argv = next((proc.argv for proc in processes(config) if proc.name == name), None)
    if argv is None:
        argv = programs.get(name, {}).get("argv")
    if argv is None:
        raise SystemExit(f"no process named {name}")
    if programs.get(name) != {"argv": argv, "want": wanted}:
        programs[name] = {"argv": argv, "want": wanted}
        supervisor.write_json(path, {"programs": programs})
        os.kill(pid, signal.SIGHUP)

    def reached(programs: dict) -> dict | None:
        report = programs.get(name)
        if not report or report["want"] != wanted:
            return None
        if wanted == "down":
            return report if report["state"] == "stopped" else None
        return report if report["state"] in ("running", "backoff") else None
    return await_supervisor(config, reached, f"{'start' if wanted == 'up' else 'stop'} {name}")


def stop(config: Config, name: str) -> None:
    if supervisor_pid(config) is None:
        kill_by_pid_file(config, name)
        return
    was = supervised(config).get(name, {}).get("state")
    want(config, name, "down")
    if was in ("running", "backoff", "stopping"):
        print(f"stopped {name}")


def wait_ready(config: Config, proc: Process, timeout: float = 60) -> None:
    log = config.state("logs", f"{proc.name}.log")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.ready():
            return
        if supervised(config).get(proc.name, {}).get("failures", 0) >= 3:  # dies at every start
            tail = log.read_text(errors="replace").splitlines()[-15:] if log.exists() else []
            raise SystemExit(f"{proc.name} keeps exiting during start-up (the supervisor retries it with "
                             f"backoff; `mesh.py stop {proc.name}` stops that); last lines of {log}:\n"
                             + "\n".join(tail))
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
    if (warning := reserved_ports.reserve(config)) is not None:
        print(warning, file=sys.stderr)
    ensure_supervisor(config)
    ensure_mesh_pki(config)
    if (s3 := s3_server.configured(config)) is not None and s3_server.prepare(s3) and running_pid(config, "s3"):
        stop(config, "s3")  # new keys or certificates: SeaweedFS reads them at start only
    if render_gateway(config):
        stop(config, "envoy")  # Envoy does not reload a changed bootstrap file by itself
    if render_prometheus(config):
        stop(config, "prometheus")
    failed = []
    for proc in processes(config):  # in order, each healthy (or given up on) before the next starts
        before = supervised(config).get(proc.name, {})
        if before.get("state") == "backoff":
            want(config, proc.name, "down")  # asked for now: started at once, its backoff forgotten
        report = want(config, proc.name, "up")
        if report.get("pid") and report["pid"] != before.get("pid"):
            print(f"started {proc.name} (pid {report['pid']})")
        try:
            wait_ready(config, proc)
        except SystemExit as exc:  # the others still start: one broken process does not stop the mesh
            print(exc, file=sys.stderr)
            failed.append(proc.name)
    if failed:
        raise SystemExit(f"not healthy: {', '.join(failed)} (see above)")
    gw = config.gateway.listen
    print(json.dumps({"gateway": f"http://{gw}", "admin": f"http://{config.gateway.admin}",
                      **({"prometheus": f"http://{config.metrics.prometheus}"} if config.metrics.prometheus else {}),
                      "token_url": config.identity.token_url,
                      "systems": [s.name for s in config.systems]}))


def down(config: Config) -> None:
    """Stops the supervisor, which stops every process first; then anything left unsupervised."""
    if pid := supervisor_pid(config):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + supervisor.STOP_TIMEOUT + 10
        while time.monotonic() < deadline and supervisor_pid(config):
            time.sleep(0.1)
        if supervisor_pid(config):
            os.kill(pid, signal.SIGKILL)
        print(f"stopped the supervisor (pid {pid}) and its processes")
    for proc in reversed(processes(config)):
        kill_by_pid_file(config, proc.name)
    pid_file(config, "supervisor").unlink(missing_ok=True)


def duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def status(config: Config) -> None:
    """One line per process: state, pid, uptime and restarts (starts after it died by itself)."""
    pid = supervisor_pid(config)
    state = f"running (pid {pid})" if pid else "not running: nothing restarts a process that dies"
    print(f"{'supervisor':14} {state}")
    reports = supervised(config) if pid else {}
    for proc in processes(config):
        report = reports.get(proc.name, {})
        pid = report.get("pid") if pid else running_pid(config, proc.name)
        if report.get("state") == "backoff":
            state = f"exited ({report['last_exit']}), restart in {report['restart_in']} s"
        elif report.get("state") == "stopping":
            state = "stopping"
        elif pid:
            state = "healthy" if proc.ready() else "running, not ready"
        else:
            state = "stopped"
        details = [f"pid {pid}"] if pid else []
        if pid and report.get("started_at"):
            details.append(f"up {duration(time.time() - report['started_at'])}")
        if report:
            details.append(f"restarts {report['restarts']}")
        suffix = f" ({', '.join(details)})" if details else ""
        print(f"{proc.name:14} {state}{suffix}")


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
