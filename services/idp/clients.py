"""The OAuth2 client registry: the configured clients as Authlib client objects."""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from authlib.oauth2.rfc6749 import ClientMixin

from services.common.config import Config

from .client_secrets import client_secret

GRANT_TYPE = "client_credentials"
AUTH_METHODS = ("client_secret_basic", "client_secret_post")


@dataclass(frozen=True)
class Client(ClientMixin):
    """A confidential client allowed the client credentials grant only; it acts as `username`."""

    client_id: str
    username: str
    secret: str

    def get_client_id(self) -> str:
        return self.client_id

    def check_client_secret(self, client_secret: str) -> bool:
        return hmac.compare_digest(self.secret.encode(), client_secret.encode())

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return endpoint == "token" and method in AUTH_METHODS

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == GRANT_TYPE

    def get_allowed_scope(self, scope: str | None) -> str:
        return ""  # no scopes: access is decided by the username, not by scopes

    def check_response_type(self, response_type: str) -> bool:
        return False  # no authorization endpoint


def load_clients(cfg: Config) -> dict[str, Client]:
    """All configured clients by client_id; missing secrets are generated (see client_secrets)."""
    provider = cfg.identity.embedded_provider
    if provider is None:
        raise ValueError("identity.embedded_provider is not configured")
    return {c.client_id: Client(c.client_id, c.username, client_secret(cfg, c))
            for c in provider.clients}
