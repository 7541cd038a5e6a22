"""A client of the direct-streaming routes for the tests (REST through the gateway): deterministic
data generated block by block, PUT/GET of a path, the upload status (tried again on 429)."""

from __future__ import annotations

import hashlib
import time

import httpx

SYSTEM = "local"
STREAM = f"/filesystem/{SYSTEM}/transfer/stream"
OPS = f"/filesystem/{SYSTEM}/ops"
MIB = 1 << 20


def blocks(count: int, size: int = MIB, seed: bytes = b"firecrest"):
    """`count` deterministic blocks of `size` bytes (each differs), generated one at a time."""
    base = hashlib.sha256(seed).digest() * (size // 32)
    for i in range(count):
        yield i.to_bytes(8, "big") + base[8:]


def digest_of(chunks) -> str:
    h = hashlib.sha256()
    for c in chunks:
        h.update(c)
    return h.hexdigest()


def put(api, path: str, content, **params) -> httpx.Response:
    return api.put(STREAM, params={"path": path, **params}, content=content,
                   headers={"content-type": "application/octet-stream"}, timeout=600)


def fetch(api, path: str, **params) -> tuple[httpx.Response, bytes]:
    r = api.get(STREAM, params={"path": path, **params}, timeout=600)
    return r, r.content


def partial_status(api, path: str) -> dict:
    for _ in range(10):  # alice's budget of transfer calls is shared with the other tests running as her
        r = api.get(f"{STREAM}/status", params={"path": path})
        if r.status_code != 429:
            break
        time.sleep(1)
    assert r.status_code == 200, r.text
    return r.json()
