"""The project configuration: one YAML file for every component, validated once at start-up.

Every process (services, identity provider, gateway renderer, launcher, tests) calls `load_config()`.
The file is `config/local.yaml` unless FIRECREST_MESH_CONFIG names another; FIRECREST_MESH_STATE
overrides `state_dir`. A bad file fails fast with a `ConfigError` naming the offending key. The
sections' dataclasses live in `services.common.config_model` and are imported from here.

A service may run as several replicas (`services.<name>` a list of addresses, README "Scale-out"):
each replica is a process of its own, told which one it is by FIRECREST_MESH_REPLICA (0, 1, …; 0 when
unset), which picks its listen address (`Config.listen_address`) and its metrics exporter.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
from pathlib import Path
from typing import Any

import yaml

from services.common.config_model import (  # noqa: F401 (re-exported: callers import from here)
    REPO_ROOT, DEFAULT_CONFIG, SYSTEM_NAME_RE, USERNAME_RE, SLURM_ACCOUNT_RE, MAX_CERTIFICATE_LIFETIME,
    DATA_TYPES, REPLICA_ENV, ConfigError, Address, GatewayConfig, MeshTlsConfig, IdpClient, TestUser,
    EmbeddedProviderConfig, IdentityConfig, CertificatorConfig, HealthConfig, SshTimeouts, SshConfig,
    SchedulerConfig, FileSystemConfig, SystemConfig, TasksConfig, MetricsConfig, Config)
from services.common.gateway_policies import PolicyError, parse_policies


def _get(data: dict, key: str, where: str, default: Any = ..., kind: type | tuple = object) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping")
    if key not in data:
        if default is ...:
            raise ConfigError(f"{where}.{key}: missing")
        return default
    value = data[key]
    if kind is not object and not isinstance(value, kind):
        raise ConfigError(f"{where}.{key}: expected {getattr(kind, '__name__', kind)}, got {value!r}")
    return value


def _positive(value: int, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"{key}: expected a positive integer, got {value!r}")
    return value


def _resolve(path: str) -> Path:
    p = Path(path)
    return p if p.is_absolute() else REPO_ROOT / p


def _parse_identity(data: dict) -> IdentityConfig:
    w = "identity"
    embedded = None
    if (ep := _get(data, "embedded_provider", w, None)) is not None:
        clients = []
        for i, c in enumerate(_get(ep, "clients", f"{w}.embedded_provider", kind=list)):
            cw = f"{w}.embedded_provider.clients[{i}]"
            username = _get(c, "username", cw, kind=str)
            if not USERNAME_RE.match(username):
                raise ConfigError(f"{cw}.username: not a valid Unix username: {username!r}")
            clients.append(IdpClient(_get(c, "client_id", cw, kind=str), username,
                                     _get(c, "client_secret", cw, None, kind=str),
                                     _claims(_get(c, "claims", cw, {}, kind=dict), f"{cw}.claims")))
        embedded = EmbeddedProviderConfig(
            Address.parse(_get(ep, "listen", f"{w}.embedded_provider"), f"{w}.embedded_provider.listen"),
            _positive(_get(ep, "token_lifetime_seconds", f"{w}.embedded_provider", 300),
                      f"{w}.embedded_provider.token_lifetime_seconds"),
            tuple(clients))
    return IdentityConfig(
        issuer=_get(data, "issuer", w, kind=str).rstrip("/"),
        jwks_uri=_get(data, "jwks_uri", w, kind=str),
        token_url=_get(data, "token_url", w, kind=str),
        audience=_get(data, "audience", w, kind=str),
        username_claim=_get(data, "username_claim", w, "preferred_username", kind=str),
        embedded_provider=embedded,
    )


# Claims the embedded provider sets itself: extra claims may not replace them (nor the username
# claim, which the provider writes last). `scope` may be set (the provider's own is empty).
RESERVED_CLAIMS = {"iss", "aud", "sub", "exp", "iat", "nbf", "jti", "client_id"}


def _claims(data: dict, key: str) -> tuple[tuple[str, Any], ...]:
    """Extra token claims: names to strings, numbers, booleans or lists of strings."""
    for name, value in data.items():
        if not isinstance(name, str) or name in RESERVED_CLAIMS:
            raise ConfigError(f"{key}.{name}: not a claim that can be set here")
        ok = isinstance(value, (str, int, float, bool)) or (
            isinstance(value, list) and all(isinstance(v, str) for v in value))
        if not ok:
            raise ConfigError(f"{key}.{name}: expected a string, number, boolean or list of strings")
    return tuple((name, tuple(v) if isinstance(v, list) else v) for name, v in data.items())


def _parse_test_users(items: list) -> tuple[TestUser, ...]:
    users = []
    for i, u in enumerate(items):
        w = f"test_users[{i}]"
        name = _get(u, "name", w, kind=str)
        if not USERNAME_RE.match(name):
            raise ConfigError(f"{w}.name: not a valid Unix username: {name!r}")
        accounts = _get(u, "accounts", w, kind=list)
        if not accounts:
            raise ConfigError(f"{w}.accounts: at least one Slurm account (the default first)")
        for account in accounts:
            if not isinstance(account, str) or not SLURM_ACCOUNT_RE.match(account):
                raise ConfigError(f"{w}.accounts: not a valid Slurm account name: {account!r}")
        users.append(TestUser(name, tuple(dict.fromkeys(accounts)),
                              _claims(_get(u, "claims", w, {}, kind=dict), f"{w}.claims")))
    if len({u.name for u in users}) != len(users):
        raise ConfigError("test_users: duplicate names")
    return tuple(users)


def _parse_system(data: dict, index: int) -> SystemConfig:
    w = f"systems[{index}]"
    name = _get(data, "name", w, kind=str).lower()
    if not SYSTEM_NAME_RE.match(name):
        raise ConfigError(f"{w}.name: invalid system name {name!r}")
    ssh = _get(data, "ssh", w, kind=dict)
    sw = f"{w}.ssh"
    t = _get(ssh, "timeouts", sw, {}, kind=dict)
    timeouts = SshTimeouts(**{k: _positive(_get(t, k, f"{sw}.timeouts", d), f"{sw}.timeouts.{k}")
                              for k, d in (("connection", 5), ("login", 5), ("command_execution", 10),
                                           ("idle", 60), ("keep_alive", 5))})
    mode = _get(ssh, "certificate_mode", sw, "session", kind=str)
    if mode not in ("session", "command"):
        raise ConfigError(f"{sw}.certificate_mode: expected session or command, got {mode!r}")
    # The pool's size follows from the login node's sshd: sessions_per_connection stays below its
    # MaxSessions (sshd still counts a session for a moment after its channel closed: 2 spare), and
    # the connections a user's burst opens at once stay within its MaxStartups.
    max_sessions = _positive(_get(ssh, "sshd_max_sessions", sw, 10), f"{sw}.sshd_max_sessions")
    max_startups = _positive(_get(ssh, "sshd_max_startups", sw, 10), f"{sw}.sshd_max_startups")
    sessions = _positive(_get(ssh, "sessions_per_connection", sw, max(1, max_sessions - 2)),
                         f"{sw}.sessions_per_connection")
    if sessions > max_sessions:
        raise ConfigError(f"{sw}.sessions_per_connection: {sessions} is more than sshd allows "
                          f"(sshd_max_sessions: {max_sessions})")
    connections = _positive(_get(ssh, "max_connections_per_user", sw, min(4, max_startups)),
                            f"{sw}.max_connections_per_user")
    if connections > max_startups:
        raise ConfigError(f"{sw}.max_connections_per_user: {connections} logins at once would exceed "
                          f"what sshd accepts (sshd_max_startups: {max_startups})")
    ssh_config = SshConfig(
        host=_get(ssh, "host", sw, kind=str),
        port=_positive(_get(ssh, "port", sw, 22), f"{sw}.port"),
        known_hosts=_resolve(_get(ssh, "known_hosts", sw, kind=str)),
        certificate_mode=mode,
        max_connections_per_user=connections,
        sessions_per_connection=sessions,
        timeouts=timeouts,
        sshd_max_sessions=max_sessions,
        sshd_max_startups=max_startups,
    )
    sched = _get(data, "scheduler", w, {"type": "slurm"}, kind=dict)
    if _get(sched, "type", f"{w}.scheduler", kind=str) != "slurm":
        raise ConfigError(f"{w}.scheduler.type: only 'slurm' is supported")
    file_systems = []
    for j, fs in enumerate(_get(data, "file_systems", w, kind=list)):
        fw = f"{w}.file_systems[{j}]"
        path = _get(fs, "path", fw, kind=str)
        if not path.startswith("/") or ".." in path.split("/"):
            raise ConfigError(f"{fw}.path: expected an absolute path without '..', got {path!r}")
        data_type = _get(fs, "data_type", fw, "users", kind=str)
        if data_type not in DATA_TYPES:
            raise ConfigError(f"{fw}.data_type: expected one of {sorted(DATA_TYPES)}")
        file_systems.append(FileSystemConfig(path.rstrip("/") or "/", data_type,
                                             bool(_get(fs, "default_work_dir", fw, False, kind=bool))))
    if not file_systems:
        raise ConfigError(f"{w}.file_systems: at least one filesystem is required")
    data_op = _get(data, "data_operation", w, {}, kind=dict)
    return SystemConfig(
        name=name,
        ssh=ssh_config,
        scheduler=SchedulerConfig("slurm", _positive(_get(sched, "timeout", f"{w}.scheduler", 10),
                                                      f"{w}.scheduler.timeout"),
                                  _positive(_get(sched, "accounting_timeout", f"{w}.scheduler", 30),
                                            f"{w}.scheduler.accounting_timeout")),
        file_systems=tuple(file_systems),
        max_ops_file_size=_positive(_get(data_op, "max_ops_file_size", f"{w}.data_operation", 5242880),
                                    f"{w}.data_operation.max_ops_file_size"),
        datatransfer_jobs_directives=tuple(_get(data_op, "datatransfer_jobs_directives",
                                                f"{w}.data_operation", [], kind=list)),
    )


def _parse_tasks(data: dict, state_dir: Path) -> TasksConfig:
    w = "tasks"
    store = _get(data, "store", w, "sqlite", kind=str)
    if store not in ("sqlite", "redis"):
        raise ConfigError(f"{w}.store: expected sqlite or redis, got {store!r}")
    redis_url = _get(data, "redis_url", w, "", kind=str)
    if store == "redis" and not redis_url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError(f"{w}.redis_url: expected a redis:// URL with store: redis, got {redis_url!r}")
    sqlite_path = _get(data, "sqlite_path", w, None, kind=str)
    poll = _get(data, "watch_poll_seconds", w, 1.0, kind=(int, float))
    if isinstance(poll, bool) or not 0 < poll <= 60:
        raise ConfigError(f"{w}.watch_poll_seconds: expected a number of seconds in (0, 60], got {poll!r}")
    return TasksConfig(
        store=store,
        sqlite_path=_resolve(sqlite_path) if sqlite_path else state_dir / "tasks" / "tasks.db",
        redis_url=redis_url,
        retention_seconds=_positive(_get(data, "retention_seconds", w, 7 * 24 * 3600), f"{w}.retention_seconds"),
        follow_interval_seconds=_positive(_get(data, "follow_interval_seconds", w, 3),
                                          f"{w}.follow_interval_seconds"),
        watch_poll_seconds=float(poll),
    )


def _loopback(address: Address, key: str) -> Address:
    try:
        loopback = address.host == "localhost" or ipaddress.ip_address(address.host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ConfigError(f"{key}: metrics are served on loopback only, got {address}")
    return address


def _parse_metrics(data: dict, replicas: dict[str, tuple[Address, ...]], gateway: GatewayConfig) -> MetricsConfig:
    """`metrics:`; exporters only for configured components (the services and `idp`), every address on
    loopback, no port used twice or taken by a service, its health listener or the gateway. A
    replicated service's exporter is a list, one address per replica."""
    w = "metrics"
    exporters, replica_exporters, listed = {}, {}, []
    for name, value in _get(data, "exporters", w, {}, kind=dict).items():
        key = f"{w}.exporters.{name}"
        if name not in replicas and name != "idp":
            raise ConfigError(f"{key}: not a configured service (or idp)")
        count = len(replicas.get(name, ((),)))
        if isinstance(value, list):
            if len(value) != count:
                raise ConfigError(f"{key}: expected one address per replica of services.{name} ({count}), "
                                  f"got {len(value)}")
            addresses = tuple(_loopback(Address.parse(v, f"{key}[{i}]"), f"{key}[{i}]") for i, v in enumerate(value))
            replica_exporters[name] = addresses
            listed += [(f"{key}[{i}]", a) for i, a in enumerate(addresses)]
        elif count > 1:
            raise ConfigError(f"{key}: services.{name} has {count} replicas: expected a list of {count} addresses")
        else:
            addresses = (_loopback(Address.parse(value, key), key),)
            listed.append((key, addresses[0]))
        exporters[name] = addresses[0]
    prometheus = _get(data, "prometheus", w, None, kind=str)
    prometheus = _loopback(Address.parse(prometheus, f"{w}.prometheus"), f"{w}.prometheus") if prometheus else None
    taken = {a.port: f"services.{n}" for n, addrs in replicas.items() for a in addrs}
    taken.update({a.port + 1000: f"the health listener of services.{n}" for n, addrs in replicas.items() for a in addrs})
    taken.update({gateway.listen.port: "gateway.listen", gateway.admin.port: "gateway.admin"})
    for key, address in [*listed, *(((f"{w}.prometheus", prometheus),) if prometheus else ())]:
        if address.port in taken:
            raise ConfigError(f"{key}: port {address.port} is already {taken[address.port]}'s")
        taken[address.port] = key
    return MetricsConfig(exporters, prometheus,
                         _positive(_get(data, "scrape_interval_seconds", w, 5), f"{w}.scrape_interval_seconds"),
                         _get(data, "retention", w, "2d", kind=str), replica_exporters)


