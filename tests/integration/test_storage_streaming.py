"""Direct streaming through the real gateway (REST and native gRPC) as alice and bob: round trips
with SHA-256, resume of a cut upload and of a download, a wrong declared digest, another user's
files, hostile paths. 1 GiB each way with the services' peak memory: test_storage_streaming_large.py."""

from __future__ import annotations

import hashlib
import threading
import time

import pytest

from firecrest_mesh.storage.v1 import storage_pb2, storage_pb2_grpc
from google.api import httpbody_pb2

from tests.integration.stream_client import MIB, OPS, STREAM, SYSTEM, blocks, digest_of, fetch, partial_status, put


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


def test_cancelled_grpc_upload_leaves_the_target_and_resumes(api, grpc_channel, grpc_metadata, workdir):
    """A native gRPC client cancels its upload mid-stream: the target stays as it was; the rest, sent
    from the reported offset, completes the file."""
    stub = storage_pb2_grpc.StorageServiceStub(grpc_channel)
    path = f"{workdir()}/cancelled.bin"
    assert put(api(), path, b"before").status_code == 201
    data = b"".join(blocks(8))
    sent = threading.Event()

    def requests():
        yield storage_pb2.UploadStreamRequest(system_name=SYSTEM, path=path)
        for start in range(0, 4 * MIB, MIB):
            yield storage_pb2.UploadStreamRequest(data=httpbody_pb2.HttpBody(data=data[start:start + MIB]))
        sent.set()
        time.sleep(30)  # never ends by itself: the call is cancelled meanwhile

    call = stub.UploadStream.future(requests(), metadata=grpc_metadata())
    assert sent.wait(60)
    time.sleep(1)
    call.cancel()
    deadline = time.monotonic() + 30
    while (status := partial_status(api(), path))["inProgress"] and time.monotonic() < deadline:
        time.sleep(0.5)
    have = int(status["partialSize"])
    assert not status["inProgress"] and 0 < have <= 4 * MIB
    assert fetch(api(), path)[1] == b"before"

    def rest():
        yield storage_pb2.UploadStreamRequest(system_name=SYSTEM, path=path, offset=have,
                                              sha256=hashlib.sha256(data).hexdigest(), size=len(data))
        for start in range(have, len(data), MIB):
            yield storage_pb2.UploadStreamRequest(data=httpbody_pb2.HttpBody(data=data[start:start + MIB]))

    answer = stub.UploadStream(rest(), metadata=grpc_metadata())
    assert (answer.size, answer.sha256) == (len(data), hashlib.sha256(data).hexdigest())
    assert hashlib.sha256(fetch(api(), path)[1]).hexdigest() == answer.sha256


def test_one_upload_per_target_at_a_time(api, workdir):
    """While an upload to a path runs, the status says so and a second upload to it answers 409."""
    path = f"{workdir()}/busy.bin"
    started, release = threading.Event(), threading.Event()

    def slow():
        yield b"a" * MIB
        started.set()
        release.wait(60)
        yield b"b" * MIB

    answers = []
    first = threading.Thread(target=lambda: answers.append(put(api(), path, slow())))
    first.start()
    try:
        assert started.wait(30)
        deadline = time.monotonic() + 30
        while not partial_status(api(), path)["inProgress"] and time.monotonic() < deadline:
            time.sleep(0.5)
        assert partial_status(api(), path)["inProgress"]
        r = put(api(), path, b"other")
        assert r.status_code == 409 and "in progress" in r.json()["message"], r.text
    finally:
        release.set()
        first.join(60)
    assert answers[0].status_code == 201, answers[0].text
    assert fetch(api(), path)[1] == b"a" * MIB + b"b" * MIB
