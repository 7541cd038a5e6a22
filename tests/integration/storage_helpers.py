"""What the storage tests share (test_storage_transfers.py, test_storage_transfer_inputs.py): the
routes, and files put and listed through the utilities routes as a user."""

from __future__ import annotations

SYSTEM = "local"
OPS = f"/filesystem/{SYSTEM}/ops"
TRANSFER = f"/filesystem/{SYSTEM}/transfer"
MIB = 1 << 20


def names(api, path: str, user: str = "alice") -> set[str]:
    r = api(user).get(f"{OPS}/ls", params={"path": path, "showHidden": "true"})
    assert r.status_code == 200, r.text
    return {e["name"] for e in r.json()["output"]}


def put_small(api, directory: str, name: str, data: bytes, user: str = "alice") -> str:
    r = api(user).post(f"{OPS}/upload", params={"path": directory}, files={"file": (name, data)})
    assert r.status_code == 204, r.text
    return f"{directory}/{name}"
