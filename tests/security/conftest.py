"""Fixtures of the security tests: forged tokens, and gRPC channels straight to the mesh's ports.

A test here plays an attacker on the same machine: it may read the mesh's certificates from the state
folder (as a compromised component could) and dial the services and the certificator directly,
without the gateway.
"""

from __future__ import annotations

import grpc
import pytest
from jose import jwt

from services.common import mesh_pki, mesh_tls
from services.idp.signing_key import key_path


@pytest.fixture(scope="session")
def mint(config, token):
    """mint(key=None, drop=(), headers=None, **claims) -> a token like alice's, re-signed with the
    provider's key (or `key`), claims overridden or dropped."""
    claims = jwt.get_unverified_claims(token("alice"))
    kid = jwt.get_unverified_header(token("alice"))["kid"]
    provider_key = key_path(config).read_bytes()

    def make(key: bytes | None = None, drop: tuple[str, ...] = (), headers: dict | None = None,
             algorithm: str = "RS256", **overrides) -> str:
        payload = {k: v for k, v in {**claims, **overrides}.items() if k not in drop}
        return jwt.encode(payload, key or provider_key, algorithm=algorithm,
                          headers={"kid": kid, **(headers or {})})
    return make


@pytest.fixture(scope="session")
def mesh_channel(config):
    """mesh_channel(server, as_component="envoy") -> a blocking gRPC channel to the mesh component
    `server`, authenticated with `as_component`'s mesh certificate from the state folder."""
    channels = []

    def make(server: str, as_component: str = mesh_pki.GATEWAY) -> grpc.Channel:
        channel = mesh_tls.channel(config, as_component, server)
        channels.append(channel)
        return channel
    yield make
    for c in channels:
        c.close()
