"""The site's SSH certificate authority key: generated on first start into the state folder.

Only the certificator reads the private key. `ca.pub` is what the login nodes' sshd trusts
(`TrustedUserCAKeys`).
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519


def ca_paths(state_dir: Path) -> tuple[Path, Path]:
    folder = state_dir / "certificator"
    return folder / "ca", folder / "ca.pub"


def load_or_create_ca(state_dir: Path) -> ed25519.Ed25519PrivateKey:
    """Loads the CA key, creating it (mode 600, folder 700) when it does not exist yet."""
    private_path, public_path = ca_paths(state_dir)
    if private_path.exists():
        key = serialization.load_ssh_private_key(private_path.read_bytes(), password=None)
        if not isinstance(key, ed25519.Ed25519PrivateKey):
            raise ValueError(f"{private_path}: expected an Ed25519 CA key")
    else:
        private_path.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(private_path.parent, 0o700)
        key = ed25519.Ed25519PrivateKey.generate()
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption())
        fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
    public_line = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                                serialization.PublicFormat.OpenSSH) + b" firecrest-mesh-ca\n"
    if not public_path.exists() or public_path.read_bytes() != public_line:
        tmp = public_path.with_suffix(".tmp")
        tmp.write_bytes(public_line)
        os.chmod(tmp, 0o644)
        tmp.replace(public_path)
    # sshd (running as root, reading TrustedUserCAKeys) must be able to traverse to ca.pub.
    os.chmod(private_path.parent, 0o755)
    os.chmod(private_path, 0o600)
    return key
