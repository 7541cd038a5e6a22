"""The token matrix: every malformed or forged token is refused by the gateway and, separately, by a
service called directly with a valid mesh certificate (the gateway is not the only check)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import grpc
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jose import jwt

from firecrest_mesh.status.v1 import status_pb2, status_pb2_grpc
from services.idp.signing_key import key_path


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unsigned(header: dict, claims: dict, signature: bytes = b"") -> str:
    return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}.{_b64(signature)}"


@pytest.fixture(scope="module")
def forged(config, token, mint):
    """name -> (token or None, HTTP status at the gateway)."""
    alice = token("alice")
    claims = jwt.get_unverified_claims(alice)
    kid = jwt.get_unverified_header(alice)["kid"]
    now = int(time.time())
    public_pem = serialization.load_pem_private_key(key_path(config).read_bytes(), None).public_key() \
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    header_and_claims = f"{_b64(json.dumps({'alg': 'HS256', 'kid': kid}).encode())}." \
                        f"{_b64(json.dumps(claims).encode())}"
    hs256 = header_and_claims + "." + _b64(hmac.new(public_pem, header_and_claims.encode(), hashlib.sha256).digest())
    foreign = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return {
        "none": (None, 401),
        "alg none": (_unsigned({"alg": "none", "kid": kid}, claims), 401),
        "HS256 signed with the RSA public key": (hs256, 401),
        "unknown kid": (jwt.encode(claims, key_path(config).read_bytes(), algorithm="RS256",
                                   headers={"kid": "not-a-known-key"}), 401),
        "foreign key": (mint(key=foreign), 401),
        "expired": (mint(iat=now - 600, exp=now - 300), 401),
        "no exp": (mint(drop=("exp",)), 401),
        "nbf in the future": (mint(nbf=now + 3600), 401),
        "wrong audience": (mint(aud="someone-else"), 403),
        "wrong issuer": (mint(iss="https://evil.example"), 401),
        "no username claim": (mint(drop=("preferred_username",)), 400),
    }


CASES = ["none", "alg none", "HS256 signed with the RSA public key", "unknown kid", "foreign key",
         "expired", "no exp", "nbf in the future", "wrong audience", "wrong issuer", "no username claim"]


@pytest.mark.parametrize("case", CASES)
def test_refused_by_the_gateway(anonymous, forged, case):
    value, status = forged[case]
    headers = {"Authorization": f"Bearer {value}"} if value else {}
    response = anonymous.get("/status/local/userinfo", headers=headers)
    assert response.status_code == status, (case, response.status_code, response.text)
    assert "alice" not in response.text  # nothing of alice's was served


@pytest.mark.parametrize("case", CASES)
def test_refused_by_the_service_directly(mesh_channel, forged, case):
    value, _ = forged[case]
    metadata = [("x-firecrest-username", "alice")] + ([("authorization", f"Bearer {value}")] if value else [])
    stub = status_pb2_grpc.StatusServiceStub(mesh_channel("status"))
    with pytest.raises(grpc.RpcError) as err:
        stub.GetUserInfo(status_pb2.GetUserInfoRequest(system_name="local"), metadata=metadata, timeout=20)
    expected = {grpc.StatusCode.INVALID_ARGUMENT} if case == "no username claim" else \
        {grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED}
    assert err.value.code() in expected, (case, err.value.code(), err.value.details())


def test_control_alices_real_token_passes_both(anonymous, mesh_channel, token, mint):
    """The matrix's control: a well-formed token (even re-signed by the test) is accepted."""
    for value in (token("alice"), mint()):
        response = anonymous.get("/status/local/userinfo", headers={"Authorization": f"Bearer {value}"})
        assert response.status_code == 200 and response.json()["user"]["name"] == "alice"
        stub = status_pb2_grpc.StatusServiceStub(mesh_channel("status"))
        reply = stub.GetUserInfo(status_pb2.GetUserInfoRequest(system_name="local"),
                                 metadata=[("authorization", f"Bearer {value}")], timeout=20)
        assert reply.user.name == "alice"
