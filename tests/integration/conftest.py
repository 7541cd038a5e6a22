"""Fixtures of the integration tests beyond the shared stack's (tests/conftest.py).

`redis_tasks_deployment`: a second, self-contained tasks deployment beside the running mesh, for the
scale-out form of issue 10 ("two tasks-service replicas behind Envoy sharing Redis"):

    client ──► Envoy (own port) ──/tasks──────► tasks replica 0 ─┐
                                │  (round-robin)  tasks replica 1 ─┴─► redis-server (own port, tmp folder)
                                ├─/compute─────► compute (own port) ──► tasks replicas (round-robin)
                                └─everything else ─► the running mesh's status, utilities, storage

Every process is real and started here on free loopback ports: Debian's redis-server, two
`python -m services.tasks` (FIRECREST_MESH_REPLICA 0 and 1), one `python -m services.compute`, and an
Envoy rendered by gateway/render.py, all from one configuration that `extends:` the session's (so the
identity provider, certificator, cluster and mesh PKI are the running mesh's, and each process uses
its component's existing mesh certificate). Compute is a process of its own because compute writes a
job's task to the tasks service of ITS configuration: the mesh's compute would record it in the
SQLite store, where the Redis replicas would never see it; this one creates and follows its tasks
through both replicas. The processes are stopped, and their folder's logs kept by pytest's tmp_path,
when the session ends.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import yaml

from services.common.config import REPLICA_ENV, REPO_ROOT, Config, load_config
from tests.clients import bearer_clients

ENVOY = Path(sys.executable).parent / "envoy"
HEALTH_PORT_OFFSET = 1000  # services/common/health_listener.py: a service's health port is port + 1000
START_SECONDS = 90  # bound on start-up (a busy shared machine), never an assertion on time


def _free_port(reserved: set[int], with_health_port: bool = False) -> int:
    """A free loopback port (and its health port free as well) not handed out before."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        ports = {port, port + HEALTH_PORT_OFFSET} if with_health_port else {port}
        if max(ports) < 65536 and not ports & reserved and all(_bindable(p) for p in ports):
            reserved |= ports
            return port


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


@dataclass
class RedisTasksDeployment:
    """The second deployment: its gateway's URL, configuration and processes."""
    url: str
    config: Config
    folder: Path
    redis_url: str
    tasks_exporters: list[str]  # /metrics URL of each tasks replica, in replica order
    admin: str = ""  # its Envoy's admin address
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    commands: dict[str, tuple[list[str], dict]] = field(default_factory=dict)

    def log(self, name: str) -> str:
        path = self.folder / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self, name: str, sig: int = signal.SIGTERM) -> None:
        """Stops the process `name` of this deployment (`tasks-0`, `tasks-1`, `compute`, …)."""
        proc = self.processes[name]
        if proc.poll() is None:
            proc.send_signal(sig)
        proc.wait(15)

    def start(self, name: str) -> None:
        """Starts `name` again with its command, and waits until Envoy finds every service endpoint healthy."""
        assert self.processes[name].poll() is not None, f"{name} is running"
        _start(self, name, *self.commands[name])
        self.wait_healthy()

    def wait_healthy(self) -> None:
        for cluster in ("tasks", "compute"):
            want = {str(a) for a in self.config.addresses(cluster)}
            _wait(self, f"{cluster} healthy in Envoy", lambda c=cluster, w=want: _healthy_endpoints(self.admin, c) == w)


def _start(deployment: RedisTasksDeployment, name: str, argv: list[str], env: dict | None = None) -> None:
    deployment.commands[name] = (argv, env or {})
    log = open(deployment.folder / f"{name}.log", "ab")
    deployment.processes[name] = subprocess.Popen(argv, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT,
                                                  env={**os.environ, **(env or {})}, start_new_session=True)
    log.close()


def _wait(deployment: RedisTasksDeployment, what: str, ready) -> None:
    deadline = time.monotonic() + START_SECONDS
    while True:
        try:
            if ready():
                return
        except (OSError, httpx.HTTPError):
            pass
        for name, proc in deployment.processes.items():
            assert proc.poll() is None, f"{name} exited while waiting for {what}:\n{deployment.log(name)[-3000:]}"
        assert time.monotonic() < deadline, f"{what}: not ready after {START_SECONDS} s"
        time.sleep(0.2)


