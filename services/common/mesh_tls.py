"""Mutual TLS inside the mesh: server credentials, client channels and the peer's identity.

Every service and the certificator listen with TLS and require a client certificate signed by the
mesh CA; clients (Envoy, services calling the certificator, the launcher's readiness checks) present
their own. A component's identity is the DNS name in its certificate (see `mesh_pki`), read from the
TLS session by `peer_identity`; the server's interceptor then admits only the identities it allows.
"""

from __future__ import annotations

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


def aio_channel(config: Config, component: str, server: str, options=()) -> grpc.aio.Channel:
    """An asyncio channel from `component` to the mesh component `server` (e.g. "certificator")."""
    return grpc.aio.secure_channel(str(config.services[server]), channel_credentials(config, component),
                                   options=_options(server, options))


def channel(config: Config, component: str, server: str, options=()) -> grpc.Channel:
    """A blocking channel from `component` to the mesh component `server`."""
    return grpc.secure_channel(str(config.services[server]), channel_credentials(config, component),
                               options=_options(server, options))


def peer_names(context: grpc.aio.ServicerContext) -> set[str]:
    """The names the caller's verified certificate carries (subject alternative names and common
    name); empty without a client certificate. gRPC fills these only after the TLS handshake
    verified the chain against the mesh CA."""
    auth = context.auth_context() or {}
    raw = [*auth.get("x509_subject_alternative_name", ()), *auth.get("x509_common_name", ())]
    return {n.decode() if isinstance(n, bytes) else n for n in raw}
