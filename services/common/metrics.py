"""Prometheus metrics of a mesh process, served on loopback for the mesh's Prometheus to scrape.

Each Python process (the services, the certificator, the embedded identity provider) calls
`start(config, name)` once at start-up: when `metrics.exporters.<name>` is configured, prometheus_client
serves `GET /metrics` there from a thread of its own (never the event loop). What is measured, and who
records it:

- per RPC (`services.common.server`'s handler wrapper): requests by method and gRPC code, latency;
- the SSH pool (`services.common.ssh.pool`): connections, channels in use, callers queued and
  logins in progress per system, read when scraped (`PoolCollector`), and the wait for a channel;
- the certificator: certificates signed and refused;
- Slurm (`services.slurm.client`): each scheduler command's latency and outcome;
- the health checker (`services.status.health`): each probe's result, each component's health;
- the embedded identity provider: its requests by route and status.

Labels never carry user names, paths or job ids: their number stays bounded by the API and the
configuration. The metric objects are module globals (one registry per process, as prometheus_client
expects); recording is a dictionary look-up and an add under a lock.
"""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from typing import Callable, Iterator

from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics, start_http_server
from prometheus_client.core import REGISTRY, GaugeMetricFamily

from services.common.config import Config

log = logging.getLogger(__name__)

# Latency buckets (seconds): warm calls take milliseconds, an SSH login a fraction of a second,
# scheduler commands up to their timeout (10 s by default), the gateway's route timeout 60 s.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

RPC_REQUESTS = Counter("firecrest_rpc_requests", "RPCs served, by method and gRPC status code",
                       ["method", "code"])
RPC_LATENCY = Histogram("firecrest_rpc_duration_seconds", "Time to serve an RPC, admission included",
                        ["method"], buckets=LATENCY_BUCKETS)
SSH_CHANNEL_WAIT = Histogram("firecrest_ssh_channel_wait_seconds",
                             "Time a command waited for a free SSH channel of its user (queued callers only)",
                             ["system"], buckets=LATENCY_BUCKETS)
CERTIFICATES = Counter("firecrest_certificates", "SSH certificates asked of the certificator, by outcome",
                       ["outcome", "mode"])
SCHEDULER_COMMANDS = Histogram("firecrest_scheduler_command_duration_seconds",
                               "Time of one scheduler command on a system (SSH included), by outcome",
                               ["system", "command", "outcome"], buckets=LATENCY_BUCKETS)
HEALTH_CHECK = Gauge("firecrest_health_check_healthy",
                     "Latest health probe of a system's service (1 healthy, 0 not)", ["system", "check"])
HEALTH_CHECK_RUNS = Counter("firecrest_health_checks", "Health probes run, by result",
                            ["system", "check", "result"])
IDP_REQUESTS = Counter("firecrest_idp_requests", "Requests to the embedded identity provider, by route and status",
                       ["endpoint", "status"])
COMPONENT_HEALTH = Gauge("firecrest_component_healthy",
                         "Latest availability check of a mesh component (1 healthy, 0 not)", ["component"])


def start(config: Config, name: str) -> int | None:
    """Serves this process's metrics on `metrics.exporters.<name>` (a thread of prometheus_client; a
    replicated service's: this replica's entry); returns the port, or None when none is configured."""
    address = config.metrics.exporter(name, config.replica(name) if name in config.services else 0)
    if address is None:
        return None
    disable_created_metrics()  # no `*_created` series: half the series, nothing the rules use
    start_http_server(address.port, addr=address.host)
    log.info("metrics on http://%s/metrics", address)
    return address.port


_rpc_series: dict[tuple[str, str], tuple] = {}  # (method, code) -> its counter and histogram children


def record_rpc(method: str, code: str, seconds: float) -> None:
    """One served RPC (the server's handler wrapper). The labelled children are looked up once per
    (method, code): `labels()` validates and locks on every call, and this runs on every RPC."""
    series = _rpc_series.get((method, code))
    if series is None:
        series = _rpc_series[(method, code)] = (RPC_REQUESTS.labels(method, code), RPC_LATENCY.labels(method))
    series[0].inc()
    series[1].observe(seconds)


@contextmanager
def scheduler_command(system: str, command: str) -> Iterator[Callable[[str], None]]:
    """Times one scheduler command; the block may name its outcome (default: `ok`, or `error` when
    it raised)."""
    outcome = ["ok"]
    start = time.perf_counter()
    try:
        yield lambda value: outcome.__setitem__(0, value)
    except BaseException:
        if outcome[0] == "ok":
            outcome[0] = "error"
        raise
    finally:
        SCHEDULER_COMMANDS.labels(system, command, outcome[0]).observe(time.perf_counter() - start)


class PoolCollector:
    """The state of SSH pools, read when Prometheus scrapes (nothing is counted on the request path).

    `pools()` returns `SshPool.stats()` of every live pool: {system: {connections, channels_in_use,
    channel_capacity, queued, connecting}}, summed here over the pools of the process."""

    FAMILIES = {
        "connections": "SSH connections open, all users",
        "channels_in_use": "SSH channels running a command",
        "channel_capacity": "SSH channels the open connections could run at once",
        "queued": "Callers waiting for a free SSH channel",
        "connecting": "SSH logins in progress",
    }

    def __init__(self, pools: Callable[[], list]):
        self._pools = pools

    def collect(self):
        totals: dict[str, dict[str, int]] = {}
        for pool in self._pools():
            for system, stats in pool.stats().items():
                into = totals.setdefault(system, dict.fromkeys(self.FAMILIES, 0))
                for key in self.FAMILIES:
                    into[key] += stats.get(key, 0)
        for key, help_text in self.FAMILIES.items():
            family = GaugeMetricFamily(f"firecrest_ssh_{key}", help_text, labels=["system"])
            for system, values in sorted(totals.items()):
                family.add_metric([system], values[key])
            yield family


_pools: list = []
_pool_collector_registered = False


def register_pool(pool) -> None:
    """Adds an SSH pool to what `firecrest_ssh_*` reports (the first call registers the collector)."""
    global _pool_collector_registered
    _pools.append(pool)
    if not _pool_collector_registered:
        REGISTRY.register(PoolCollector(lambda: list(_pools)))
        _pool_collector_registered = True


def unregister_pool(pool) -> None:
    if pool in _pools:
        _pools.remove(pool)
