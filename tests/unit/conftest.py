"""Fixtures for servicer unit tests: a servicer on a real gRPC channel, in process, in milliseconds.

`serve(grpc_module, servicer)` starts a real grpc.aio server on 127.0.0.1:0 with the servicer added
through the mesh's own `AdmittingServer` (services/common/server.py) over mutual TLS with a throw-away mesh PKI, and
returns a stub on a synchronous client channel presenting the gateway's (`envoy`) certificate. The admission
verifies every caller's token with a `TokenVerifier` whose signing key is set here (no identity
provider), so tests mint their own tokens (`tokens.metadata("alice")`). No gateway, no cluster: the
servicer's scheduler or command runner is replaced at its interface by the test.

Why not PyPI's pytest-grpc (0.8.0, the latest): its `grpc_server` fixture builds a synchronous
`grpc.server(ThreadPoolExecutor)` and an insecure port. Our servicers are `async def` (grpc.aio): on
that server a handler returns a coroutine and every call fails with INTERNAL "Failed to serialize
response!"; its `grpc_interceptors` cannot take aio interceptors, and without TLS the
admission admits no peer (the mesh identity is the client certificate). So these few lines do what
it would: a server per test, a channel, a stub.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time

import grpc
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jose import jwk, jwt

from services.common import mesh_pki, mesh_tls
from services.common.config import IdentityConfig, MeshTlsConfig, load_config
from services.common.server import Admission, AdmittingServer
from services.common.token_verifier import TokenVerifier

ISSUER, AUDIENCE, KID = "https://idp.unit.example", "firecrest-mesh", "unit-key"
SERVER_COMPONENT = "status"  # the certificate the test server presents (any service's will do)


class Tokens:
    """A signing key of our own and the verifier that trusts it."""

    def __init__(self):
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption())
        public = private.public_key().public_bytes(serialization.Encoding.PEM,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo)
        self.verifier = TokenVerifier(IdentityConfig(ISSUER, "http://127.0.0.1:9/jwks", "", AUDIENCE,
                                                     "preferred_username", None))
        self.verifier._keys = {KID: {**jwk.construct(public, "RS256").to_dict(), "kid": KID}}
        self.verifier._fetched_at = time.monotonic()  # fresh: no download is attempted

    def mint(self, user: str = "alice", **claims) -> str:
        now = int(time.time())
        payload = {"iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 300, "preferred_username": user,
                   **claims}
        return jwt.encode(payload, self._pem, algorithm="RS256", headers={"kid": KID})

    def metadata(self, user: str = "alice", *extra: tuple[str, str]) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.mint(user)}"), *extra)


@pytest.fixture(scope="session")
def tokens() -> Tokens:
    return Tokens()


@pytest.fixture(scope="session")
def unit_config(tmp_path_factory):
    """The repository's configuration (systems, limits) with a throw-away mesh PKI."""
    config = load_config()
    config = dataclasses.replace(config, mesh_tls=MeshTlsConfig(tmp_path_factory.mktemp("mesh-pki"), True))
    mesh_pki.ensure(config)
    return config


@pytest.fixture(scope="session")
def server_loop():
    """One event loop in a background thread for the test servers (the test itself stays synchronous)."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="servicer-test-loop", daemon=True)
    thread.start()
    yield loop
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)


@pytest.fixture
def serve(unit_config, tokens, server_loop):
    """serve(grpc_module, servicer) -> a stub of `servicer` (an XService of the generated `grpc_module`,
    e.g. compute_pb2_grpc) on a channel to it behind the real admission."""
    started: list[tuple[grpc.aio.Server, grpc.Channel]] = []

    def on_loop(coro):
        return asyncio.run_coroutine_threadsafe(coro, server_loop).result(10)

    def start(grpc_module, servicer):
        service = next(base.__name__.removesuffix("Servicer") for base in type(servicer).__mro__
                       if base.__module__ == grpc_module.__name__)
        add_to_server = getattr(grpc_module, f"add_{service}Servicer_to_server")

        async def make():
            admission = Admission({mesh_pki.GATEWAY}, tokens.verifier, frozenset())
            server = grpc.aio.server()
            add_to_server(servicer, AdmittingServer(server, admission))
            port = server.add_secure_port("127.0.0.1:0", mesh_tls.server_credentials(unit_config, SERVER_COMPONENT))
            await server.start()
            return server, port
        server, port = on_loop(make())
        target = dataclasses.replace(unit_config, services={**unit_config.services,
                                                            SERVER_COMPONENT: f"127.0.0.1:{port}"})
        channel = mesh_tls.channel(target, mesh_pki.GATEWAY, SERVER_COMPONENT)
        started.append((server, channel))
        return getattr(grpc_module, f"{service}Stub")(channel)

    yield start
    for server, channel in started:
        channel.close()
        on_loop(server.stop(0))


def _http_code(call_or_error) -> str | None:
    """The `x-http-code` the gateway would answer with: initial metadata on success, trailing on error."""
    for metadata in (call_or_error.initial_metadata(), call_or_error.trailing_metadata()):
        for key, value in metadata or ():
            if key == "x-http-code":
                return value
    return None


@pytest.fixture(scope="session")
def rpc_error():
    """rpc_error(call) -> the grpc.RpcError that `call()` raises (the test fails if it raises none)."""
    def raised(call) -> grpc.RpcError:
        with pytest.raises(grpc.RpcError) as err:
            call()
        return err.value
    return raised


@pytest.fixture(scope="session")
def http_code():
    """http_code(call or RpcError) -> the `x-http-code` sent with it (None: the gateway answers 200)."""
    return _http_code
