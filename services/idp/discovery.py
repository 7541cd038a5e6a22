"""The OpenID Connect discovery document (/.well-known/openid-configuration)."""

from __future__ import annotations

from urllib.parse import urlsplit

from services.common.config import IdentityConfig

from .clients import AUTH_METHODS, GRANT_TYPE


def discovery_path(identity: IdentityConfig) -> str:
    return urlsplit(identity.issuer).path.rstrip("/") + "/.well-known/openid-configuration"


def discovery_document(identity: IdentityConfig) -> dict:
    return {
        "issuer": identity.issuer,
        "jwks_uri": identity.jwks_uri,
        "token_endpoint": identity.token_url,
        "grant_types_supported": [GRANT_TYPE],
        "token_endpoint_auth_methods_supported": list(AUTH_METHODS),
        "id_token_signing_alg_values_supported": ["RS256"],
        # Required by OIDC Discovery; there is no authorization endpoint, so nothing uses it.
        "response_types_supported": ["token"],
        "subject_types_supported": ["public"],
        "scopes_supported": [],
        "claims_supported": sorted({"iss", "aud", "sub", "exp", "iat", "jti", "client_id",
                                    identity.username_claim}),
    }
