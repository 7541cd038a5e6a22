"""The embedded identity provider (services/idp) as a real subprocess of its own, for the tests of
test_idp.py and test_idp_keys.py: a configuration on free loopback ports, its own state folder, start
and stop; and a token request and its verified claims."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import yaml
from jose import jwt

from services.common.config import REPO_ROOT, load_config

STARTUP_DEADLINE = 60  # seconds to wait for the provider to answer (not an assertion)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Provider:
    """The provider subprocess, with a config on its own port and its own state folder."""

    def __init__(self, tmp: Path):
        port = free_port()
        data = yaml.safe_load((REPO_ROOT / "config" / "local.yaml").read_text())
        base = f"http://127.0.0.1:{port}"
        data["identity"].update(issuer=base, jwks_uri=f"{base}/jwks", token_url=f"{base}/token")
        data["identity"]["embedded_provider"]["listen"] = f"127.0.0.1:{port}"
        data["metrics"]["exporters"]["idp"] = f"127.0.0.1:{free_port()}"  # the mesh's provider has 9450
        self.config_path = tmp / "config.yaml"
        self.config_path.write_text(yaml.safe_dump(data))
        self.state = tmp / "state"
        self.env = {**os.environ, "FIRECREST_MESH_CONFIG": str(self.config_path),
                    "FIRECREST_MESH_STATE": str(self.state)}
        self.log = tmp / "idp.log"
        self.base = base
        self.proc: subprocess.Popen | None = None

    @property
    def cfg(self):
        """The provider's configuration, as its other components would load it (same state folder)."""
        saved = os.environ.get("FIRECREST_MESH_STATE")
        os.environ["FIRECREST_MESH_STATE"] = str(self.state)
        try:
            return load_config(self.config_path)
        finally:
            if saved is None:
                del os.environ["FIRECREST_MESH_STATE"]
            else:
                os.environ["FIRECREST_MESH_STATE"] = saved

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "services.idp"], cwd=REPO_ROOT,
                                         env=self.env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + STARTUP_DEADLINE
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"provider exited with {self.proc.returncode}:\n{self.log.read_text()}")
            try:
                httpx.get(f"{self.base}/.well-known/openid-configuration", timeout=1).raise_for_status()
                return
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"provider did not start:\n{self.log.read_text()}")
                time.sleep(0.1)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


def token_response(provider, **kwargs) -> httpx.Response:
    return httpx.post(f"{provider.base}/token", timeout=5, **kwargs)


def verified_claims(provider, token: str) -> dict:
    cfg = provider.cfg
    jwks = httpx.get(cfg.identity.jwks_uri, timeout=5).json()
    return jwt.decode(token, jwks, algorithms=["RS256"], audience=cfg.identity.audience,
                      issuer=cfg.identity.issuer)


def client_secret_of_health(provider) -> str:
    return (provider.state / "idp" / "clients" / "firecrest-health.secret").read_text().strip()

