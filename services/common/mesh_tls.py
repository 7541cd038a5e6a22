"""Mutual TLS inside the mesh: server credentials, client channels and the peer's identity.

Every service and the certificator listen with TLS and require a client certificate signed by the
mesh CA; clients (Envoy, services calling the certificator, the launcher's readiness checks) present
their own. A component's identity is the DNS name in its certificate (see `mesh_pki`), read from the
TLS session by `peer_identity`; the server's admission then admits only the identities it allows.

A service configured as several replicas (`services.<name>` a list of IP addresses) is dialled at all
of them, and the channel spreads calls round-robin over the replicas that answer; with host names, the
first address only (resolve a name to every replica with DNS instead: one `host:port` whose name has
several addresses, which gRPC's default resolver returns).
"""

from __future__ import annotations

import ipaddress

import grpc

from services.common import mesh_pki
from services.common.config import Config


def _read(path) -> bytes:
    return path.read_bytes()


def server_credentials(config: Config, component: str) -> grpc.ServerCredentials:
    """TLS for `component`'s listener; a client certificate from the mesh CA is required."""
    return grpc.ssl_server_credentials(
        [(_read(mesh_pki.key_file(config, component)), _read(mesh_pki.cert_file(config, component)))],
        root_certificates=_read(mesh_pki.ca_file(config)), require_client_auth=True)


def channel_credentials(config: Config, component: str) -> grpc.ChannelCredentials:
    """Client credentials: trust the mesh CA, present `component`'s certificate."""
    return grpc.ssl_channel_credentials(
        root_certificates=_read(mesh_pki.ca_file(config)),
        private_key=_read(mesh_pki.key_file(config, component)),
        certificate_chain=_read(mesh_pki.cert_file(config, component)))


def _options(server: str, extra) -> list:
    # The server is dialled by address; its certificate must name the component we meant to reach.
    return [("grpc.ssl_target_name_override", server), ("grpc.default_authority", server), *extra]


def _ip_version(host: str) -> int | None:
    try:
        return ipaddress.ip_address(host).version
    except ValueError:
        return None


def target(config: Config, server: str) -> tuple[str, list]:
    """(gRPC target, channel options) for the mesh component `server`: its address; for replicas with IP
    addresses of one family, every one of them (`ipv4:a:p,b:q`) with round-robin load balancing."""
    addresses = config.addresses(server)
    if len(addresses) == 1:
        return str(addresses[0]), []
    versions = {_ip_version(a.host) for a in addresses}
    if len(versions) != 1 or None in versions:
        return str(addresses[0]), []
    scheme = "ipv4" if versions == {4} else "ipv6"
    hosts = ",".join(str(a) if scheme == "ipv4" else f"[{a.host}]:{a.port}" for a in addresses)
    return f"{scheme}:{hosts}", [("grpc.lb_policy_name", "round_robin")]


def aio_channel(config: Config, component: str, server: str, options=()) -> grpc.aio.Channel:
    """An asyncio channel from `component` to the mesh component `server` (e.g. "certificator")."""
    address, balancing = target(config, server)
    return grpc.aio.secure_channel(address, channel_credentials(config, component),
                                   options=_options(server, [*balancing, *options]))


def channel(config: Config, component: str, server: str, options=()) -> grpc.Channel:
    """A blocking channel from `component` to the mesh component `server`."""
    address, balancing = target(config, server)
    return grpc.secure_channel(address, channel_credentials(config, component),
                               options=_options(server, [*balancing, *options]))


def peer_names(context: grpc.aio.ServicerContext) -> set[str]:
    """The names the caller's verified certificate carries: its subject alternative names, or its
    common name when it has none (gRPC's peer identity, RFC 6125's rule); empty without a client
    certificate. gRPC fills these only after the TLS handshake verified the chain against the mesh CA.
    (peer_identities() rather than auth_context(): the latter copies every property, the PEM of the
    certificate included, on each of the server's RPCs.)"""
    return {n.decode() if isinstance(n, bytes) else n for n in context.peer_identities() or ()}
