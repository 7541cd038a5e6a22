"""Verifies user access tokens against the identity provider's published keys (JWKS).

The certificator does not trust the gateway: it checks signature, expiry, issuer and audience itself
with python-jose, so a compromised microservice cannot obtain certificates for users who did not
call it.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.request

from jose import jwt
from jose.exceptions import ExpiredSignatureError, JWTError

from services.common.config import IdentityConfig
from services.common.errors import Unauthenticated

log = logging.getLogger(__name__)
REFRESH_AFTER_SECONDS = 300      # routine JWKS refresh (key rotation)
MIN_REFETCH_INTERVAL_SECONDS = 10  # an unknown kid refetches at most this often


class TokenVerifier:
    """Decodes and verifies RS256 access tokens; caches the JWKS and refetches on an unknown key id."""

    def __init__(self, identity: IdentityConfig, fetch_timeout: float = 5.0):
        self._identity = identity
        self._timeout = fetch_timeout
        self._keys: dict[str, dict] = {}
        self._fetched_at = 0.0
        self._lock = threading.Lock()

    def _fetch(self) -> None:
        with urllib.request.urlopen(self._identity.jwks_uri, timeout=self._timeout) as resp:
            jwks = json.load(resp)
        self._keys = {k["kid"]: k for k in jwks.get("keys", []) if "kid" in k}
        self._fetched_at = time.monotonic()
        log.info("loaded %d signing keys from the identity provider", len(self._keys))

    def _key_for(self, kid: str) -> dict:
        with self._lock:
            age = time.monotonic() - self._fetched_at
            if kid not in self._keys and age > MIN_REFETCH_INTERVAL_SECONDS or age > REFRESH_AFTER_SECONDS:
                try:
                    self._fetch()
                except OSError as exc:
                    log.warning("cannot fetch JWKS: %s", exc)
            if kid not in self._keys:
                raise Unauthenticated("Token's public key not found.")
            return self._keys[kid]

    def verify(self, token: str) -> dict:
        """The token's verified claims. Raises Unauthenticated with the reason."""
        try:
            header = jwt.get_unverified_header(token)
        except JWTError:
            raise Unauthenticated("Access token is invalid.") from None
        if header.get("alg") != "RS256":
            raise Unauthenticated("Access token is invalid.")
        key = self._key_for(header.get("kid", ""))
        try:
            return jwt.decode(token, key, algorithms=["RS256"], audience=self._identity.audience,
                              issuer=self._identity.issuer,
                              options={"require_exp": True, "require_aud": True, "require_iss": True})
        except ExpiredSignatureError:
            raise Unauthenticated("Access token expired") from None
        except JWTError as exc:
            raise Unauthenticated(f"Access token is invalid: {exc}") from None

    def username(self, claims: dict) -> str:
        name = claims.get(self._identity.username_claim)
        if not isinstance(name, str) or not name:
            raise Unauthenticated(f"Authentication token '{self._identity.username_claim}' claim is missing")
        return name
