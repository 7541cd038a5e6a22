"""Authentication at the gateway: real Envoy, real tokens, FirecREST v2 status codes and error body."""

from __future__ import annotations

import time

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jose import jwt

from services.idp.signing_key import key_path


def firecrest_error(response, status: int, user=None):
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"errorType", "message", "causedBy", "data", "user"}, body
    assert body["errorType"] in ("error", "validation")
    assert body["user"] == user
    assert response.headers["F7T-AppVersion"] == "2.x.x"
    return body


@pytest.fixture(scope="module")
def mint(config, token):
    """mint(**overrides) -> a token like alice's, re-signed with the provider's key (or `key`)."""
    claims = jwt.get_unverified_claims(token("alice"))
    kid = jwt.get_unverified_header(token("alice"))["kid"]
    provider_key = key_path(config).read_bytes()

    def make(key: bytes | None = None, drop: tuple[str, ...] = (), **overrides) -> str:
        payload = {k: v for k, v in {**claims, **overrides}.items() if k not in drop}
        return jwt.encode(payload, key or provider_key, algorithm="RS256", headers={"kid": kid})
    return make


def test_missing_token_is_401(anonymous):
    firecrest_error(anonymous.get("/status/systems"), 401)


def test_non_bearer_scheme_is_401(anonymous, token):
    firecrest_error(anonymous.get("/status/systems", headers={"Authorization": f"Token {token()}"}), 401)


def test_expired_token_is_401(anonymous, mint):
    now = int(time.time())
    expired = mint(iat=now - 600, exp=now - 300)
    body = firecrest_error(anonymous.get("/status/systems", headers={"Authorization": f"Bearer {expired}"}), 401)
    assert "expired" in body["message"].lower()


def test_wrong_signature_is_401(anonymous, mint):
    foreign = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    forged = mint(key=foreign)
    firecrest_error(anonymous.get("/status/systems", headers={"Authorization": f"Bearer {forged}"}), 401)


def test_wrong_audience_is_403(anonymous, mint):
    other = mint(aud="some-other-api")
    firecrest_error(anonymous.get("/status/systems", headers={"Authorization": f"Bearer {other}"}), 403)


def test_wrong_issuer_is_401(anonymous, mint):
    other = mint(iss="https://evil.example.org")
    response = anonymous.get("/status/systems", headers={"Authorization": f"Bearer {other}"})
    assert response.status_code in (401, 403)
    firecrest_error(response, response.status_code)


def test_token_in_query_string_is_not_accepted(anonymous, token):
    firecrest_error(anonymous.get("/status/systems", params={"access_token": token()}), 401)


def test_liveness_is_public(anonymous):
    for path in ("/status/liveness/", "/status/liveness"):
        response = anonymous.get(path)
        assert response.status_code == 200, response.text
        body = response.json()
        assert "local" in body["healthcheckRuns"]
        assert isinstance(body["lastUpdate"], int)


def test_client_sent_identity_header_is_ignored(api, anonymous):
    alice = api("alice")
    response = alice.get("/status/local/userinfo", headers={"x-firecrest-username": "bob"})
    assert response.status_code == 200, response.text
    assert response.json()["user"]["name"] == "alice"
    # Without a token the forged header gets nothing.
    firecrest_error(anonymous.get("/status/local/userinfo", headers={"x-firecrest-username": "bob"}), 401)


def test_error_after_authentication_names_the_user(api):
    body = firecrest_error(api("bob").get("/status/nosuchsystem/nodes"), 404, user="bob")
    assert body["message"] == "System not found"


def test_every_response_carries_version_and_request_id(api, anonymous):
    for response in (api("alice").get("/status/systems"), anonymous.get("/status/liveness/"),
                     anonymous.get("/status/systems")):
        assert response.headers["F7T-AppVersion"] == "2.x.x"
        assert response.headers.get("X-Request-ID")


def test_token_without_username_claim_is_400(anonymous, mint):
    anonymous_token = mint(drop=("preferred_username",))
    response = anonymous.get("/status/local/userinfo", headers={"Authorization": f"Bearer {anonymous_token}"})
    body = firecrest_error(response, 400)
    assert body["message"] == "Authentication token 'preferred_username' claim is missing"


def test_tokens_never_reach_the_logs(anonymous, config, token):
    secret_token = token("alice")
    auth = {"Authorization": f"Bearer {secret_token}"}
    in_header = anonymous.get("/status/local/partitions", headers=auth)
    assert in_header.status_code == 200
    in_query = anonymous.get("/status/local/partitions", params={"access_token": secret_token}, headers=auth)
    assert in_query.status_code == 400, "a token in the query string is an unknown parameter"
    request_ids = [in_header.headers["X-Request-ID"], in_query.headers["X-Request-ID"]]
    logs = [config.state("logs", f"{name}.log") for name in ("envoy", "status", "certificator", "idp")]
    deadline = time.monotonic() + 10  # Envoy flushes its access log every second
    while time.monotonic() < deadline and request_ids[-1] not in logs[0].read_text(errors="replace"):
        time.sleep(0.2)
    envoy_log = logs[0].read_text(errors="replace")
    assert all(r in envoy_log for r in request_ids), "both requests were logged"
    signature = secret_token.rsplit(".", 1)[1]
    for log in logs:
        assert signature not in log.read_text(errors="replace"), f"token found in {log}"
