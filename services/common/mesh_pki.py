"""The embedded mesh PKI: a CA and one certificate per component, generated into the state folder.

Called by the launcher (`scripts/mesh.py up`) before any process starts, when `mesh_tls.generate` is
true. Idempotent: existing files are kept while they are valid for at least RENEW_BEFORE_DAYS more
days and signed by the current CA; missing or expiring ones are (re)made. Private keys are written
0600 and never leave the state folder. With an external PKI (`generate: false`) nothing here runs;
`missing_files()` still tells the launcher what the site must provide.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from services.common.config import Config

CA_VALID_DAYS = 365
LEAF_VALID_DAYS = 30
RENEW_BEFORE_DAYS = 7
GATEWAY = "envoy"      # the gateway's identity
LAUNCHER = "launcher"  # the launcher's identity: readiness checks (gRPC health) only


def components(config: Config) -> list[str]:
    """Every identity that needs a certificate: the gateway, the launcher and each service."""
    return [GATEWAY, LAUNCHER, *config.services]


def ca_file(config: Config) -> Path:
    return config.mesh_tls.dir / "ca.crt"


def cert_file(config: Config, component: str) -> Path:
    return config.mesh_tls.dir / f"{component}.crt"


def key_file(config: Config, component: str) -> Path:
    return config.mesh_tls.dir / f"{component}.key"


def missing_files(config: Config) -> list[Path]:
    wanted = [ca_file(config)] + [f for c in components(config) for f in (cert_file(config, c), key_file(config, c))]
    return [f for f in wanted if not f.exists()]


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _fresh(cert: x509.Certificate) -> bool:
    return cert.not_valid_after_utc - _now() > datetime.timedelta(days=RENEW_BEFORE_DAYS)


def _load_ca(directory: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None:
    try:
        cert = x509.load_pem_x509_certificate((directory / "ca.crt").read_bytes())
        key = serialization.load_pem_private_key((directory / "ca.key").read_bytes(), password=None)
    except (OSError, ValueError):
        return None
    return (cert, key) if _fresh(cert) else None


def _make_ca(directory: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "firecrest-mesh CA")])
    now = _now()
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=CA_VALID_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=True, crl_sign=True,
                                         encipher_only=False, decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))
    _write_private(directory / "ca.key", _pem_key(key))
    (directory / "ca.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert, key


def _leaf_ok(path: Path, ca: x509.Certificate) -> bool:
    try:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
        cert.verify_directly_issued_by(ca)
    except (OSError, ValueError, TypeError, Exception):  # unreadable, foreign or bad signature
        return False
    return _fresh(cert)


def _make_leaf(directory: Path, component: str, ca_cert: x509.Certificate,
               ca_key: ec.EllipticCurvePrivateKey) -> None:
    """A certificate for `component`: its name as CN and DNS SAN (the identity peers check), usable
    as TLS server and client. 127.0.0.1 is a SAN too, so plain address checks also pass."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, component)]))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=LEAF_VALID_DAYS))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName(component), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                  ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    _write_private(directory / f"{component}.key", _pem_key(key))
    (directory / f"{component}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def ensure(config: Config) -> list[str]:
    """Creates what is missing or expiring; returns the names of the files written."""
    directory = config.mesh_tls.dir
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    written = []
    ca = _load_ca(directory)
    if ca is None:
        ca = _make_ca(directory)
        written.append("ca")
    for component in components(config):
        if not (_leaf_ok(directory / f"{component}.crt", ca[0]) and (directory / f"{component}.key").exists()):
            _make_leaf(directory, component, *ca)
            written.append(component)
    return written
