"""Keeps the kernel from handing the mesh's listening ports to outgoing connections.

Most of the embedded default's ports (the services' 50051-50055, SeaweedFS's 38333-49888) lie in
Linux's ephemeral range (32768-60999): any outgoing connection on the machine (a test client, a
service dialling another) may get one of them as its local port, and the process that should listen
there then fails to bind until that connection closes. Seen in CI: compute exited at start-up with
"Failed to bind to address 127.0.0.1:50052" and `make up` gave up on it. Listing the ports in
`net.ipv4.ip_local_reserved_ports` takes them out of the ephemeral pool; an explicit bind still works.

`reserve(config)` adds every listening port of the configured processes to that list (keeping what is
there already); best effort: it needs root, and a machine where it cannot be written keeps the risk.
Called by `scripts/mesh.py up`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from services.common.config import Address, Config
from services.common.health_listener import health_address
from services.storage import s3_server

SYSCTL = Path("/proc/sys/net/ipv4/ip_local_reserved_ports")
SEAWEEDFS_GRPC_OFFSET = 10000  # each SeaweedFS component's gRPC port is its port + 10000


def _addresses(value) -> list[Address]:
    """Every Address inside a configuration value (dataclasses, dicts, lists, tuples)."""
    if isinstance(value, Address):
        return [value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return [a for f in dataclasses.fields(value) for a in _addresses(getattr(value, f.name))]
    if isinstance(value, dict):
        return [a for v in value.values() for a in _addresses(v)]
    if isinstance(value, (list, tuple)):
        return [a for v in value for a in _addresses(v)]
    return []


def mesh_ports(config: Config) -> set[int]:
    """The loopback ports the mesh's processes listen on: every address of the configuration (the
    services' replicas, their health ports, exporters, gateway, identity provider, Prometheus) and the
    embedded S3 server's ports with their gRPC ports."""
    addresses = _addresses(config)
    addresses += [health_address(a) for name in config.services for a in config.addresses(name)]
    ports = {a.port for a in addresses if a.host in ("127.0.0.1", "localhost", "::1")}
    if (s3 := s3_server.configured(config)) is not None:
        embedded = s3.embedded
        for port in (embedded.s3_port, embedded.master_port, embedded.volume_port, embedded.filer_port,
                     embedded.admin_port):
            ports |= {port, port + SEAWEEDFS_GRPC_OFFSET}
    return {p for p in ports if 0 < p < 65536}


def _parse(text: str) -> set[int]:
    """The sysctl's list ("50051-50055,8000") as a set of ports."""
    ports: set[int] = set()
    for item in filter(None, (part.strip() for part in text.split(","))):
        low, _, high = item.partition("-")
        ports.update(range(int(low), int(high or low) + 1))
    return ports


def _format(ports: set[int]) -> str:
    """A set of ports as the sysctl's list, with runs as ranges."""
    runs: list[list[int]] = []
    for port in sorted(ports):
        if runs and port == runs[-1][1] + 1:
            runs[-1][1] = port
        else:
            runs.append([port, port])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def reserve(config: Config) -> str | None:
    """Adds the mesh's ports to the reserved ports; returns a line to print when it could not."""
    try:
        current = _parse(SYSCTL.read_text())
        wanted = current | mesh_ports(config)
        if wanted != current:
            SYSCTL.write_text(_format(wanted))
    except (OSError, ValueError) as exc:
        return f"ports not reserved from the ephemeral range ({exc}): a start-up may fail to bind now and then"
    return None
