"""The configuration's shape: one frozen dataclass per section of the YAML file, and the constants
its validation uses. `services.common.config` parses and validates a file into these (`load_config`)
and re-exports them, so callers import everything from there.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from services.common.gateway_policies import GatewayPolicies

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG = REPO_ROOT / "config" / "local.yaml"
SYSTEM_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
USERNAME_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
SLURM_ACCOUNT_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
MAX_CERTIFICATE_LIFETIME = 300
DATA_TYPES = {"users", "store", "archive", "apps", "scratch", "project"}
REPLICA_ENV = "FIRECREST_MESH_REPLICA"  # which replica of its service a process is (0-based)


class ConfigError(ValueError):
    """The configuration file is missing a key or has a bad value."""


@dataclass(frozen=True)
class Address:
    host: str
    port: int

    @classmethod
    def parse(cls, text: str, key: str) -> "Address":
        host, sep, port = str(text).rpartition(":")
        if not sep or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(f"{key}: expected host:port, got {text!r}")
        return cls(host, int(port))

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class GatewayConfig:
    listen: Address
    admin: Address
    max_request_body_bytes: int
    # TLS for clients of the gateway: PEM certificate chain and key. None: plaintext (loopback).
    tls_certificate: Path | None = None
    tls_private_key: Path | None = None
    # Rate limits, IP filtering, access control lists (services/common/gateway_policies.py).
    policies: GatewayPolicies = GatewayPolicies()
    # Largest unary response the gateway transcodes (its gRPC bytes); a larger answer is a 413 naming
    # the limit. None: room for the biggest `view`/download of any system (gateway/render.py).
    max_response_body_bytes: int | None = None


@dataclass(frozen=True)
class MeshTlsConfig:
    """Mutual TLS inside the mesh: where the mesh CA and each component's certificate live.

    `dir` holds `ca.crt` and `<component>.crt`/`<component>.key` for every component (the gateway is
    `envoy`, the launcher `launcher`, each service its name in `services`); a certificate's identity is
    its DNS subject alternative name, equal to the component name. `generate: true` (the embedded
    default) creates the CA and the certificates at start-up; with an external PKI, set it to false
    and put the site's files there.
    """
    dir: Path
    generate: bool


@dataclass(frozen=True)
class IdpClient:
    client_id: str
    username: str
    client_secret: str | None  # None: generated into the state folder
    # Extra claims of its tokens (e.g. {"groups": ["hpc"]}), for access control lists.
    claims: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True)
class TestUser:
    """A user of the embedded default's local HPC system (`test_users`): cluster/up.sh creates the
    Unix account (home, scratch, unlocked) and its Slurm associations; the embedded provider gives it
    a client `firecrest-<name>` unless one is listed in `identity.embedded_provider.clients`."""
    __test__ = False  # not a pytest class
    name: str
    accounts: tuple[str, ...]  # Slurm accounts, the default first
    claims: tuple[tuple[str, Any], ...] = ()  # extra claims of its client's tokens (IdpClient.claims)

    @property
    def client_id(self) -> str:
        return f"firecrest-{self.name}"


@dataclass(frozen=True)
class EmbeddedProviderConfig:
    listen: Address
    token_lifetime_seconds: int
    clients: tuple[IdpClient, ...]


@dataclass(frozen=True)
class IdentityConfig:
    issuer: str
    jwks_uri: str
    token_url: str
    audience: str
    username_claim: str
    embedded_provider: EmbeddedProviderConfig | None


@dataclass(frozen=True)
class CertificatorConfig:
    certificate_lifetime_seconds: int
    source_addresses: tuple[str, ...]


@dataclass(frozen=True)
class HealthConfig:
    interval_seconds: int
    timeout_seconds: int
    service_account: str          # client_id of the health checker's service account
    service_account_username: str | None  # if set, its token must name this user (else any user)
    # The file holding its client secret, read by the health checker with any provider. Default:
    # <state_dir>/idp/clients/<service_account>.secret. The embedded provider keeps the secret of
    # this client in this file (generated there, mode 600, when missing).
    client_secret_file: Path
    # How often the status service checks the mesh's own components (`GET /status/services`): a
    # stopped one shows unhealthy within this many seconds.
    components_interval_seconds: int = 10


@dataclass(frozen=True)
class SshTimeouts:
    connection: int
    login: int
    command_execution: int
    idle: int
    keep_alive: int


@dataclass(frozen=True)
class SshConfig:
    host: str
    port: int
    known_hosts: Path
    certificate_mode: str  # "session" or "command"
    max_connections_per_user: int
    sessions_per_connection: int
    timeouts: SshTimeouts
    # What the login node's sshd allows, which the pool is sized from: channels per connection
    # (MaxSessions) and unauthenticated connections at once before it starts refusing logins
    # (MaxStartups, its first number).
    sshd_max_sessions: int = 10
    sshd_max_startups: int = 10


@dataclass(frozen=True)
class SchedulerConfig:
    type: str
    timeout: int  # seconds a controller command (sbatch, squeue, scancel, scontrol, sinfo) may run
    # Seconds an accounting query (sacct) may run: its cost grows with the jobs in its window (up to 7
    # days of them) and with slurmdbd's load, unlike a controller RPC's.
    accounting_timeout: int = 30


@dataclass(frozen=True)
class FileSystemConfig:
    path: str
    data_type: str
    default_work_dir: bool


@dataclass(frozen=True)
class SystemConfig:
    name: str
    ssh: SshConfig
    scheduler: SchedulerConfig
    file_systems: tuple[FileSystemConfig, ...]
    max_ops_file_size: int
    datatransfer_jobs_directives: tuple[str, ...] = ()


@dataclass(frozen=True)
class TasksConfig:
    """The tasks service and the following of asynchronous jobs (`tasks:`).

    `store` is `sqlite` (the embedded default: one file, WAL, at `sqlite_path`) or `redis` (several
    tasks-service replicas share `redis_url`). Finished tasks are deleted `retention_seconds` after
    they ended (default 7 days). The compute service's follower asks the scheduler about the jobs of
    each user on each system once every `follow_interval_seconds`; watchers of a task on another
    replica notice a change within `watch_poll_seconds` at most (sooner with Redis' notifications).
    """
    store: str
    sqlite_path: Path
    redis_url: str
    retention_seconds: int
    follow_interval_seconds: int
    watch_poll_seconds: float


@dataclass(frozen=True)
class MetricsConfig:
    """Prometheus metrics (`metrics:`): where each Python process serves `GET /metrics`
    (`exporters`: component name → loopback host:port; a component not listed exports nothing) and
    the local Prometheus server that scrapes them and Envoy's admin every `scrape_interval_seconds`
    (`prometheus`: its loopback web address; None: the launcher starts no Prometheus)."""
    exporters: dict[str, Address] = field(default_factory=dict)
    prometheus: Address | None = None
    scrape_interval_seconds: int = 5
    retention: str = "2d"  # Prometheus' --storage.tsdb.retention.time
    # A replicated service's exporters, one per replica in the order of its addresses (a list in
    # `exporters.<name>`); `exporters` holds the first. Absent for a service with one exporter.
    replica_exporters: dict[str, tuple[Address, ...]] = field(default_factory=dict)

    def exporter(self, name: str, replica: int = 0) -> Address | None:
        """Where replica `replica` of component `name` serves /metrics (None: nowhere)."""
        if name in self.replica_exporters:
            return self.replica_exporters[name][replica]
        return self.exporters.get(name) if replica == 0 else None


@dataclass(frozen=True)
class Config:
    path: Path
    state_dir: Path
    gateway: GatewayConfig
    identity: IdentityConfig
    services: dict[str, Address]  # each service's address; a replicated service's first replica's
    mesh_tls: MeshTlsConfig
    certificator: CertificatorConfig
    health: HealthConfig
    systems: tuple[SystemConfig, ...]
    test_users: tuple[TestUser, ...] = ()
    metrics: MetricsConfig = field(default_factory=lambda: MetricsConfig())
    tasks: TasksConfig | None = None
    # Every address of each service, in configured order: one for most, several for a service that
    # runs as replicas behind the gateway's load balancing (`services.<name>` a list).
    replicas: dict[str, tuple[Address, ...]] = field(default_factory=dict)
    _by_name: dict[str, SystemConfig] = field(default_factory=dict, compare=False, repr=False)

    def addresses(self, name: str) -> tuple[Address, ...]:
        """Every replica's address of service `name` (one for a service that is not replicated). An
        entry of `services` replaced after parsing (tests: `dataclasses.replace`) is one replica."""
        replicas = self.replicas.get(name)
        if replicas and replicas[0] == self.services.get(name):
            return replicas
        return (self.services[name],)

    def replica(self, name: str) -> int:
        """Which replica of service `name` this process is: FIRECREST_MESH_REPLICA, 0 when unset."""
        text = os.environ.get(REPLICA_ENV, "0")
        count = len(self.addresses(name))
        if not text.isdigit() or int(text) >= count:
            raise ConfigError(f"{REPLICA_ENV}={text!r}: services.{name} has {count} replica(s) (0..{count - 1})")
        return int(text)

    def listen_address(self, name: str) -> Address:
        """The address this process listens on as service `name` (its replica's)."""
        return self.addresses(name)[self.replica(name)]

    def system(self, name: str) -> SystemConfig | None:
        """The system called `name` (case-insensitive, as in FirecREST v2), or None."""
        return self._by_name.get(name.lower())

    def state(self, *parts: str) -> Path:
        """A path inside the state folder."""
        return self.state_dir.joinpath(*parts)
