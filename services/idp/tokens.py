"""The access token generator: RFC 9068 JWT access tokens signed with the provider's RS256 key.

Claims: iss, aud (the configured audience), sub and the configured username claim (the client's
username), client_id, iat, exp (iat + token_lifetime_seconds), jti and scope (always empty).
"""

from __future__ import annotations

from authlib.oauth2.rfc9068 import JWTBearerTokenGenerator
from joserfc.jwk import KeySet

from services.common.config import IdentityConfig

from .clients import Client


class TokenGenerator(JWTBearerTokenGenerator):
    def __init__(self, identity: IdentityConfig, key_set: KeySet, lifetime_seconds: int):
        # expires_generator feeds both the `exp` claim and the `expires_in` response field.
        super().__init__(issuer=identity.issuer, alg="RS256",
                         expires_generator=lambda client, grant_type: lifetime_seconds)
        self._identity = identity
        self._key_set = key_set

    def get_jwks(self) -> KeySet:
        # A KeySet (not a bare key) makes joserfc write the key's `kid` into the JWT header.
        return self._key_set

    def get_audiences(self, client: Client, user, scope) -> str:
        return self._identity.audience

    def get_extra_claims(self, client: Client, grant_type, user, scope) -> dict:
        # Applied last, so `sub` becomes the username rather than Authlib's default (client_id).
        return {"sub": client.username, self._identity.username_claim: client.username}
