"""The storage service's transfer routes (`/filesystem/{system}/transfer/*`) with hostile input on the
real stack: file names made of shell syntax through every transfer job (cp, mv, compress, extract, rm)
and S3 both ways run nothing and land where named; invalid paths are refused before any job.

Waiting for a job is pyfirecrest's own (`wait_for_job`, then the job's output read through
`ops/view`). The file is apart from test_storage_transfers.py so that its 42 transfer jobs take an
xdist worker of their own; the six hostile names run at once, each in a folder of its own.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.integration.storage_helpers import MIB, OPS, SYSTEM, TRANSFER, names, put_small


# --- hostile input -------------------------------------------------------------------------------

HOSTILE_NAMES = ["it's $(touch PWNED)", "`touch PWNED`", "semi; touch PWNED #", 'q"uote && touch PWNED',
                 "new\nline", "-rf"]


def test_hostile_paths_in_every_transfer_route_run_nothing(firecrest_client, api, workdir, tmp_path):
    """Each name in a folder of its own, the names at once (each name's jobs depend on each other, the
    names' do not): the same jobs and checks as one after the other, in a sixth of the time."""
    d = workdir()
    with ThreadPoolExecutor(len(HOSTILE_NAMES)) as pool:
        rounds = [pool.submit(_hostile_round, firecrest_client("alice"), api, d, tmp_path, i, name)
                  for i, name in enumerate(HOSTILE_NAMES)]
        for done in rounds:
            done.result()  # a failed round's assertion, raised here
    assert "PWNED" not in names(api, d) and "PWNED" not in names(api, "/home/alice")


def _hostile_round(client, api, d: str, tmp_path, i: int, name: str) -> None:
    sub = f"{d}/{i}"
    assert api().post(f"{OPS}/mkdir", json={"path": sub}).status_code == 201
    src = put_small(api, sub, name, name.encode())
    for route, body in (("cp", {"sourcePath": src, "targetPath": f"{src}.cp"}),
                        ("mv", {"sourcePath": f"{src}.cp", "targetPath": f"{src}.mv"}),
                        ("compress", {"sourcePath": src, "targetPath": f"{src}.tgz"})):
        r = api().post(f"{TRANSFER}/{route}", json=body)
        assert r.status_code == 201, (route, r.text)
        client._wait_for_transfer_job(r.json())
    assert api().post(f"{OPS}/mkdir", json={"path": f"{sub}/x {name}"}).status_code == 201
    r = api().post(f"{TRANSFER}/extract", json={"sourcePath": f"{src}.tgz", "targetPath": f"{sub}/x {name}"})
    assert r.status_code == 201, r.text
    client._wait_for_transfer_job(r.json())
    r = api().delete(f"{TRANSFER}/rm", params={"path": f"{src}.mv"})
    assert r.status_code == 200, r.text
    client._wait_for_transfer_job(r.json())
    # S3 both ways with the hostile name as target and source.
    client.upload(SYSTEM, _local(tmp_path, 1 * MIB + i), sub, f"{name}.big")
    client.download(SYSTEM, f"{sub}/{name}.big", str(tmp_path / f"back{i}"))
    assert (tmp_path / f"back{i}").read_bytes() == (tmp_path / f"in{1 * MIB + i}").read_bytes()
    assert names(api, sub) == {name, f"{name}.tgz", f"x {name}", f"{name}.big"}, name
    assert names(api, f"{sub}/x {name}") == {name}
    assert "PWNED" not in names(api, d) and "PWNED" not in names(api, "/home/alice")


def _local(tmp_path, size: int) -> str:
    path = tmp_path / f"in{size}"
    path.write_bytes(os.urandom(size))
    return str(path)


@pytest.mark.parametrize("path", ["relative/x", "/scratch/alice/../bob/x", "/etc/passwd", "/scratch/alice/a\x00b",
                                  ""])
def test_paths_refused_before_any_job(api, path):
    time.sleep(1)  # 8 calls per case: within the gateway's rate limit of transfers per user (10/s)
    for route, body in (("cp", {"sourcePath": path, "targetPath": "/scratch/alice/t"}),
                        ("cp", {"sourcePath": "/scratch/alice/t", "targetPath": path}),
                        ("mv", {"sourcePath": path, "targetPath": "/scratch/alice/t"}),
                        ("compress", {"source_path": path, "target_path": "/scratch/alice/t.tgz"}),
                        ("extract", {"source_path": "/scratch/alice/t.tgz", "target_path": path}),
                        ("upload", {"path": path, "transfer_directives": {"transfer_method": "s3", "file_size": 1}}),
                        ("download", {"source_path": path, "transfer_directives": {"transferMethod": "s3"}})):
        r = api().post(f"{TRANSFER}/{route}", json=body)
        assert r.status_code == 400, (route, path, r.text)
    r = api().delete(f"{TRANSFER}/rm", params={"path": path})
    assert r.status_code == 400, r.text
