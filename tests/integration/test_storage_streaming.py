"""Direct streaming through the real gateway (REST and native gRPC) as alice and bob: round trips
with SHA-256, resume of a cut upload and of a download, a wrong declared digest, another user's
files, hostile paths, and 1 GiB each way with the peak memory of every mesh process (`-m "not
large"` leaves those two out)."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import httpx
import pytest

from firecrest_mesh.storage.v1 import storage_pb2, storage_pb2_grpc
from google.api import httpbody_pb2

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


def test_rest_round_trip_with_sha256(api, workdir):
    data = b"".join(blocks(3)) + b"tail"
    path = f"{workdir()}/round trip.bin"
    r = put(api(), path, data, sha256=hashlib.sha256(data).hexdigest().upper(), size=len(data))
    assert r.status_code == 201, r.text
    assert r.json() == {"path": path, "size": str(len(data)), "sha256": hashlib.sha256(data).hexdigest()}
    r, body = fetch(api(), path)
    assert r.status_code == 200, r.text
    assert body == data
    assert r.headers["x-firecrest-sha256"] == hashlib.sha256(data).hexdigest()
    assert r.headers["x-firecrest-size"] == r.headers["x-firecrest-length"] == str(len(data))
    assert partial_status(api(), path)["partialSize"] == "0"
    listing = api().get(f"{OPS}/ls", params={"path": path.rsplit("/", 1)[0], "showHidden": True}).json()
    assert [e["name"] for e in listing["output"]] == ["round trip.bin"]  # no partial left behind


def test_download_resumes_from_an_offset(api, workdir):
    data = b"".join(blocks(2))
    path = f"{workdir()}/f.bin"
    assert put(api(), path, data).status_code == 201
    r, body = fetch(api(), path, offset=MIB + 5)
    assert r.status_code == 200, r.text
    assert body == data[MIB + 5:]
    assert r.headers["x-firecrest-offset"] == str(MIB + 5)
    assert r.headers["x-firecrest-length"] == str(len(data) - MIB - 5)
    assert r.headers["x-firecrest-sha256"] == hashlib.sha256(data).hexdigest()  # of the whole file
    r, body = fetch(api(), path, offset=len(data))
    assert (r.status_code, body) == (200, b"")
    r, _ = fetch(api(), path, offset=len(data) + 1)
    assert r.status_code == 400 and "beyond the end" in r.json()["message"]


def test_native_grpc_round_trip(grpc_channel, grpc_metadata, workdir):
    stub = storage_pb2_grpc.StorageServiceStub(grpc_channel)
    data = b"".join(blocks(5, size=MIB // 2))
    path = f"{workdir()}/grpc.bin"

    def requests():
        yield storage_pb2.UploadStreamRequest(system_name=SYSTEM, path=path,
                                              sha256=hashlib.sha256(data).hexdigest())
        for start in range(0, len(data), 300_000):
            yield storage_pb2.UploadStreamRequest(data=httpbody_pb2.HttpBody(data=data[start:start + 300_000]))

    answer = stub.UploadStream(requests(), metadata=grpc_metadata())
    assert (answer.path, answer.size, answer.sha256) == (path, len(data), hashlib.sha256(data).hexdigest())
    call = stub.DownloadStream(storage_pb2.DownloadStreamRequest(system_name=SYSTEM, path=path, offset=10),
                               metadata=grpc_metadata())
    headers = dict(call.initial_metadata())
    assert b"".join(m.data for m in call) == data[10:]
    assert headers["x-firecrest-sha256"] == hashlib.sha256(data).hexdigest()
    status = stub.GetUploadStreamStatus(storage_pb2.GetUploadStreamStatusRequest(system_name=SYSTEM, path=path),
                                        metadata=grpc_metadata())
    assert (status.partial_size, status.in_progress) == (0, False)


def test_cut_upload_leaves_the_target_and_resumes(api, workdir):
    """The client stops mid-stream: the old file stays, the partial holds what arrived, and the rest sent
    from that offset completes a correct file."""
    path = f"{workdir()}/resumed.bin"
    assert put(api(), path, b"old content").status_code == 201
    total = 24
    data_digest = digest_of(blocks(total))

    class Cut(Exception):
        pass

    def first_part():
        yield from blocks(10)
        time.sleep(1)  # let the bytes reach the system before the connection goes
        raise Cut()

    with pytest.raises(Cut):
        put(api(), path, first_part(), sha256=data_digest)
    deadline = time.monotonic() + 30
    while (status := partial_status(api(), path))["inProgress"] and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not status["inProgress"]
    have = int(status["partialSize"])
    assert 0 < have <= 10 * MIB
    assert fetch(api(), path)[1] == b"old content"  # untouched
    # A wrong offset is refused with the one to use.
    r = put(api(), path, b"x", offset=have + 1)
    assert r.status_code == 409 and f"resume from offset {have}" in r.json()["message"], r.text
    rest = b"".join(blocks(total))[have:]
    r = put(api(), path, rest, offset=have, sha256=data_digest, size=total * MIB)
    assert r.status_code == 201, r.text
    assert r.json()["sha256"] == data_digest
    r, body = fetch(api(), path)
    assert hashlib.sha256(body).hexdigest() == data_digest
    assert partial_status(api(), path) == {"partialPath": f"{path.rsplit('/', 1)[0]}/.resumed.bin.firecrest-partial",
                                           "partialSize": "0", "inProgress": False}


def test_short_stream_with_a_declared_size_keeps_the_partial(api, workdir):
    path = f"{workdir()}/short.bin"
    r = put(api(), path, b"a" * 1000, size=5000)
    assert r.status_code == 400 and "resume from offset 1000" in r.json()["message"], r.text
    assert fetch(api(), path)[0].status_code == 404
    assert put(api(), path, b"b" * 4000, offset=1000, size=5000).status_code == 201
    assert fetch(api(), path)[1] == b"a" * 1000 + b"b" * 4000


def test_wrong_sha256_leaves_the_target_untouched(api, workdir):
    path = f"{workdir()}/kept.bin"
    assert put(api(), path, b"original").status_code == 201
    r = put(api(), path, b"replacement", sha256="0" * 64)
    assert r.status_code == 400 and "nothing was written" in r.json()["message"], r.text
    assert fetch(api(), path)[1] == b"original"
    assert partial_status(api(), path)["partialSize"] == "0"  # the bad partial is gone
    assert put(api(), path, b"x", sha256="not-a-digest").status_code == 400


def test_errors_of_the_target(api, workdir):
    folder = workdir()
    r = put(api(), folder, b"data")
    assert r.status_code == 400 and "Is a directory" in r.json()["message"]
    assert put(api(), f"{folder}/missing/f", b"data").status_code == 404
    assert fetch(api(), f"{folder}/missing")[0].status_code == 404
    assert fetch(api(), folder)[0].status_code == 400
    assert put(api(), "relative/path", b"data").status_code == 400
    assert put(api(), f"{folder}/f", b"data", offset=-1).status_code == 400


def test_bob_cannot_stream_alices_files(api, workdir):
    path = f"{workdir()}/secret.bin"
    assert put(api(), path, b"alice's data").status_code == 201
    r, body = fetch(api("bob"), path)
    assert r.status_code in (403, 404) and b"alice's data" not in body
    assert fetch(api("bob"), "/home/alice/.bashrc")[0].status_code in (403, 404)
    assert put(api("bob"), path, b"bob was here").status_code in (403, 404)
    assert put(api("bob"), "/home/alice/bob.txt", b"bob was here").status_code in (403, 404)
    assert api("bob").get(f"{STREAM}/status", params={"path": "/home/alice/x"}).status_code in (403, 404)
    assert fetch(api(), path)[1] == b"alice's data"
    assert api().get(f"{OPS}/stat", params={"path": "/home/alice/bob.txt"}).status_code == 404


@pytest.mark.parametrize("name", ["a;touch {marker}", "$(touch {marker})", "`touch {marker}`",
                                  "new\nline; touch {marker}", "' ; touch {marker}; '"])
def test_hostile_paths_run_nothing(api, workdir, name):
    folder = workdir()
    marker = f"{folder}/marker"
    path = f"{folder}/{name.format(marker=marker)}"
    r = put(api(), path, b"payload")
    assert r.status_code in (201, 400, 404), r.text
    if r.status_code == 201:
        assert fetch(api(), path)[1] == b"payload"  # a file of exactly that name
    fetch(api(), path)
    api().get(f"{STREAM}/status", params={"path": path})
    assert api().get(f"{OPS}/stat", params={"path": marker}).status_code == 404
    assert put(api(), f"{folder}/../escape", b"x").status_code == 400


def _service_pids(config) -> dict[str, int]:
    pids = {}
    for pid_file in Path(config.state("run")).glob("*.pid"):
        try:
            pid = int(pid_file.read_text())
            Path(f"/proc/{pid}/status").read_text()
        except (OSError, ValueError):
            continue
        pids[pid_file.stem] = pid
    return pids


def _peak_kib(pid: int) -> int | None:
    """VmHWM of `pid` in KiB; None when the process is gone (restarted meanwhile by someone else)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return None


