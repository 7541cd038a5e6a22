"""Periodic health checks of every system: SSH login, scheduler, filesystems.

Probes run over SSH as the health service account (a client of the identity provider whose user
exists on the clusters), through the same certificator and pool as user requests, so a green check
means the whole path works. Results feed `/status/systems` and `/status/liveness/`.

The service account is an ordinary OIDC client, the same with any provider: its client_id is
`health.service_account`, its secret is read from `health.client_secret_file` (the embedded provider
keeps the secret there), and the user it acts as is the one its verified token names.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from firecrest_mesh.status.v1 import status_pb2
from services.common import metrics
from services.common.config import Config, SystemConfig
from services.common.errors import ApiError
from services.common.identity import Caller
from services.common.ssh.pool import SshPool
from services.common.ssh.runner import CommandRunner
from services.common.oidc_client import fetch_token
from services.common.token_verifier import TokenVerifier

log = logging.getLogger(__name__)


class ServiceAccountError(RuntimeError):
    """The health service account has no usable token (secret unreadable, token refused...)."""


def read_client_secret(path: Path) -> str:
    """The service account's secret: the content of `path` without surrounding whitespace."""
    try:
        secret = path.read_text().strip()
    except OSError as exc:
        raise ServiceAccountError(f"cannot read the health service account's secret from {path} "
                                  f"(health.client_secret_file): {exc.strerror or exc}") from None
    if not secret:
        raise ServiceAccountError(f"{path} (health.client_secret_file) is empty")
    return secret


async def service_account(config: Config, verifier: TokenVerifier) -> Caller:
    """A fresh, verified token of the health service account (blocking work runs in threads)."""
    health = config.health
    secret = await asyncio.to_thread(read_client_secret, health.client_secret_file)
    token = await asyncio.to_thread(fetch_token, config.identity.token_url, health.service_account, secret)
    # Like any caller, the service account acts only with a token verified here; the user it acts
    # as is the one the token names.
    caller = await verifier.verify_async(token)
    expected = health.service_account_username
    if expected is not None and caller.username != expected:
        raise ServiceAccountError(f"the health service account's token names {caller.username!r}, "
                                  f"not {expected!r} (health.service_account_username)")
    return caller


def iso_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class SystemHealth:
    """The latest check of one system."""

    services: list[status_pb2.ServiceHealth] = field(default_factory=list)
    finished_at: str | None = None
    finished_monotonic: float | None = None
    scheduler_version: str = ""


class HealthChecker:
    def __init__(self, config: Config, pool: SshPool):
        self._config = config
        self._runner = CommandRunner(pool)  # probes run like any command: quoted, under `timeout`
        self._verifier = TokenVerifier(config.identity)
        self.results: dict[str, SystemHealth] = {s.name: SystemHealth() for s in config.systems}
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run_forever())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()

    async def _run_forever(self) -> None:
        while True:
            await self.check_all()
            await asyncio.sleep(self._config.health.interval_seconds)

    async def check_all(self) -> None:
        try:
            caller = await service_account(self._config, self._verifier)
        except Exception as exc:  # the checker itself failed: report it on every system
            for system in self._config.systems:
                self._record(system, [status_pb2.ServiceHealth(
                    service_type="exception", last_checked=iso_now(), healthy=False,
                    message=f"Cluster HealthChecker execution failed with error: {exc}")], "")
            return
        await asyncio.gather(*(self.check(system, caller) for system in self._config.systems))

    async def _probe(self, caller: Caller, system: SystemConfig, service_type: str, argv: list[str],
                     path: str | None = None) -> tuple[status_pb2.ServiceHealth, str]:
        timeout = self._config.health.timeout_seconds
        start = time.perf_counter()
        entry = status_pb2.ServiceHealth(service_type=service_type, last_checked=iso_now())
        output = ""
        try:
            result = await self._runner.execute(caller, system, argv, timeout=timeout, idempotent=True)
            entry.healthy = result.ok
            output = result.text()
            if not result.ok:
                entry.message = result.error_text() or f"exit status {result.exit_status}"
        except ApiError as err:
            entry.healthy = False
            entry.message = err.message
        entry.latency = round(time.perf_counter() - start, 4)
        if path is not None:
            entry.path = path
        return entry, output

    async def check(self, system: SystemConfig, caller: Caller) -> None:
        ssh, _ = await self._probe(caller, system, "ssh", ["true"])
        probes = [self._probe(caller, system, "scheduler", ["sinfo", "--version"])]
        probes += [self._probe(caller, system, "filesystem", ["test", "-d", fs.path], path=fs.path)
                   for fs in system.file_systems]
        results = await asyncio.gather(*probes)
        (scheduler, version_text), filesystems = results[0], [r[0] for r in results[1:]]
        version = version_text.split()[-1] if scheduler.healthy and version_text.split() else ""
        self._record(system, [ssh, scheduler, *filesystems], version)

    def _record(self, system: SystemConfig, services: list[status_pb2.ServiceHealth], version: str) -> None:
        previous = self.results[system.name]
        self.results[system.name] = SystemHealth(services, iso_now(), time.monotonic(),
                                                 version or previous.scheduler_version)
        unhealthy = [s.service_type for s in services if not s.healthy]
        for s in services:  # firecrest_health_check_healthy{system, check}: "filesystem:/home", ...
            check = f"{s.service_type}:{s.path}" if s.HasField("path") else s.service_type
            metrics.HEALTH_CHECK.labels(system.name, check).set(1 if s.healthy else 0)
            metrics.HEALTH_CHECK_RUNS.labels(system.name, check, "healthy" if s.healthy else "unhealthy").inc()
        log.info("health check of %s: %s", system.name, "unhealthy: " + ",".join(unhealthy) if unhealthy else "healthy")
