"""End-to-end tests of the embedded identity provider (services/idp), run as a real subprocess
(tests/integration/idp_provider.py): discovery, JWKS, tokens, client authentication, the files it
writes, the health checker's service account. Key rotation and restarts: test_idp_keys.py."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import socket
import stat
import time

import httpx
import pytest
from jose import jwt

from tests.integration.idp_provider import (Provider, client_secret_of_health, free_port, token_response,
                                            verified_claims)


@pytest.fixture(scope="module")
def provider(tmp_path_factory):
    p = Provider(tmp_path_factory.mktemp("idp"))
    p.start()
    yield p
    p.stop()


def test_discovery_document(provider):
    cfg = provider.cfg
    doc = httpx.get(f"{provider.base}/.well-known/openid-configuration", timeout=5).json()
    assert doc["issuer"] == cfg.identity.issuer == provider.base
    assert doc["jwks_uri"] == cfg.identity.jwks_uri
    assert doc["token_endpoint"] == cfg.identity.token_url
    assert doc["grant_types_supported"] == ["client_credentials"]
    assert set(doc["token_endpoint_auth_methods_supported"]) == {"client_secret_basic", "client_secret_post"}
    assert doc["id_token_signing_alg_values_supported"] == ["RS256"]
    assert doc["response_types_supported"] and doc["subject_types_supported"]


def test_jwks(provider):
    keys = httpx.get(f"{provider.base}/jwks", timeout=5).json()["keys"]
    assert len(keys) == 1
    key = keys[0]
    assert key["kty"] == "RSA" and key["alg"] == "RS256" and key["use"] == "sig" and key["kid"]
    assert "d" not in key and "p" not in key  # public part only
    n = int.from_bytes(base64.urlsafe_b64decode(key["n"] + "=" * (-len(key["n"]) % 4)), "big")
    assert n.bit_length() in (2048, 3072)


def _check_alice_token(provider, response: httpx.Response) -> None:
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "Bearer"
    lifetime = provider.cfg.identity.embedded_provider.token_lifetime_seconds
    assert body["expires_in"] == lifetime
    header = jwt.get_unverified_header(body["access_token"])
    jwks = httpx.get(f"{provider.base}/jwks", timeout=5).json()
    assert header["alg"] == "RS256" and header["kid"] == jwks["keys"][0]["kid"]
    assert header["typ"] == "at+jwt"  # RFC 9068
    claims = verified_claims(provider, body["access_token"])
    # The standard claims, and the client's configured extra ones (config/local.yaml: alice's groups).
    assert set(claims) == {"iss", "aud", "sub", "preferred_username", "client_id", "iat", "exp", "jti", "scope",
                           "groups"}
    assert claims["groups"] == ["proj-a", "shared"]
    assert claims["scope"] == ""
    assert claims["preferred_username"] == "alice"
    assert claims["sub"] == "alice"
    assert claims["client_id"] == "firecrest-alice"
    assert claims["iss"] == provider.base and claims["aud"] == "firecrest-mesh"
    assert claims["exp"] - claims["iat"] == lifetime
    assert claims["jti"]


def test_token_with_basic_auth(provider):
    _check_alice_token(provider, token_response(provider, auth=("firecrest-alice", "alice-secret"),
                                        data={"grant_type": "client_credentials"}))


def test_token_with_form_post(provider):
    _check_alice_token(provider, token_response(provider, data={
        "grant_type": "client_credentials", "client_id": "firecrest-alice", "client_secret": "alice-secret"}))


def test_tokens_are_unique(provider):
    tokens = [token_response(provider, auth=("firecrest-bob", "bob-secret"),
                     data={"grant_type": "client_credentials"}).json()["access_token"] for _ in range(2)]
    claims = [verified_claims(provider, t) for t in tokens]
    assert all(c["preferred_username"] == "bob" for c in claims)
    assert claims[0]["jti"] != claims[1]["jti"]


@pytest.mark.parametrize("kwargs", [
    {"auth": ("firecrest-alice", "wrong"), "data": {"grant_type": "client_credentials"}},
    {"data": {"grant_type": "client_credentials", "client_id": "firecrest-alice", "client_secret": "wrong"}},
    {"auth": ("nobody", "alice-secret"), "data": {"grant_type": "client_credentials"}},
    {"data": {"grant_type": "client_credentials", "client_id": "nobody", "client_secret": "x"}},
    {"data": {"grant_type": "client_credentials"}},
], ids=["basic-wrong-secret", "post-wrong-secret", "basic-unknown-client", "post-unknown-client", "no-credentials"])
def test_bad_client_is_401(provider, kwargs):
    response = token_response(provider, **kwargs)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert "access_token" not in response.text


def test_unknown_grant_is_400(provider):
    response = token_response(provider, auth=("firecrest-alice", "alice-secret"),
                      data={"grant_type": "password", "username": "alice", "password": "x"})
    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_grant_type"


def test_generated_secret(provider):
    """The health client's secret is generated into the default `health.client_secret_file`."""
    from services.common.oidc_client import fetch_token

    cfg = provider.cfg
    path = provider.state / "idp" / "clients" / "firecrest-health.secret"
    assert cfg.health.client_secret_file == path  # the default: where the provider generates it
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE((provider.state / "idp").stat().st_mode) == 0o700
    assert stat.S_IMODE((provider.state / "idp" / "signing_key.pem").stat().st_mode) == 0o600
    secret = path.read_text().strip()
    assert len(secret) >= 32
    assert not (path.parent / "firecrest-alice.secret").exists()  # configured secrets are not written
    token = fetch_token(cfg.identity.token_url, "firecrest-health", secret)
    assert verified_claims(provider, token)["preferred_username"] == "firecrest"