def _healthy_endpoints(admin: str, cluster: str) -> set[str]:
    """The endpoints of `cluster` that Envoy's health checks found healthy (admin /clusters)."""
    text = httpx.get(f"http://{admin}/clusters", timeout=5).text
    return {line.split("::")[1] for line in text.splitlines()
            if line.startswith(f"{cluster}::") and line.endswith("::health_flags::healthy")}


def _stop(processes: dict[str, subprocess.Popen]) -> None:
    """SIGTERM every process this fixture started (in reverse start order), SIGKILL what is left."""
    for proc in reversed(processes.values()):
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in reversed(processes.values()):
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@pytest.fixture(scope="session")
def redis_tasks_deployment(config, gateway_url, token, tmp_path_factory):
    """Starts redis-server, two tasks replicas on it, a compute of their own and an Envoy in front;
    yields a `RedisTasksDeployment`; stops them all at the end of the session."""
    server = shutil.which("redis-server")
    assert server, "redis-server is installed by cluster/install-packages.sh (make up)"
    assert ENVOY.exists(), f"{ENVOY} missing (make install)"
    folder = tmp_path_factory.mktemp("redis-tasks")
    reserved: set[int] = {a.port for addrs in config.replicas.values() for a in addrs}
    redis_port = _free_port(reserved)
    listen, admin = _free_port(reserved), _free_port(reserved)
    tasks_ports = [_free_port(reserved, with_health_port=True) for _ in range(2)]
    compute_port = _free_port(reserved, with_health_port=True)
    exporters = {"compute": f"127.0.0.1:{_free_port(reserved)}",
                 "tasks": [f"127.0.0.1:{_free_port(reserved)}" for _ in tasks_ports]}
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    (folder / "redis").mkdir()
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump({
        "extends": str(config.path),
        "state_dir": str(config.state_dir),
        "gateway": {"listen": f"127.0.0.1:{listen}", "admin": f"127.0.0.1:{admin}"},
        "services": {"compute": f"127.0.0.1:{compute_port}", "tasks": [f"127.0.0.1:{p}" for p in tasks_ports]},
        "tasks": {"store": "redis", "redis_url": redis_url},
        "metrics": {"exporters": exporters},
    }, sort_keys=False))
    deployment = RedisTasksDeployment(f"http://127.0.0.1:{listen}", load_config(path), folder, redis_url,
                                      [f"http://{a}/metrics" for a in exporters["tasks"]], f"127.0.0.1:{admin}")
    env = {"FIRECREST_MESH_CONFIG": str(path)}
    try:
        _start(deployment, "redis", [server, "--bind", "127.0.0.1", "--port", str(redis_port),
                                     "--dir", str(folder / "redis"), "--save", "", "--appendonly", "yes"])
        _wait(deployment, "redis-server", lambda: socket.create_connection(("127.0.0.1", redis_port), 1).close() or True)
        for replica in range(len(tasks_ports)):
            _start(deployment, f"tasks-{replica}", [sys.executable, "-m", "services.tasks"],
                   {**env, REPLICA_ENV: str(replica)})
        _start(deployment, "compute", [sys.executable, "-m", "services.compute"], env)
        out = folder / "envoy" / "envoy.yaml"
        subprocess.run([sys.executable, "-m", "gateway.render", "--config", str(path), "--out", str(out)],
                       check=True, cwd=REPO_ROOT, capture_output=True, env={**os.environ, **env})
        # A base id (shared memory) Envoy picks unused: each xdist worker that needs this deployment
        # starts its own, and a fixed id collided between two of them.
        _start(deployment, "envoy", [str(ENVOY), "-c", str(out), "--use-dynamic-base-id",
                                     "--concurrency", "1", "--log-level", "warn"])
        deployment.wait_healthy()  # both tasks replicas and compute
        headers = {"Authorization": f"Bearer {token('alice')}"}
        _wait(deployment, "GET /tasks through the second gateway",
              lambda: httpx.get(deployment.url + "/tasks", headers=headers, timeout=10).status_code == 200)
        yield deployment
    finally:
        _stop(deployment.processes)


@pytest.fixture(scope="session")
def redis_tasks_api(redis_tasks_deployment, token):
    """redis_tasks_api(user) -> an httpx.Client on the second deployment's gateway with `user`'s token
    (the same as the `api` fixture on the running mesh's)."""
    with bearer_clients(redis_tasks_deployment.url, token) as make:
        yield make
