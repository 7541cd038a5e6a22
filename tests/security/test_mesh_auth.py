"""Zero trust inside the mesh, on the running stack: every hop authenticates.

- Each service port and the certificator refuse plaintext, TLS without a client certificate, and a
  client certificate from another CA.
- With a valid mesh certificate, a direct call with a forged username header is refused for every
  RPC of every service, even right after the impersonated user warmed their SSH session through the
  gateway: identity comes only from a token the service verified itself.
- The certificator admits only the services, and signs only for the user of the token it verified.
"""

from __future__ import annotations

import datetime

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import NameOID
from grpc_health.v1 import health_pb2, health_pb2_grpc

from firecrest_mesh.certificator.v1 import certificator_pb2, certificator_pb2_grpc
from firecrest_mesh.status.v1 import status_pb2, status_pb2_grpc
from services.common import mesh_pki
from tests.security.mesh_calls import API_FILES, api_methods, call

ALL_PORTS = ["certificator", *API_FILES]
HEALTH_ACCOUNT = "firecrest"
REFUSED = {grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED}


def _health(channel: grpc.Channel) -> grpc.StatusCode:
    try:
        health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    except grpc.RpcError as err:
        return err.code()
    return grpc.StatusCode.OK


def _foreign_ca_credentials(config) -> grpc.ChannelCredentials:
    """A client certificate named `envoy`, signed by a CA that is not the mesh's."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "attacker CA")])
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "envoy")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("envoy")]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    return grpc.ssl_channel_credentials(
        root_certificates=mesh_pki.ca_file(config).read_bytes(),
        private_key=key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()),
        certificate_chain=cert.public_bytes(serialization.Encoding.PEM))


@pytest.mark.parametrize("server", ALL_PORTS)
def test_plaintext_is_refused(config, server):
    with grpc.insecure_channel(str(config.services[server])) as channel:
        assert _health(channel) == grpc.StatusCode.UNAVAILABLE


@pytest.mark.parametrize("server", ALL_PORTS)
def test_tls_without_client_certificate_is_refused(config, server):
    credentials = grpc.ssl_channel_credentials(root_certificates=mesh_pki.ca_file(config).read_bytes())
    options = [("grpc.ssl_target_name_override", server)]
    with grpc.secure_channel(str(config.services[server]), credentials, options=options) as channel:
        assert _health(channel) == grpc.StatusCode.UNAVAILABLE


@pytest.mark.parametrize("server", ALL_PORTS)
def test_client_certificate_of_another_ca_is_refused(config, server):
    options = [("grpc.ssl_target_name_override", server)]
    with grpc.secure_channel(str(config.services[server]), _foreign_ca_credentials(config),
                             options=options) as channel:
        assert _health(channel) == grpc.StatusCode.UNAVAILABLE


@pytest.mark.parametrize("server", ALL_PORTS)
def test_mesh_certificate_is_admitted(mesh_channel, server):
    """The control of the refusals above: the same call with a mesh certificate succeeds."""
    assert _health(mesh_channel(server, mesh_pki.LAUNCHER)) == grpc.StatusCode.OK


@pytest.fixture
def warm_sessions(api):
    """alice and bob each made a call through the gateway: their SSH sessions are pooled."""
    for user in ("alice", "bob"):
        response = api(user).get("/status/local/userinfo")
        assert response.status_code == 200, response.text
        assert response.json()["user"]["name"] == user


def _all_rpcs():
    return [(service, *m) for service in API_FILES for m in api_methods(service)]


def _forgeries(token):
    return {
        "no token": [("x-firecrest-username", "alice")],
        "garbage token": [("x-firecrest-username", "alice"), ("authorization", "Bearer not-a-token")],
        "bob's token claiming alice": [("x-firecrest-username", "alice"),
                                       ("authorization", f"Bearer {token('bob')}")],
        "garbage token claiming the health account": [("x-firecrest-username", HEALTH_ACCOUNT),
                                                      ("authorization", "Bearer not-a-token")],
        "bob's token claiming the health account": [("x-firecrest-username", HEALTH_ACCOUNT),
                                                    ("authorization", f"Bearer {token('bob')}")],
    }


PUBLIC = {"/firecrest_mesh.status.v1.StatusService/GetLiveness"}


def test_forged_identity_is_refused_for_every_rpc(mesh_channel, token, warm_sessions):
    refused, accepted = 0, []
    forgeries = _forgeries(token)
    for service, method, request_class, cs, ss in _all_rpcs():
        if method in PUBLIC:
            continue
        channel = mesh_channel(service)
        for name, metadata in forgeries.items():
            code = call(channel, method, request_class, cs, ss, metadata)
            if code in REFUSED:
                refused += 1
            else:
                accepted.append((method, name, code))
    assert not accepted, accepted
    assert refused >= 5 * 20  # every RPC of three services was tried


def test_bob_with_his_own_token_is_bob(mesh_channel, token):
    """Control: a direct call with a valid token acts as the token's user, header or not."""
    stub = status_pb2_grpc.StatusServiceStub(mesh_channel("status"))
    reply = stub.GetUserInfo(status_pb2.GetUserInfoRequest(system_name="local"),
                             metadata=[("authorization", f"Bearer {token('bob')}")], timeout=20)
    assert reply.user.name == "bob"
    reply = stub.GetUserInfo(status_pb2.GetUserInfoRequest(system_name="local"),
                             metadata=[("authorization", f"bearer {token('bob')}"),
                                       ("x-firecrest-username", "bob")], timeout=20)
    assert reply.user.name == "bob"


def test_liveness_is_public_but_only_for_mesh_peers(mesh_channel):
    stub = status_pb2_grpc.StatusServiceStub(mesh_channel("status"))
    stub.GetLiveness(status_pb2.GetLivenessRequest(), timeout=10)
    stub = status_pb2_grpc.StatusServiceStub(mesh_channel("status", mesh_pki.LAUNCHER))
    with pytest.raises(grpc.RpcError) as err:
        stub.GetLiveness(status_pb2.GetLivenessRequest(), timeout=10)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED


def _public_key() -> str:
    return ed25519.Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()


def _sign(channel, token: str, username: str):
    stub = certificator_pb2_grpc.CertificatorServiceStub(channel)
    return stub.SignCertificate(certificator_pb2.SignCertificateRequest(
        access_token=token, username=username, public_key=_public_key()), timeout=10)


@pytest.mark.parametrize("component", [mesh_pki.GATEWAY, mesh_pki.LAUNCHER])
def test_certificator_admits_only_services(mesh_channel, token, component):
    with pytest.raises(grpc.RpcError) as err:
        _sign(mesh_channel("certificator", component), token("alice"), "alice")
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED


@pytest.mark.parametrize("service", list(API_FILES))
def test_certificator_signs_for_a_service_only_the_tokens_user(mesh_channel, token, service):
    channel = mesh_channel("certificator", service)
    assert _sign(channel, token("alice"), "alice").certificate  # control: the service is admitted
    with pytest.raises(grpc.RpcError) as err:
        _sign(channel, token("bob"), "alice")
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.RpcError) as err:
        _sign(channel, "not-a-token", HEALTH_ACCOUNT)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
