"""Client secrets of the embedded provider: the configured one, or one generated once into a file.

A client without `client_secret` in `identity.embedded_provider.clients` gets a random secret,
generated on first start (mode 600) and reused. Its file is `<state_dir>/idp/clients/<client_id>.secret`,
except for the health checker's service account (`health.service_account`): its secret is kept in
`health.client_secret_file` (by default the same path), the file the health checker reads with any
provider. That file is the whole contract between this provider and the health checker.
"""

from __future__ import annotations

import logging
import re
import secrets as _random
from pathlib import Path

from services.common.config import Config, IdpClient

from .state_files import read_or_create

log = logging.getLogger(__name__)

_SAFE_CLIENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def secret_path(cfg: Config, client_id: str) -> Path:
    """The file that keeps the generated secret of `client_id`."""
    if client_id == cfg.health.service_account:
        return cfg.health.client_secret_file
    if not _SAFE_CLIENT_ID.match(client_id):
        raise ValueError(f"client_id {client_id!r} cannot be used as a file name")
    return cfg.state("idp", "clients", f"{client_id}.secret")


def client_secret(cfg: Config, client: IdpClient) -> str:
    """The secret of `client`: as configured, or read from its file (generated on first use).

    The health checker's client always has its file: a configured secret is written there if the
    file is missing (and a file that disagrees with it is reported, not overwritten).
    """
    is_health = client.client_id == cfg.health.service_account
    if client.client_secret is not None and not is_health:
        return client.client_secret
    path = secret_path(cfg, client.client_id)
    configured = client.client_secret
    data = read_or_create(path, lambda: ((configured or _random.token_urlsafe(32)) + "\n").encode(),
                          private_parent=_inside(path, cfg.state_dir))
    secret = data.decode().strip()
    if configured is not None:
        if secret != configured:
            log.warning("%s does not hold the client_secret configured for %s; the health checker "
                        "reads that file, so its token requests will fail", path, client.client_id)
        return configured
    if not secret:
        raise ValueError(f"{path} is empty: delete it to generate a new secret for {client.client_id}")
    return secret


def _inside(path: Path, folder: Path) -> bool:
    return path.resolve().is_relative_to(folder.resolve())
