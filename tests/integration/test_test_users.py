"""Every configured test user (`test_users`): a token from the embedded provider, its own home
listed through the gateway, its Slurm accounts as configured, and another user's home refused."""

from __future__ import annotations

import httpx
import pytest

from services.common.config import load_config
from services.common.oidc_client import fetch_token
from services.idp.clients import credentials

SYSTEM = "local"
USERS = load_config().test_users


@pytest.fixture(scope="module")
def client_of(config, gateway_url):
    """client_of(user) -> an httpx.Client on the gateway with a fresh token of `user`'s client."""
    clients = {}

    def make(user: str) -> httpx.Client:
        if user not in clients:
            token = fetch_token(config.identity.token_url, *credentials(config, user))
            clients[user] = httpx.Client(base_url=gateway_url, timeout=60,
                                         headers={"Authorization": f"Bearer {token}"})
        return clients[user]
    yield make
    for c in clients.values():
        c.close()


def test_at_least_eight_test_users():
    assert len(USERS) >= 8 and {"alice", "bob"} <= {u.name for u in USERS}


@pytest.mark.parametrize("user", USERS, ids=[u.name for u in USERS])
def test_user_lists_own_home_and_not_anothers(client_of, user):
    api = client_of(user.name)
    r = api.get(f"/filesystem/{SYSTEM}/ops/ls", params={"path": f"/home/{user.name}"})
    assert r.status_code == 200, r.text
    assert isinstance(r.json()["output"], list)
    neighbour = USERS[(USERS.index(user) + 1) % len(USERS)].name
    r = api.get(f"/filesystem/{SYSTEM}/ops/ls", params={"path": f"/home/{neighbour}"})
    assert r.status_code == 403, r.text
    assert "Permission denied" in r.json()["message"] and r.json()["user"] == user.name


@pytest.mark.parametrize("user", USERS, ids=[u.name for u in USERS])
def test_user_has_its_slurm_accounts(client_of, user):
    body = client_of(user.name).get(f"/status/{SYSTEM}/userinfo").json()
    assert body["user"]["name"] == user.name
    default, *others = user.accounts
    assert {"name": default, "default": True} in body["accounts"]
    for account in others:
        assert {"name": account, "default": False} in body["accounts"]
