"""The provider's RSA signing key: generated once into the state folder, used through python-jose.

The key file is PKCS#8 PEM (`<state_dir>/idp/signing_key.pem`, mode 600). Its `kid` is the RFC 7638
thumbprint of the public key, so it stays the same for as long as the key file does (tokens issued
before a restart keep verifying). To rotate: serve the old and the new public key in the JWKS for a
token lifetime, then drop the old one (the verifiers refetch the JWKS on an unknown `kid`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jose import jwk, jwt
from jose.backends.base import Key
from jose.utils import base64url_encode, long_to_base64

from services.common.config import Config

from .state_files import read_or_create

KEY_BITS = 3072
ALGORITHM = "RS256"


def key_path(cfg: Config) -> Path:
    return cfg.state("idp", "signing_key.pem")


def generate_pem(bits: int = KEY_BITS) -> bytes:
    """A new RSA private key, PKCS#8 PEM."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def thumbprint(public_key: rsa.RSAPublicKey) -> str:
    """The RFC 7638 JWK thumbprint (SHA-256) of an RSA public key."""
    numbers = public_key.public_numbers()
    members = {"e": long_to_base64(numbers.e).decode(), "kty": "RSA", "n": long_to_base64(numbers.n).decode()}
    canonical = json.dumps(members, separators=(",", ":"), sort_keys=True).encode()
    return base64url_encode(hashlib.sha256(canonical).digest()).decode()


@dataclass(frozen=True)
class SigningKey:
    """An RSA private key with its `kid`: signs RS256 JWTs, publishes its public JWK."""

    kid: str
    _key: Key  # python-jose's key object, built once (not re-parsed for every token)

    @classmethod
    def from_pem(cls, pem: bytes) -> SigningKey:
        private = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(private, rsa.RSAPrivateKey):
            raise ValueError("the signing key is not an RSA private key")
        return cls(thumbprint(private.public_key()), jwk.construct(private, ALGORITHM))

    def sign(self, claims: dict, typ: str = "JWT") -> str:
        """The compact JWS of `claims`, with `alg`, `kid` and `typ` in its header."""
        return jwt.encode(claims, self._key, algorithm=ALGORITHM, headers={"kid": self.kid, "typ": typ})

    def public_jwk(self) -> dict:
        """The public key as a JWK: kty, n, e, alg, use and kid (no private members)."""
        public = self._key.public_key().to_dict()
        return {"kty": "RSA", "n": public["n"], "e": public["e"], "alg": ALGORITHM, "use": "sig",
                "kid": self.kid}

    def __repr__(self) -> str:  # never print the key
        return f"SigningKey(kid={self.kid!r})"


def load_signing_key(cfg: Config) -> SigningKey:
    """The provider's private signing key (created on first use)."""
    return SigningKey.from_pem(read_or_create(key_path(cfg), generate_pem))


def public_jwks(*keys: SigningKey) -> dict:
    """The public JWKS document served at the jwks_uri."""
    return {"keys": [k.public_jwk() for k in keys]}
