"""The embedded identity provider's signing keys (services/idp/signing_key.py) as verifiers see them:
the kid, rotation through the JWKS (a real HTTP server), a new key file picked up after a restart, and
keys and secrets that survive a restart (the provider a real subprocess: idp_provider.py)."""

from __future__ import annotations

import base64
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from jose import jwt

from services.idp.signing_key import SigningKey, generate_pem, public_jwks
from tests.integration.idp_provider import Provider, client_secret_of_health, token_response, verified_claims


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
        assert verifier.verify(token_response(p, auth=("firecrest-alice", "alice-secret"),
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
        new_token = token_response(p, auth=("firecrest-bob", "bob-secret"), data={"grant_type": "client_credentials"})
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
        old = token_response(p, auth=("firecrest-alice", "alice-secret"),
                     data={"grant_type": "client_credentials"}).json()["access_token"]
    finally:
        p.stop()
    p.start()
    try:
        assert httpx.get(f"{p.base}/jwks", timeout=5).json()["keys"][0]["kid"] == kid
        assert (p.state / "idp" / "signing_key.pem").read_bytes() == pem
        assert client_secret_of_health(p) == secret
        # A token issued before the restart still verifies against the served JWKS.
        assert verified_claims(p, old)["preferred_username"] == "alice"
    finally:
        p.stop()
    assert p.proc is None
