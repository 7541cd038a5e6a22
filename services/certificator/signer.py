"""Builds and signs restricted OpenSSH user certificates with the `cryptography` library."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import ssh

from services.common.errors import BadRequest

CLOCK_SKEW_SECONDS = 5


@dataclass(frozen=True)
class SignedCertificate:
    certificate: str  # OpenSSH certificate line
    valid_after: int
    valid_before: int
    key_id: str
    serial: int


def parse_user_public_key(text: str):
    """The public key of an OpenSSH public key line; BadRequest for certificates and weak keys."""
    try:
        key = ssh.load_ssh_public_key(text.strip().encode())
    except (ValueError, TypeError):
        raise BadRequest("public_key is not an OpenSSH public key") from None
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < 3072:
        raise BadRequest("RSA public keys must have at least 3072 bits")
    if not isinstance(key, (ed25519.Ed25519PublicKey, ec.EllipticCurvePublicKey, rsa.RSAPublicKey)):
        raise BadRequest("unsupported public key type")
    return key


def sign_user_certificate(ca_key: ed25519.Ed25519PrivateKey, public_key_line: str, username: str,
                          lifetime_seconds: int, request_tag: str = "",
                          force_command: str = "", source_addresses: tuple[str, ...] = ()) -> SignedCertificate:
    """A certificate for exactly `username`, valid `lifetime_seconds` from now (backdated by a few
    seconds for clock skew, within the same total window), with no extensions: sshd then grants no
    pty, no port/agent/X11 forwarding and runs no user rc."""
    public_key = parse_user_public_key(public_key_line)
    now = int(time.time())
    valid_after = now - CLOCK_SKEW_SECONDS
    valid_before = valid_after + lifetime_seconds
    serial = secrets.randbits(63)
    key_id = f"firecrest-mesh:{username}:{request_tag or '-'}:{serial:x}"
    builder = (ssh.SSHCertificateBuilder()
               .public_key(public_key)
               .type(ssh.SSHCertificateType.USER)
               .serial(serial)
               .key_id(key_id.encode())
               .valid_principals([username.encode()])
               .valid_after(valid_after)
               .valid_before(valid_before))
    if force_command:
        builder = builder.add_critical_option(b"force-command", force_command.encode())
    if source_addresses:
        builder = builder.add_critical_option(b"source-address", ",".join(source_addresses).encode())
    cert = builder.sign(ca_key)
    return SignedCertificate(cert.public_bytes().decode(), valid_after, valid_before, key_id, serial)
