"""The access token generator: RFC 9068 JWT access tokens signed with the provider's RS256 key.

Claims: iss, aud (the configured audience), sub and the configured username claim (the client's
username), client_id, iat, exp (iat + token_lifetime_seconds), jti and scope (empty), then the client's
extra claims (`claims:` of its entry in the configuration, e.g. `groups` for the gateway's access
control lists; they may set `scope`, never the others nor the username claim). Header: alg RS256,
typ at+jwt, kid of the signing key.

Authlib runs the OAuth2 side (client authentication, grant, the token response with `token_type`
and `expires_in`); python-jose signs the JWT, the library the verifiers use too.
"""

from __future__ import annotations

import secrets
import time

from authlib.oauth2.rfc6750 import BearerTokenGenerator

from services.common.config import IdentityConfig

from .clients import Client
from .signing_key import SigningKey

TOKEN_TYPE = "at+jwt"  # RFC 9068 §2.1


class TokenGenerator(BearerTokenGenerator):
    def __init__(self, identity: IdentityConfig, key: SigningKey, lifetime_seconds: int):
        # expires_generator feeds the `expires_in` response field; `exp` uses the same lifetime.
        super().__init__(self.access_token, expires_generator=lambda client, grant_type: lifetime_seconds)
        self._identity = identity
        self._key = key
        self._lifetime = lifetime_seconds

    def access_token(self, client: Client, grant_type: str, user, scope: str) -> str:
        now = int(time.time())
        claims = {
            "iss": self._identity.issuer,
            "aud": self._identity.audience,
            "sub": client.username,
            "client_id": client.get_client_id(),
            "iat": now,
            "exp": now + self._lifetime,
            "jti": secrets.token_urlsafe(12),  # 96 random bits, 16 characters
            "scope": scope,
        }
        claims.update((name, list(value) if isinstance(value, tuple) else value) for name, value in client.claims)
        claims[self._identity.username_claim] = client.username  # last: no extra claim replaces it
        return self._key.sign(claims, typ=TOKEN_TYPE)
