"""Availability of the mesh's own components, for `GET /status/services` (`ListServices`).

`ComponentChecker`, started by the status service, checks every component every
`health.components_interval_seconds`, all at once, each within COMPONENT_TIMEOUT_SECONDS:

- each service of `services:` (the certificator and status itself included): gRPC health on its
  health listener (`health_address`), over mutual TLS as `status`: SERVING is healthy;
- the gateway: Envoy's admin `/ready` (loopback), which answers 200 once Envoy serves;
- the identity provider: its JWKS document (`identity.jwks_uri`) answers 200;
- the object store of `storage.s3`, when configured: any HTTP answer of its private URL (S3 answers
  an anonymous request with an error document; a refused connection is what unhealthy means).

Results also set `firecrest_component_healthy{component}` (`services.common.metrics`).
"""

from __future__ import annotations

import asyncio
import logging
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from firecrest_mesh.status.v1 import status_pb2
from services.common import mesh_tls, metrics
from services.common.config import Config, ConfigError, read_config_file
from services.common.health_listener import health_address
from services.status.health import iso_now

log = logging.getLogger(__name__)
COMPONENT_TIMEOUT_SECONDS = 3.0
SELF = "status"  # the identity this service presents to the others' health listeners


@dataclass(frozen=True)
class Component:
    """A component to check: its name, kind, and the coroutine function that checks it (returns an
    error message, or None when healthy)."""
    name: str
    kind: str
    check: object


def _http_status(url: str, timeout: float) -> int:
    """The HTTP status `url` answers with (an error status too); raises OSError when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as err:
        return err.code


async def _http_check(url: str, any_answer: bool = False) -> str | None:
    try:
        status = await asyncio.to_thread(_http_status, url, COMPONENT_TIMEOUT_SECONDS)
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return f"{url}: {getattr(reason, 'strerror', None) or reason}"
    if any_answer or status == 200:
        return None
    return f"{url}: HTTP {status}"


def object_store_url(config: Config) -> str | None:
    """`storage.s3.private_url` of the configuration file, if one is configured."""
    try:
        data = read_config_file(config.path)
    except ConfigError:
        return None
    s3 = (data.get("storage") or {}).get("s3") if isinstance(data.get("storage"), dict) else None
    url = s3.get("private_url") if isinstance(s3, dict) else None
    return url if isinstance(url, str) and url.startswith(("http://", "https://")) else None


class ComponentChecker:
    """Checks every component periodically; `results()` is the latest round, in component order."""

    def __init__(self, config: Config):
        self._config = config
        self._channels: dict[str, grpc.aio.Channel] = {}
        self.components = self._components()
        self._results: dict[str, status_pb2.ComponentHealth] = {
            c.name: status_pb2.ComponentHealth(name=c.name, kind=c.kind, healthy=False,
                                               message="not checked yet") for c in self.components}
        self._task: asyncio.Task | None = None

    def _components(self) -> list[Component]:
        config = self._config
        found = [Component("gateway", "gateway",
                           lambda: _http_check(f"http://{config.gateway.admin}/ready")),
                 Component("identity_provider", "identity_provider",
                           lambda: _http_check(config.identity.jwks_uri))]
        for name in config.services:
            kind = "certificator" if name == "certificator" else "service"
            found.append(Component(name, kind, lambda n=name: self._grpc_check(n)))
        if url := object_store_url(config):
            found.append(Component("s3", "object_store", lambda: _http_check(url, any_answer=True)))
        return found

    async def _grpc_check(self, name: str) -> str | None:
        channel = self._channels.get(name)
        if channel is None:  # to the service's health listener, its certificate naming the service
            channel = self._channels[name] = grpc.aio.secure_channel(
                str(health_address(self._config.services[name])),
                mesh_tls.channel_credentials(self._config, SELF),
                options=[("grpc.ssl_target_name_override", name), ("grpc.default_authority", name),
                         # a restarted service is seen again at the next round, not after gRPC's
                         # reconnect backoff (up to 2 minutes by default)
                         ("grpc.initial_reconnect_backoff_ms", 500), ("grpc.max_reconnect_backoff_ms", 2000)])
        try:
            reply = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=COMPONENT_TIMEOUT_SECONDS)
        except grpc.aio.AioRpcError as err:
            return f"{err.code().name}: {err.details() or ''}".rstrip(": ")
        if reply.status != health_pb2.HealthCheckResponse.SERVING:
            return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
        return None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run_forever())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
        for channel in self._channels.values():
            await channel.close()

    async def _run_forever(self) -> None:
        while True:
            await self.check_all()
            await asyncio.sleep(self._config.health.components_interval_seconds)

    async def _check(self, component: Component) -> status_pb2.ComponentHealth:
        start = time.perf_counter()
        try:
            error = await asyncio.wait_for(component.check(), COMPONENT_TIMEOUT_SECONDS + 1)
        except asyncio.TimeoutError:
            error = f"no answer within {COMPONENT_TIMEOUT_SECONDS:.0f} s"
        except Exception as exc:  # a check's own failure is the component's: reported, never raised
            error = f"check failed: {exc}"
        entry = status_pb2.ComponentHealth(name=component.name, kind=component.kind, healthy=error is None,
                                           last_checked=iso_now(), latency=round(time.perf_counter() - start, 4))
        if error is not None:
            entry.message = error
        return entry

    async def check_all(self) -> None:
        """One round: every component at once."""
        entries = await asyncio.gather(*(self._check(c) for c in self.components))
        for entry in entries:
            previous = self._results.get(entry.name)
            if previous is not None and previous.HasField("last_checked") and previous.healthy != entry.healthy:
                log.warning("component %s is now %s%s", entry.name, "healthy" if entry.healthy else "unhealthy",
                            f": {entry.message}" if entry.HasField("message") else "")
            self._results[entry.name] = entry
            metrics.COMPONENT_HEALTH.labels(entry.name).set(1 if entry.healthy else 0)

    def results(self) -> list[status_pb2.ComponentHealth]:
        return [self._results[c.name] for c in self.components]