def _parse_services(data: dict) -> dict[str, tuple[Address, ...]]:
    """`services:` name → host:port, or a list of them for a service run as several replicas behind
    the gateway (at least one, no address twice, and no port shared with another service or a
    replica's health listener: port + 1000)."""
    replicas: dict[str, tuple[Address, ...]] = {}
    for name, value in data.items():
        key = f"services.{name}"
        if isinstance(value, list):
            if not value:
                raise ConfigError(f"{key}: expected host:port or a non-empty list of them")
            replicas[name] = tuple(Address.parse(v, f"{key}[{i}]") for i, v in enumerate(value))
        else:
            replicas[name] = (Address.parse(value, key),)
    seen: dict[tuple[str, int], str] = {}
    for name, addresses in replicas.items():
        for i, address in enumerate(addresses):
            key = f"services.{name}" + (f"[{i}]" if len(addresses) > 1 else "")
            host = "this machine" if _this_machine(address.host) else address.host
            for port, what in ((address.port, key), (address.port + 1000, f"the health listener of {key}")):
                if (other := seen.get((host, port))) is not None:
                    raise ConfigError(f"{key}: port {port} ({what}) is already {other}'s")
                seen[(host, port)] = what
    return replicas


def _this_machine(host: str) -> bool:
    """Loopback, localhost or the wildcard address: ports of these collide with each other."""
    try:
        ip = ipaddress.ip_address(host)
        return ip.is_loopback or ip.is_unspecified
    except ValueError:
        return host == "localhost"