def test_health_secret_file_elsewhere(tmp_path):
    """With health.client_secret_file set, the provider keeps the health client's secret there
    (generated, or the configured one), without touching the modes of the operator's folder."""
    from services.common.config import IdpClient
    from services.idp.client_secrets import client_secret

    cfg = Provider(tmp_path).cfg
    folder = tmp_path / "etc"
    folder.mkdir(mode=0o755)
    folder.chmod(0o755)
    cfg = dataclasses.replace(cfg, health=dataclasses.replace(cfg.health, client_secret_file=folder / "health.secret"))
    generated = client_secret(cfg, IdpClient("firecrest-health", "firecrest", None))
    assert len(generated) >= 32 and (folder / "health.secret").read_text().strip() == generated
    assert stat.S_IMODE((folder / "health.secret").stat().st_mode) == 0o600
    assert stat.S_IMODE(folder.stat().st_mode) == 0o755
    assert client_secret(cfg, IdpClient("firecrest-health", "firecrest", None)) == generated  # reused
    (folder / "health.secret").unlink()
    assert client_secret(cfg, IdpClient("firecrest-health", "firecrest", "configured-secret")) == "configured-secret"
    assert (folder / "health.secret").read_text().strip() == "configured-secret"


def test_health_service_account(provider):
    """The health checker's side of the contract: it reads `health.client_secret_file`, gets a
    token from the provider and acts as the user the verified token names."""
    from services.common.token_verifier import TokenVerifier
    from services.status.health import service_account

    cfg = provider.cfg
    caller = asyncio.run(service_account(cfg, TokenVerifier(cfg.identity)))
    assert caller.username == "firecrest"


def test_health_service_account_errors(provider, tmp_path):
    from services.common.token_verifier import TokenVerifier
    from services.status.health import ServiceAccountError, service_account

    cfg = provider.cfg
    verifier = TokenVerifier(cfg.identity)
    missing = dataclasses.replace(cfg, health=dataclasses.replace(
        cfg.health, client_secret_file=tmp_path / "missing.secret"))
    with pytest.raises(ServiceAccountError, match="missing.secret.*health.client_secret_file"):
        asyncio.run(service_account(missing, verifier))
    other_user = dataclasses.replace(cfg, health=dataclasses.replace(cfg.health, service_account_username="root"))
    with pytest.raises(ServiceAccountError, match="names 'firecrest', not 'root'"):
        asyncio.run(service_account(other_user, verifier))


def test_oidc_client_against_the_provider(provider):
    """services.common.oidc_client: a good secret gets a token that TokenVerifier accepts; a bad
    secret or an unknown client is a TokenRequestError naming the HTTP status, not the secret."""
    from services.common.oidc_client import TokenRequestError, fetch_token
    from services.common.token_verifier import TokenVerifier

    token_url = provider.cfg.identity.token_url
    token = fetch_token(token_url, "firecrest-alice", "alice-secret")
    assert TokenVerifier(provider.cfg.identity).verify(token).username == "alice"
    for client_id, secret in (("firecrest-alice", "wrong"), ("nobody", "alice-secret")):
        with pytest.raises(TokenRequestError, match="401 invalid_client") as err:
            fetch_token(token_url, client_id, secret)
        assert secret not in str(err.value)


def test_oidc_client_timeout_and_unreachable():
    """A token endpoint that does not answer in time, or not at all, is a clear TokenRequestError."""
    from services.common.oidc_client import TokenRequestError, fetch_token

    with socket.socket() as silent:  # accepts connections (backlog) but never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/token"
        start = time.monotonic()
        with pytest.raises(TokenRequestError, match="no answer within 0.5 s"):
            fetch_token(url, "firecrest-alice", "alice-secret", timeout=0.5)
        assert time.monotonic() - start < 5
    with pytest.raises(TokenRequestError, match="failed: .*[Cc]onnection refused"):
        fetch_token(f"http://127.0.0.1:{free_port()}/token", "firecrest-alice", "alice-secret", timeout=2)


@pytest.mark.parametrize("method", ["client_secret_post", "client_secret_basic"])
def test_pyfirecrest_client_credentials(provider, method):
    from firecrest import ClientCredentialsAuth

    auth = ClientCredentialsAuth("firecrest-alice", "alice-secret", provider.cfg.identity.token_url,
                                 client_auth_method=method)
    assert verified_claims(provider, auth.get_access_token())["preferred_username"] == "alice"


def test_log_has_no_secrets_or_tokens(provider):
    token = token_response(provider, auth=("firecrest-alice", "alice-secret"),
                   data={"grant_type": "client_credentials"}).json()["access_token"]
    httpx.post(f"{provider.base}/token?client_secret=alice-secret", timeout=5,
               data={"grant_type": "client_credentials"})
    log = provider.log.read_text()
    assert "POST /token 200" in log
    secret = client_secret_of_health(provider)
    for s in ("alice-secret", token, secret, token.split(".")[1]):
        assert s not in log
