"""TLS for the gateway's clients: with `gateway.tls` set, a second real Envoy (own ports and base id:
tests/security/second_gateway.py) serves REST over HTTPS and native gRPC over TLS (h2) in front of the
same services, and refuses plaintext."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from pathlib import Path

import grpc
import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from firecrest_mesh.status.v1 import status_pb2, status_pb2_grpc
from tests.security.second_gateway import second_gateway

LISTEN, ADMIN = "127.0.0.1:18443", "127.0.0.1:19911"


def _server_certificate(folder: Path) -> tuple[Path, Path, Path]:
    """A throw-away CA and a certificate for 127.0.0.1 signed by it: (ca, cert, key)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test clients CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=1))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "gateway")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=1)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = folder / "ca.crt", folder / "gateway.crt", folder / "gateway.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


@pytest.fixture(scope="module")
def tls_gateway(config, gateway_url, tmp_path_factory):
    folder = tmp_path_factory.mktemp("client-tls")
    ca, cert, key = _server_certificate(folder)
    settings = {"listen": LISTEN, "admin": ADMIN, "tls": {"certificate": str(cert), "private_key": str(key)}}
    with second_gateway(config, folder, settings, f"https://{LISTEN}/status/liveness/",
                        verify=ssl.create_default_context(cafile=str(ca))):
        yield ca


def test_rest_over_https_reaches_the_services(tls_gateway, token):
    headers = {"Authorization": f"Bearer {token('alice')}"}
    with httpx.Client(verify=ssl.create_default_context(cafile=str(tls_gateway)), timeout=20) as client:
        response = client.get(f"https://{LISTEN}/status/local/userinfo", headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["user"]["name"] == "alice"


def test_native_grpc_over_tls_h2(tls_gateway, token):
    credentials = grpc.ssl_channel_credentials(root_certificates=tls_gateway.read_bytes())
    with grpc.secure_channel(LISTEN, credentials) as channel:
        reply = status_pb2_grpc.StatusServiceStub(channel).GetUserInfo(
            status_pb2.GetUserInfoRequest(system_name="local"),
            metadata=[("authorization", f"Bearer {token('bob')}")], timeout=20)
    assert reply.user.name == "bob"


def test_plaintext_is_refused_on_the_tls_listener(tls_gateway):
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://{LISTEN}/status/liveness/", timeout=5)


def test_a_client_that_does_not_trust_the_certificate_fails(tls_gateway):
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"https://{LISTEN}/status/liveness/", timeout=5)
