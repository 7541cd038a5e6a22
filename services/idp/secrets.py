"""Client secrets: the configured one, or one generated once into the state folder.

Other components (e.g. the health checker) call `client_secret(cfg, client_id)` to obtain the
secret of a service account whose `client_secret` is not set in the configuration.
"""

from __future__ import annotations

import re
import secrets as _random
from pathlib import Path

from services.common.config import Config, IdpClient

from .state_files import read_or_create

_SAFE_CLIENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def find_client(cfg: Config, client_id: str) -> IdpClient:
    """The configured embedded-provider client called `client_id` (KeyError if there is none)."""
    provider = cfg.identity.embedded_provider
    if provider is None:
        raise KeyError(f"no embedded identity provider configured (looking for client {client_id!r})")
    for client in provider.clients:
        if client.client_id == client_id:
            return client
    raise KeyError(f"identity.embedded_provider.clients: no client {client_id!r}")


def secret_path(cfg: Config, client_id: str) -> Path:
    if not _SAFE_CLIENT_ID.match(client_id):
        raise ValueError(f"client_id {client_id!r} cannot be used as a file name")
    return cfg.state("idp", "clients", f"{client_id}.secret")


def client_secret(cfg: Config, client_id: str) -> str:
    """The secret of `client_id`: as configured, or generated (mode 600) on first use and reused."""
    client = find_client(cfg, client_id)
    if client.client_secret is not None:
        return client.client_secret
    data = read_or_create(secret_path(cfg, client_id),
                          lambda: (_random.token_urlsafe(32) + "\n").encode())
    return data.decode().strip()
