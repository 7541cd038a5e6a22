"""The certificator against the real identity provider and the real sshd of the local cluster.

Certificates are requested over gRPC exactly as the services do, then used for real SSH logins.
"""

from __future__ import annotations

import subprocess
import time

import grpc
import paramiko
import pytest
from jose import jwt

from firecrest_mesh.certificator.v1 import certificator_pb2, certificator_pb2_grpc
from services.common import mesh_tls
from services.common.config import MAX_CERTIFICATE_LIFETIME
from services.common.errors import SshConnectionFailed
from services.common.ssh.certificates import UserCertificate, _new_key_pair
from services.common.ssh.channel import execute
from services.common.ssh.transport import open_transport


@pytest.fixture(scope="module")
def certificator(config):
    channel = mesh_tls.channel(config, "compute", "certificator")  # as the services call it
    yield certificator_pb2_grpc.CertificatorServiceStub(channel)
    channel.close()


@pytest.fixture(scope="module")
def system(config):
    return config.system("local")


def sign(certificator, token, username, **fields):
    key, public = _new_key_pair()
    reply = certificator.SignCertificate(certificator_pb2.SignCertificateRequest(
        access_token=token, username=username, public_key=public, **fields), timeout=10)
    key.load_certificate(reply.certificate)
    return UserCertificate(key, reply.valid_before.seconds), reply


def describe(certificate_line: str, tmp_path) -> str:
    path = tmp_path / "cert.pub"
    path.write_text(certificate_line + "\n")
    return subprocess.run(["ssh-keygen", "-L", "-f", str(path)], capture_output=True, text=True,
                          check=True).stdout


def test_session_certificate_is_restricted(certificator, token, tmp_path):
    _, reply = sign(certificator, token("alice"), "alice")
    text = describe(reply.certificate, tmp_path)
    assert "Type: ssh-ed25519-cert-v01@openssh.com user certificate" in text
    principals = text.split("Principals:")[1].split("Critical Options:")[0].split()
    assert principals == ["alice"]
    extensions = text.split("Extensions:")[1].split()
    assert extensions == ["(none)"], "no pty, port, agent, X11 forwarding or user rc"
    assert reply.valid_before.seconds - reply.valid_after.seconds <= MAX_CERTIFICATE_LIFETIME
    assert "source-address 127.0.0.1/32" in text


def test_certificate_for_alice_logs_in_as_alice_only(certificator, token, system):
    cert, _ = sign(certificator, token("alice"), "alice")
    transport = open_transport(system, "alice", cert)
    try:
        result = execute(transport, "id -un", None, 10, None)
        assert result.text().strip() == "alice"
    finally:
        transport.close()
    with pytest.raises(SshConnectionFailed, match="login refused"):
        open_transport(system, "bob", cert)


def test_expired_certificate_is_refused_by_sshd(certificator, token, system):
    cert, reply = sign(certificator, token("alice"), "alice", validity_seconds=1)
    while time.time() < reply.valid_before.seconds + 1:
        time.sleep(0.2)
    with pytest.raises(SshConnectionFailed, match="login refused"):
        open_transport(system, "alice", cert)


def test_command_certificate_runs_only_its_command(certificator, token, system):
    cert, _ = sign(certificator, token("alice"), "alice", force_command="echo forced-command")
    transport = open_transport(system, "alice", cert)
    try:
        result = execute(transport, "touch /home/alice/should-not-exist; id -un", None, 10, None)
        assert result.text().strip() == "forced-command"
        result = execute(transport, "cat /etc/hostname", None, 10, None)
        assert result.text().strip() == "forced-command"
    finally:
        transport.close()
    check = subprocess.run(["test", "-e", "/home/alice/should-not-exist"])
    assert check.returncode != 0


def test_no_pty_is_granted(certificator, token, system):
    cert, _ = sign(certificator, token("alice"), "alice")
    transport = open_transport(system, "alice", cert)
    try:
        channel = transport.open_session()
        with pytest.raises(paramiko.SSHException):
            channel.get_pty()
    finally:
        transport.close()


def test_username_must_match_the_token(certificator, token):
    with pytest.raises(grpc.RpcError) as err:
        sign(certificator, token("alice"), "bob")
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED


@pytest.mark.parametrize("bad_token", ["", "not-a-jwt", "eyJhbGciOiJub25lIn0.e30."])
def test_malformed_token_is_refused(certificator, bad_token):
    with pytest.raises(grpc.RpcError) as err:
        sign(certificator, bad_token, "alice")
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_token_signed_by_another_key_is_refused(certificator, token):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    real_claims = jwt.get_unverified_claims(token("alice"))
    header = jwt.get_unverified_header(token("alice"))
    foreign = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = foreign.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    forged = jwt.encode(real_claims, pem, algorithm="RS256", headers={"kid": header["kid"]})
    with pytest.raises(grpc.RpcError) as err:
        sign(certificator, forged, "alice")
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_public_key_must_be_an_ssh_public_key(certificator, token):
    with pytest.raises(grpc.RpcError) as err:
        certificator.SignCertificate(certificator_pb2.SignCertificateRequest(
            access_token=token("alice"), username="alice", public_key="ssh-ed25519 garbage"), timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
