"""The provider's RSA signing key: generated once into the state folder, loaded as a JWK."""

from __future__ import annotations

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from joserfc.jwk import KeySet, RSAKey

from services.common.config import Config

from .state_files import read_or_create

KEY_BITS = 3072
ALGORITHM = "RS256"


def key_path(cfg: Config):
    return cfg.state("idp", "signing_key.pem")


def _generate_pem() -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def load_signing_key(cfg: Config) -> RSAKey:
    """The private signing key (created on first use), with `alg`, `use` and a thumbprint `kid`.

    The `kid` is the RFC 7638 thumbprint, so it stays the same for as long as the key file does.
    """
    key = RSAKey.import_key(read_or_create(key_path(cfg), _generate_pem),
                            parameters={"alg": ALGORITHM, "use": "sig"})
    key.ensure_kid()
    return key


def signing_key_set(key: RSAKey) -> KeySet:
    """The private key set used for signing (joserfc puts the key's `kid` in the JWT header)."""
    return KeySet([key])


def public_jwks(key: RSAKey) -> dict:
    """The public JWKS document served at the jwks_uri."""
    return KeySet([key]).as_dict(private=False)
