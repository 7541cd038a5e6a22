"""End-to-end tests of the embedded identity provider (services/idp), run as a real subprocess."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import os
import json
import socket
import stat
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
import yaml
from jose import jwt

from services.common.config import REPO_ROOT, load_config
from services.idp.signing_key import SigningKey, generate_pem, public_jwks

STARTUP_DEADLINE = 60  # seconds to wait for the provider to answer (not an assertion)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Provider:
    """The provider subprocess, with a config on its own port and its own state folder."""

    def __init__(self, tmp: Path):
        port = _free_port()
        data = yaml.safe_load((REPO_ROOT / "config" / "local.yaml").read_text())
        base = f"http://127.0.0.1:{port}"
        data["identity"].update(issuer=base, jwks_uri=f"{base}/jwks", token_url=f"{base}/token")
        data["identity"]["embedded_provider"]["listen"] = f"127.0.0.1:{port}"
        data["metrics"]["exporters"]["idp"] = f"127.0.0.1:{_free_port()}"  # the mesh's provider has 9450
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


@pytest.fixture(scope="module")
def provider(tmp_path_factory):
    p = Provider(tmp_path_factory.mktemp("idp"))
    p.start()
    yield p
    p.stop()


def _token(provider, **kwargs) -> httpx.Response:
    return httpx.post(f"{provider.base}/token", timeout=5, **kwargs)


def _claims(provider, token: str) -> dict:
    cfg = provider.cfg
    jwks = httpx.get(cfg.identity.jwks_uri, timeout=5).json()
    return jwt.decode(token, jwks, algorithms=["RS256"], audience=cfg.identity.audience,
                      issuer=cfg.identity.issuer)


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
    claims = _claims(provider, body["access_token"])
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
    _check_alice_token(provider, _token(provider, auth=("firecrest-alice", "alice-secret"),
                                        data={"grant_type": "client_credentials"}))


def test_token_with_form_post(provider):
    _check_alice_token(provider, _token(provider, data={
        "grant_type": "client_credentials", "client_id": "firecrest-alice", "client_secret": "alice-secret"}))


def test_tokens_are_unique(provider):
    tokens = [_token(provider, auth=("firecrest-bob", "bob-secret"),
                     data={"grant_type": "client_credentials"}).json()["access_token"] for _ in range(2)]
    claims = [_claims(provider, t) for t in tokens]
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
    response = _token(provider, **kwargs)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert "access_token" not in response.text


def test_unknown_grant_is_400(provider):
    response = _token(provider, auth=("firecrest-alice", "alice-secret"),
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
    assert _claims(provider, token)["preferred_username"] == "firecrest"


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
        fetch_token(f"http://127.0.0.1:{_free_port()}/token", "firecrest-alice", "alice-secret", timeout=2)


@pytest.mark.parametrize("method", ["client_secret_post", "client_secret_basic"])
def test_pyfirecrest_client_credentials(provider, method):
    from firecrest import ClientCredentialsAuth

    auth = ClientCredentialsAuth("firecrest-alice", "alice-secret", provider.cfg.identity.token_url,
                                 client_auth_method=method)
    assert _claims(provider, auth.get_access_token())["preferred_username"] == "alice"


def test_log_has_no_secrets_or_tokens(provider):
    token = _token(provider, auth=("firecrest-alice", "alice-secret"),
                   data={"grant_type": "client_credentials"}).json()["access_token"]
    httpx.post(f"{provider.base}/token?client_secret=alice-secret", timeout=5,
               data={"grant_type": "client_credentials"})
    log = provider.log.read_text()
    assert "POST /token 200" in log
    secret = client_secret_of_health(provider)
    for s in ("alice-secret", token, secret, token.split(".")[1]):
        assert s not in log


def client_secret_of_health(provider) -> str:
    return (provider.state / "idp" / "clients" / "firecrest-health.secret").read_text().strip()


def test_kid_is_the_rfc7638_thumbprint():
    """The kid is the RFC 7638 thumbprint (the RFC's own example, §3.1): a key file keeps its kid."""
    from cryptography.hazmat.primitives.asymmetric import rsa as rsa_keys

    from services.idp.signing_key import thumbprint

    def number(b64: str) -> int:
        return int.from_bytes(base64.urlsafe_b64decode(b64 + "=" * (-len(b64) % 4)), "big")

    n = ("0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjB"
         "ZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZ"
         "gnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIq"
         "bw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw")
    public = rsa_keys.RSAPublicNumbers(number("AQAB"), number(n)).public_key()
    assert thumbprint(public) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


class JwksServer:
    """A real HTTP server on an ephemeral loopback port, serving the JWKS of the keys in `keys`."""

    def __init__(self):
        self.keys: list = []
        self.fetches = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                outer.fetches += 1
                body = json.dumps(public_jwks(*outer.keys)).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        self.url = f"http://127.0.0.1:{self._server.server_port}/jwks"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


@pytest.fixture
def jwks_server():
    server = JwksServer()
    yield server
    server.close()


def test_signing_key_rotation(jwks_server, monkeypatch):
    """Rotation as the verifiers see it: the provider publishes the new key beside the old one and
    signs with it; tokens of the new kid are accepted once the verifier refetches the JWKS (on an
    unknown kid, at most every MIN_REFETCH_INTERVAL_SECONDS); once the old key is withdrawn, new
    tokens of the old kid are refused after the next refresh (every REFRESH_AFTER_SECONDS)."""
    from services.common import token_verifier
    from services.common.config import IdentityConfig
    from services.common.errors import Unauthenticated
    from services.common.token_verifier import TokenVerifier

    # Shortened so that the test runs in seconds; the logic is the real one.
    monkeypatch.setattr(token_verifier, "MIN_REFETCH_INTERVAL_SECONDS", 0.5)
    monkeypatch.setattr(token_verifier, "REFRESH_AFTER_SECONDS", 1.5)
    old, new = SigningKey.from_pem(generate_pem(2048)), SigningKey.from_pem(generate_pem(2048))
    assert old.kid != new.kid
    issuer = "https://idp.example"
    verifier = TokenVerifier(IdentityConfig(issuer, jwks_server.url, "", "firecrest-mesh", "preferred_username", None))

    def token(key: SigningKey, user: str) -> str:
        now = int(time.time())
        return key.sign({"iss": issuer, "aud": "firecrest-mesh", "sub": user, "preferred_username": user,
                         "iat": now, "exp": now + 300, "jti": os.urandom(8).hex()}, typ="at+jwt")

    jwks_server.keys = [old]
    assert verifier.verify(token(old, "alice")).username == "alice"
    assert jwks_server.fetches == 1

    jwks_server.keys = [old, new]  # rotation starts: both keys published, new tokens signed by `new`
    with pytest.raises(Unauthenticated, match="public key not found"):
        verifier.verify(token(new, "bob"))  # just fetched: an unknown kid does not refetch yet
    assert jwks_server.fetches == 1
    time.sleep(0.6)
    assert verifier.verify(token(new, "bob")).username == "bob"  # unknown kid: refetched
    assert jwks_server.fetches == 2
    assert verifier.verify(token(old, "alice")).username == "alice"  # still published

    jwks_server.keys = [new]  # rotation ends: the old key is withdrawn
    time.sleep(1.6)
    with pytest.raises(Unauthenticated, match="public key not found"):
        verifier.verify(token(old, "alice"))
    assert jwks_server.fetches == 3
    assert verifier.verify(token(new, "bob")).username == "bob"
    assert jwks_server.fetches == 3


def test_new_key_file_is_picked_up_by_verifiers(tmp_path, monkeypatch):
    """The provider's own rotation path (a new key file, then a restart): a verifier that knew the
    old key accepts tokens of the new kid after refetching and refuses new tokens of the old key."""
    from services.common import token_verifier
    from services.common.errors import Unauthenticated
    from services.common.token_verifier import TokenVerifier

    def install_key(pem: bytes) -> None:  # what an operator does (2048 bits: quicker to generate)
        path = p.state / "idp" / "signing_key.pem"
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        path.touch(mode=0o600)
        path.write_bytes(pem)

    monkeypatch.setattr(token_verifier, "MIN_REFETCH_INTERVAL_SECONDS", 0.5)
    p = Provider(tmp_path)
    old_key = SigningKey.from_pem(old_pem := generate_pem(2048))
    install_key(old_pem)
    p.start()
    try:
        verifier = TokenVerifier(p.cfg.identity)
        assert httpx.get(f"{p.base}/jwks", timeout=5).json()["keys"][0]["kid"] == old_key.kid
        assert verifier.verify(_token(p, auth=("firecrest-alice", "alice-secret"),
                                      data={"grant_type": "client_credentials"}).json()["access_token"]
                               ).username == "alice"
    finally:
        p.stop()
    install_key(generate_pem(2048))
    p.start()
    try:
        new_kid = httpx.get(f"{p.base}/jwks", timeout=5).json()["keys"][0]["kid"]
        assert new_kid != old_key.kid
        time.sleep(0.6)
        new_token = _token(p, auth=("firecrest-bob", "bob-secret"), data={"grant_type": "client_credentials"})
        assert jwt.get_unverified_header(new_token.json()["access_token"])["kid"] == new_kid
        assert verifier.verify(new_token.json()["access_token"]).username == "bob"
        now = int(time.time())
        forged_late = old_key.sign({"iss": p.base, "aud": "firecrest-mesh", "sub": "alice",
                                    "preferred_username": "alice", "iat": now, "exp": now + 60}, typ="at+jwt")
        time.sleep(0.6)
        with pytest.raises(Unauthenticated, match="public key not found"):
            verifier.verify(forged_late)
    finally:
        p.stop()


def test_keys_and_secrets_survive_restart(tmp_path):
    p = Provider(tmp_path)
    p.start()
    try:
        kid = httpx.get(f"{p.base}/jwks", timeout=5).json()["keys"][0]["kid"]
        pem = (p.state / "idp" / "signing_key.pem").read_bytes()
        secret = client_secret_of_health(p)
        old = _token(p, auth=("firecrest-alice", "alice-secret"),
                     data={"grant_type": "client_credentials"}).json()["access_token"]
    finally:
        p.stop()
    p.start()
    try:
        assert httpx.get(f"{p.base}/jwks", timeout=5).json()["keys"][0]["kid"] == kid
        assert (p.state / "idp" / "signing_key.pem").read_bytes() == pem
        assert client_secret_of_health(p) == secret
        # A token issued before the restart still verifies against the served JWKS.
        assert _claims(p, old)["preferred_username"] == "alice"
    finally:
        p.stop()
    assert p.proc is None
