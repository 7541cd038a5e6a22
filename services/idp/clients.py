"""The OAuth2 client registry: the configured clients as Authlib client objects.

The clients are those listed in `identity.embedded_provider.clients`, plus one `firecrest-<name>`
for every test user (`test_users`) that has no listed client of that id; its secret is generated
into the state folder (see client_secrets). Tests and benchmarks get a user's credentials from
`credentials()`.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from authlib.oauth2.rfc6749 import ClientMixin

from services.common.config import Config, IdpClient

from .client_secrets import client_secret

GRANT_TYPE = "client_credentials"
AUTH_METHODS = ("client_secret_basic", "client_secret_post")


@dataclass(frozen=True)
class Client(ClientMixin):
    """A confidential client allowed the client credentials grant only; it acts as `username`."""

    client_id: str
    username: str
    secret: str
    claims: tuple = ()  # extra claims of its tokens: ((name, value), ...) (IdpClient.claims)

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


def configured_clients(cfg: Config) -> list[IdpClient]:
    """The listed clients, then a client (secret generated) for each test user without a listed one."""
    provider = cfg.identity.embedded_provider
    if provider is None:
        raise ValueError("identity.embedded_provider is not configured")
    listed = {c.client_id for c in provider.clients}
    return [*provider.clients,
            *(IdpClient(u.client_id, u.name, None, u.claims) for u in cfg.test_users if u.client_id not in listed)]


def load_clients(cfg: Config) -> dict[str, Client]:
    """All configured clients by client_id; missing secrets are generated (see client_secrets)."""
    return {c.client_id: Client(c.client_id, c.username, client_secret(cfg, c), c.claims)
            for c in configured_clients(cfg)}


def credentials(cfg: Config, username: str) -> tuple[str, str]:
    """(client_id, secret) of the embedded provider's client for `username`: `firecrest-<username>`
    if there is one, else the first client acting as that user. For tests and benchmarks, run as the
    provider's user (the generated secrets are mode 600). KeyError if no client acts as `username`."""
    clients = [c for c in configured_clients(cfg) if c.username == username]
    if not clients:
        raise KeyError(f"no client of the embedded provider acts as {username!r}")
    client = next((c for c in clients if c.client_id == f"firecrest-{username}"), clients[0])
    return client.client_id, client_secret(cfg, client)