# A service sends gRPC messages of at most this size (services/common/server.py): a gateway limit above it
# would let a REST answer fail in the service with gRPC's own error instead of the gateway's clear 413.
MAX_SERVICE_MESSAGE_BYTES = 64 * 1024 * 1024


def _response_limit(value) -> int | None:
    """gateway.max_response_body_bytes: absent (None), or a positive size no larger than a service sends."""
    if value is None:
        return None
    size = _positive(value, "gateway.max_response_body_bytes")
    if size > MAX_SERVICE_MESSAGE_BYTES:
        raise ConfigError(f"gateway.max_response_body_bytes: at most {MAX_SERVICE_MESSAGE_BYTES} "
                          "(the largest message a service sends)")
    return size


def parse_config(data: dict, path: Path) -> Config:
    """Validates the parsed YAML `data` and returns the typed configuration."""
    state_dir = Path(os.environ.get("FIRECREST_MESH_STATE") or _resolve(_get(data, "state_dir", "", "state")))
    gw = _get(data, "gateway", "", kind=dict)
    gw_tls = _get(gw, "tls", "gateway", None, kind=dict)
    gateway = GatewayConfig(Address.parse(_get(gw, "listen", "gateway"), "gateway.listen"),
                            Address.parse(_get(gw, "admin", "gateway"), "gateway.admin"),
                            _positive(_get(gw, "max_request_body_bytes", "gateway", 7340032),
                                      "gateway.max_request_body_bytes"),
                            _resolve(_get(gw_tls, "certificate", "gateway.tls", kind=str)) if gw_tls else None,
                            _resolve(_get(gw_tls, "private_key", "gateway.tls", kind=str)) if gw_tls else None,
                            max_response_body_bytes=_response_limit(_get(gw, "max_response_body_bytes", "gateway",
                                                                         None)))
    mesh = _get(data, "mesh_tls", "", {}, kind=dict)
    mesh_dir = _get(mesh, "dir", "mesh_tls", None, kind=str)
    mesh_tls = MeshTlsConfig(_resolve(mesh_dir) if mesh_dir else state_dir / "mesh-pki",
                             _get(mesh, "generate", "mesh_tls", True, kind=bool))
    replicas = _parse_services(_get(data, "services", "", kind=dict))
    services = {name: addresses[0] for name, addresses in replicas.items()}
    for required in ("certificator", "status"):
        if required not in services:
            raise ConfigError(f"services.{required}: missing")
    cert = _get(data, "certificator", "", {}, kind=dict)
    lifetime = _positive(_get(cert, "certificate_lifetime_seconds", "certificator", 300),
                         "certificator.certificate_lifetime_seconds")
    if lifetime > MAX_CERTIFICATE_LIFETIME:
        raise ConfigError(f"certificator.certificate_lifetime_seconds: at most {MAX_CERTIFICATE_LIFETIME}")
    sources = tuple(_get(cert, "source_addresses", "certificator", [], kind=list))
    for s in sources:
        try:
            ipaddress.ip_network(s)
        except ValueError as exc:
            raise ConfigError(f"certificator.source_addresses: {exc}") from None
    health = _get(data, "health", "", {}, kind=dict)
    service_account = _get(health, "service_account", "health", "firecrest-health", kind=str)
    systems = tuple(_parse_system(s, i) for i, s in enumerate(_get(data, "systems", "", kind=list)))
    by_name = {s.name: s for s in systems}
    if len(by_name) != len(systems):
        raise ConfigError("systems: duplicate system names")
    try:
        gateway = dataclasses.replace(gateway, policies=parse_policies(
            gw, set(by_name), {name for name in services if name != "certificator"}))
    except PolicyError as exc:
        raise ConfigError(str(exc)) from None
    return Config(
        path=path,
        state_dir=state_dir,
        gateway=gateway,
        identity=_parse_identity(_get(data, "identity", "", kind=dict)),
        services=services,
        mesh_tls=mesh_tls,
        certificator=CertificatorConfig(lifetime, sources),
        health=HealthConfig(_positive(_get(health, "interval_seconds", "health", 60), "health.interval_seconds"),
                            _positive(_get(health, "timeout_seconds", "health", 10), "health.timeout_seconds"),
                            service_account,
                            _get(health, "service_account_username", "health", None, kind=str),
                            _resolve(f) if (f := _get(health, "client_secret_file", "health", None, kind=str))
                            else state_dir / "idp" / "clients" / f"{service_account}.secret",
                            _positive(_get(health, "components_interval_seconds", "health", 10),
                                      "health.components_interval_seconds")),
        systems=systems,
        test_users=_parse_test_users(_get(data, "test_users", "", [], kind=list)),
        metrics=_parse_metrics(_get(data, "metrics", "", {}, kind=dict), replicas, gateway),
        tasks=_parse_tasks(_get(data, "tasks", "", {}, kind=dict), state_dir),
        replicas=replicas,
        _by_name=by_name,
    )