PEAK_LIMIT_KIB = 100 * 1000 * 1000 // 1024  # 100 MB
# The other processes on a transfer's path (the gateway, the certificator) must not grow with it. The
# rest take no part in it (compute, utilities, SeaweedFS...): on the shared machine their size is set by
# other load (other tests, a soak); they are printed, not asserted.
GROWTH_LIMIT_KIB = {"envoy": 32 * 1024, "certificator": 8 * 1024}


def _rss_kib(pid: int) -> int | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    return next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))


@pytest.mark.large
def test_one_gib_up_and_down_in_bounded_memory(api, workdir, config):
    """1 GiB streamed up (REST, chunked from a generator) and down (REST, read in 1 MiB pieces), both
    checked by SHA-256. The storage service's peak resident memory during the transfers (VmHWM, reset
    before) stays under 100 MB; the gateway and the certificator do not grow by more than GROWTH_LIMIT_KIB."""
    pids = _service_pids(config)
    before = {}
    for name, pid in pids.items():
        try:
            Path(f"/proc/{pid}/clear_refs").write_text("5")  # resets VmHWM to the current RSS
        except OSError:
            continue
        before[name] = _rss_kib(pid)
    path = f"{workdir()}/one-gib.bin"
    expected = digest_of(blocks(1024))
    try:
        r = put(api(), path, blocks(1024), sha256=expected)
        assert r.status_code == 201, r.text
        assert r.json()["sha256"] == expected
        got, size = hashlib.sha256(), 0
        with api().stream("GET", STREAM, params={"path": path}, timeout=600) as r:
            assert r.status_code == 200
            assert r.headers["x-firecrest-sha256"] == expected
            for chunk in r.iter_raw(MIB):
                got.update(chunk)
                size += len(chunk)
        assert (size, got.hexdigest()) == (1 << 30, expected)
    finally:
        api().delete(f"{OPS}/rm", params={"path": path})
    peaks = {name: peak for name, pid in pids.items() if name in before and (peak := _peak_kib(pid)) is not None}
    print("\nRSS before → peak during 1 GiB up and down (MiB):",
          {n: f"{before[n] / 1024:.1f} → {k / 1024:.1f}" for n, k in sorted(peaks.items())})
    assert "storage" in peaks, "the storage service restarted during the transfers"
    assert peaks["storage"] < PEAK_LIMIT_KIB, f"storage's peak RSS {peaks['storage']} KiB is 100 MB or more"
    grown = {n: k - before[n] for n, k in peaks.items() if n in GROWTH_LIMIT_KIB and k - before[n] > GROWTH_LIMIT_KIB[n]}
    assert not grown, f"grew during the transfers (KiB): {grown}"
