"""The embedded provider's client registry: listed clients, one per test user, and their credentials."""

from __future__ import annotations

import stat

import pytest
import yaml

from services.common.config import DEFAULT_CONFIG, parse_config
from services.idp.clients import configured_clients, credentials, load_clients


@pytest.fixture
def cfg(tmp_path, monkeypatch):
    """The shipped configuration with its state folder in tmp_path (secrets generated there)."""
    monkeypatch.setenv("FIRECREST_MESH_STATE", str(tmp_path / "state"))
    return parse_config(yaml.safe_load(DEFAULT_CONFIG.read_text()), DEFAULT_CONFIG)


def test_every_test_user_has_one_client(cfg):
    clients = configured_clients(cfg)
    ids = [c.client_id for c in clients]
    assert len(ids) == len(set(ids))
    for user in cfg.test_users:
        assert [c.username for c in clients if c.client_id == f"firecrest-{user.name}"] == [user.name]


def test_listed_clients_keep_their_secrets(cfg):
    """alice and bob are listed with their documented dev secrets: those win over a generated one."""
    assert credentials(cfg, "alice") == ("firecrest-alice", "alice-secret")
    assert credentials(cfg, "bob") == ("firecrest-bob", "bob-secret")
    assert not cfg.state("idp", "clients", "firecrest-alice.secret").exists()


def test_test_user_secret_is_generated_once(cfg):
    client_id, secret = credentials(cfg, "user01")
    path = cfg.state("idp", "clients", "firecrest-user01.secret")
    assert client_id == "firecrest-user01" and len(secret) >= 32
    assert path.read_text().strip() == secret and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert credentials(cfg, "user01") == (client_id, secret)       # reused
    assert load_clients(cfg)["firecrest-user01"].check_client_secret(secret)
    assert credentials(cfg, "user02")[1] != secret                 # one secret per user


def test_unknown_user_has_no_credentials(cfg):
    with pytest.raises(KeyError):
        credentials(cfg, "mallory")