def load_config(path: str | os.PathLike | None = None) -> Config:
    """Reads and validates the configuration file (see module docstring for the lookup order)."""
    p = Path(path or os.environ.get("FIRECREST_MESH_CONFIG") or DEFAULT_CONFIG)
    return parse_config(_read_yaml(p), p.resolve())


def read_config_file(path: str | os.PathLike) -> dict:
    """The configuration file's mapping as `load_config` sees it (`extends:` followed and merged), for a
    section validated by its own service (e.g. `storage:`, services/storage/settings.py)."""
    return _read_yaml(Path(path))


def _read_yaml(p: Path, seen: tuple[Path, ...] = ()) -> dict:
    """The file's mapping; with `extends: OTHER` (relative to the file), OTHER's mapping with this file's
    keys merged in (mappings merged key by key, anything else replaced): e.g. config/unlimited.yaml is
    config/local.yaml with higher rate limits."""
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except OSError as exc:
        raise ConfigError(f"cannot read configuration {p}: {exc}") from None
    base = data.pop("extends", None) if isinstance(data, dict) else None
    if base is None:
        return data
    other = (p.parent / str(base)).resolve()
    if other in seen or other == p.resolve():
        raise ConfigError(f"{p}: extends {base!r} in a loop")
    return _merged(_read_yaml(other, (*seen, p.resolve())), data)


def _merged(base: dict, override: dict) -> dict:
    out = dict(base)
    for key, value in override.items():
        out[key] = _merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out
