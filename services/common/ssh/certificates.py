"""Client keys and certificates for SSH logins, obtained from the certificator.

Each certificate gets a fresh Ed25519 key pair generated here; only the public key is sent to the
certificator. Session certificates are cached per user until shortly before they expire; command
certificates (force-command) are made for one command and never cached.
"""

from __future__ import annotations

import asyncio
import io
import time
from dataclasses import dataclass

import grpc
import paramiko
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from firecrest_mesh.certificator.v1 import certificator_pb2, certificator_pb2_grpc
from services.common import logs, mesh_tls
from services.common.config import Config
from services.common.errors import ApiError, ServiceUnavailable, Unauthenticated
from services.common.identity import Caller

RENEW_BEFORE_EXPIRY_SECONDS = 30
CERTIFICATOR_TIMEOUT_SECONDS = 5


@dataclass
class UserCertificate:
    """A private key with its certificate loaded, ready for paramiko's auth_publickey."""

    key: paramiko.PKey
    valid_before: float

    def usable(self) -> bool:
        return time.time() < self.valid_before - RENEW_BEFORE_EXPIRY_SECONDS


def _new_key_pair() -> tuple[paramiko.PKey, str]:
    private = ed25519.Ed25519PrivateKey.generate()
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption()).decode()
    public = private.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                               serialization.PublicFormat.OpenSSH).decode()
    return paramiko.Ed25519Key.from_private_key(io.StringIO(pem)), public


class CertificateCache:
    """Asks the certificator for certificates and keeps session certificates while they are fresh."""

    def __init__(self, channel: grpc.aio.Channel):
        self._channel = channel
        self._stub = certificator_pb2_grpc.CertificatorServiceStub(self._channel)
        self._cache: dict[str, UserCertificate] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    @classmethod
    def for_service(cls, config: Config, service: str) -> "CertificateCache":
        """A cache whose certificator channel authenticates as `service` (mutual TLS)."""
        return cls(mesh_tls.aio_channel(config, service, "certificator"))

    async def _sign(self, caller: Caller, force_command: str = "") -> UserCertificate:
        key, public = _new_key_pair()
        request = certificator_pb2.SignCertificateRequest(
            access_token=caller.access_token, username=caller.username, public_key=public,
            force_command=force_command)
        try:
            # wait_for_ready: a certificator restart (or gRPC's reconnect backoff after one) delays
            # logins by a moment instead of failing them.
            reply = await self._stub.SignCertificate(
                request, timeout=CERTIFICATOR_TIMEOUT_SECONDS, wait_for_ready=True,
                metadata=(("x-request-id", logs.request_id.get()),))
        except grpc.aio.AioRpcError as err:
            code = err.code()
            if code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
                raise ApiError(f"SSH certificate refused: {err.details()}",
                               http_status=401 if code == grpc.StatusCode.UNAUTHENTICATED else 403) from None
            raise ServiceUnavailable(f"Certificator unavailable: {err.details()}") from None
        key.load_certificate(reply.certificate)
        return UserCertificate(key, float(reply.valid_before.seconds))

    async def session_certificate(self, caller: Caller) -> UserCertificate:
        """A cached certificate for `caller`, or a new one when the cached one is close to expiry.
        `caller` is a token verified in this request; an expired one gets nothing, cached or not."""
        if caller.expires_at <= time.time():
            raise Unauthenticated("Access token expired")
        lock = self._locks.setdefault(caller.username, asyncio.Lock())
        async with lock:
            cert = self._cache.get(caller.username)
            if cert is None or not cert.usable():
                cert = await self._sign(caller)
                self._cache[caller.username] = cert
            return cert

    async def command_certificate(self, caller: Caller, command: str) -> UserCertificate:
        """A one-off certificate whose force-command is exactly `command`."""
        return await self._sign(caller, force_command=command)

    async def close(self) -> None:
        await self._channel.close()
