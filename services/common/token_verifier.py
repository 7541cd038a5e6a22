"""Verifies user access tokens against the identity provider's published keys (JWKS).

One verifier for every component that acts on a token: each service verifies the caller's token on
every RPC (it never takes identity from a header), and the certificator verifies it again before
signing, so neither a process that reaches a service port directly nor a compromised service can act
as a user who did not call. Checks: RS256 signature with a key of the provider (JWKS cached, refetched
on an unknown key id and every few minutes for rotation), `exp`, `iss` and `aud` required, `nbf`
honoured, the username claim present and a valid Unix name.

Verified tokens are cached by their SHA-256 until they expire, so a repeated token costs a hash and
a dict lookup; a token that failed is never cached.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import threading
import time
import urllib.request
from dataclasses import dataclass

from jose import jwt
from jose.exceptions import ExpiredSignatureError, JWTClaimsError, JWTError

from services.common.config import USERNAME_RE, IdentityConfig
from services.common.errors import BadRequest, Unauthenticated

log = logging.getLogger(__name__)
REFRESH_AFTER_SECONDS = 300      # routine JWKS refresh (key rotation)
MIN_REFETCH_INTERVAL_SECONDS = 10  # an unknown kid refetches at most this often
MAX_CACHED_TOKENS = 10_000        # beyond this, expired entries are dropped, then the oldest


@dataclass(frozen=True)
class VerifiedToken:
    """A token whose signature and claims were checked, with the caller it names."""

    username: str
    access_token: str
    expires_at: float  # the token's `exp` (seconds since the epoch)

    def __repr__(self) -> str:  # never print the token
        return f"VerifiedToken(username={self.username!r}, expires_at={self.expires_at})"


class TokenVerifier:
    """Decodes and verifies RS256 access tokens; thread-safe."""

    def __init__(self, identity: IdentityConfig, fetch_timeout: float = 5.0):
        self._identity = identity
        self._timeout = fetch_timeout
        self._keys: dict[str, dict] = {}
        self._fetched_at = 0.0
        self._lock = threading.Lock()
        self._verified: dict[bytes, VerifiedToken] = {}

    # -- keys ------------------------------------------------------------------------------------

    def _fetch(self) -> None:
        with urllib.request.urlopen(self._identity.jwks_uri, timeout=self._timeout) as resp:
            jwks = json.load(resp)
        self._keys = {k["kid"]: k for k in jwks.get("keys", []) if "kid" in k}
        self._fetched_at = time.monotonic()
        log.info("loaded %d signing keys from the identity provider", len(self._keys))

    def needs_fetch(self, token: str) -> bool:
        """True when verifying `token` may block on a JWKS download (callers then use a thread)."""
        age = time.monotonic() - self._fetched_at
        if age > REFRESH_AFTER_SECONDS:
            return True
        try:
            kid = jwt.get_unverified_header(token).get("kid", "")
        except JWTError:
            return False
        return kid not in self._keys and age > MIN_REFETCH_INTERVAL_SECONDS

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

    # -- tokens ----------------------------------------------------------------------------------

    def cached(self, token: str) -> VerifiedToken | None:
        """The verification of `token` made earlier, if it has not expired since."""
        hit = self._verified.get(hashlib.sha256(token.encode()).digest())
        if hit is not None and hit.expires_at > time.time():
            return hit
        return None

    def verify(self, token: str) -> VerifiedToken:
        """The verified caller of `token`. Raises Unauthenticated (401) with the reason, or BadRequest
        (400, FirecREST v2's answer) when a valid token lacks the username claim."""
        digest = hashlib.sha256(token.encode()).digest()
        hit = self._verified.get(digest)
        if hit is not None and hit.expires_at > time.time():
            return hit
        claims = self.claims(token)
        verified = VerifiedToken(self.username(claims), token, float(claims["exp"]))
        self._remember(digest, verified)
        return verified

    async def verify_async(self, token: str) -> VerifiedToken:
        """verify() for the event loop: a cached token is a hash lookup and a fresh one with a known key
        one RS256 check (~0.2 ms), both inline; only a check that may download the JWKS goes to a
        thread."""
        hit = self.cached(token)
        if hit is not None:
            return hit
        if self.needs_fetch(token):
            return await asyncio.to_thread(self.verify, token)
        return self.verify(token)

    def claims(self, token: str) -> dict:
        """The token's verified claims (no username check, no cache)."""
        try:
            header = jwt.get_unverified_header(token)
        except JWTError:
            raise Unauthenticated("Access token is invalid.") from None
        if header.get("alg") != "RS256":
            raise Unauthenticated("Access token is invalid.")
        key = self._key_for(header.get("kid", ""))
        try:
            claims = jwt.decode(token, key, algorithms=["RS256"], audience=self._identity.audience,
                                issuer=self._identity.issuer,
                                options={"require_exp": True, "require_aud": True, "require_iss": True,
                                         "verify_nbf": True, "verify_at_hash": False})
        except ExpiredSignatureError:
            raise Unauthenticated("Access token expired") from None
        except JWTClaimsError as exc:
            raise Unauthenticated(f"Access token is invalid: {exc}") from None
        except JWTError:
            raise Unauthenticated("Access token is invalid.") from None
        if not isinstance(claims.get("exp"), (int, float)) or isinstance(claims.get("exp"), bool):
            raise Unauthenticated("Access token is invalid: exp must be a number")
        return claims

    def username(self, claims: dict) -> str:
        claim = self._identity.username_claim
        name = claims.get(claim)
        if not isinstance(name, str) or not name:
            raise BadRequest(f"Authentication token '{claim}' claim is missing")
        if not USERNAME_RE.match(name):
            raise BadRequest("Authentication token username is not a valid user name")
        return name

    def _remember(self, digest: bytes, verified: VerifiedToken) -> None:
        with self._lock:
            self._remember_locked(digest, verified)

    def _remember_locked(self, digest: bytes, verified: VerifiedToken) -> None:
        if len(self._verified) >= MAX_CACHED_TOKENS:
            now = time.time()
            for key in [k for k, v in self._verified.items() if v.expires_at <= now]:
                del self._verified[key]
            while len(self._verified) >= MAX_CACHED_TOKENS:  # dicts keep insertion order: oldest first
                del self._verified[next(iter(self._verified))]
        self._verified[digest] = verified
