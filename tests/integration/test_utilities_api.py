"""Integration tests of the utilities service (`/filesystem/{system}/ops/*`) through the real gateway,
with real tokens, against the local cluster's sshd: pyfirecrest's v2 client unchanged, plus the raw
HTTP status codes and error bodies FirecREST v2 serves.

Every test works in its own folder under /scratch/<user>, created through the API and removed
afterwards. Files the API cannot make (large files, FIFOs, 10,000 entries) are made as root with the
user's ownership; the cluster runs on this machine.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import tarfile
import uuid

import pytest
from firecrest.FirecrestException import FirecrestException

SYSTEM = "local"
OPS = f"/filesystem/{SYSTEM}/ops"
LIMIT = 5 * 1024 * 1024  # config/local.yaml max_ops_file_size


def _chown_tree(path: str, user: str) -> None:
    pw = pwd.getpwnam(user)
    os.lchown(path, pw.pw_uid, pw.pw_gid)
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            os.lchown(os.path.join(root, name), pw.pw_uid, pw.pw_gid)


@pytest.fixture
def client(firecrest_client):
    return firecrest_client("alice")


# --- pyfirecrest's v2 client, unchanged ---------------------------------------------------------------

def test_pyfirecrest_upload_download_checksum_view_head_tail(client, workdir, tmp_path):
    d = workdir()
    data = os.urandom(700_000) + b"\nline a\nline b\nline c\n"
    local = tmp_path / "up.bin"
    local.write_bytes(data)
    assert client.upload(SYSTEM, str(local), d, "data.bin") is None

    back = tmp_path / "down.bin"
    client.download(SYSTEM, f"{d}/data.bin", str(back))
    assert back.read_bytes() == data
    assert client.checksum(SYSTEM, f"{d}/data.bin") == {
        "algorithm": "SHA256", "checksum": hashlib.sha256(data).hexdigest()}
    assert client.stat(SYSTEM, f"{d}/data.bin")["size"] == len(data)

    text = "first\nsecond\nthird\nfourth\n"
    (tmp_path / "t.txt").write_text(text)
    client.upload(SYSTEM, str(tmp_path / "t.txt"), d, "t.txt")
    assert client.view(SYSTEM, f"{d}/t.txt") == text
    assert client.file_type(SYSTEM, f"{d}/t.txt") == "ASCII text"
    assert client.head(SYSTEM, f"{d}/t.txt", num_lines=2) == {
        "content": "first\nsecond\n", "contentType": "lines", "startPosition": 0, "endPosition": 2}
    assert client.head(SYSTEM, f"{d}/t.txt", num_bytes=3, exclude_trailing=True)["content"] == text[:-3]
    assert client.tail(SYSTEM, f"{d}/t.txt", num_lines=1) == {
        "content": "fourth\n", "contentType": "lines", "startPosition": -1, "endPosition": -1}
    assert client.tail(SYSTEM, f"{d}/t.txt", num_lines=3, exclude_beginning=True)["content"] == \
        "third\nfourth\n"
    assert client.head(SYSTEM, f"{d}/t.txt")["content"] == text  # default: 10 lines


def test_pyfirecrest_mkdir_symlink_ls_stat_chmod_chown_rm(client, workdir):
    d = workdir()
    made = client.mkdir(SYSTEM, f"{d}/a/b/c", create_parents=True)
    assert (made["name"], made["type"], made["user"]) == (f"{d}/a/b/c", "d", "alice")
    link = client.symlink(SYSTEM, f"{d}/a/b", f"{d}/link")["output"]
    assert (link["name"], link["type"], link["linkTarget"]) == (f"{d}/link", "l", f"{d}/a/b")
    client.mkdir(SYSTEM, f"{d}/.hidden")

    names = {f["name"]: f for f in client.list_files(SYSTEM, d)}
    assert set(names) == {"a", "link"}
    assert isinstance(names["a"]["size"], str) and names["a"]["permissions"].startswith("rwx")
    assert {f["name"] for f in client.list_files(SYSTEM, d, show_hidden=True)} == {"a", "link", ".hidden"}
    assert {f["name"] for f in client.list_files(SYSTEM, d, recursive=True)} == \
        {"a", "a/b", "a/b/c", "link"}
    uid = str(pwd.getpwnam("alice").pw_uid)
    assert {f["user"] for f in client.list_files(SYSTEM, d, numeric_uid=True)} == {uid}
    [as_link] = client.list_files(SYSTEM, f"{d}/link")
    assert as_link["type"] == "l"
    assert {f["name"] for f in client.list_files(SYSTEM, f"{d}/link", dereference=True)} == {"c"}

    st = client.stat(SYSTEM, f"{d}/link")
    assert st["mode"] & 0o170000 == 0o120000 and st["uid"] == int(uid)
    assert client.stat(SYSTEM, f"{d}/link", dereference=True)["mode"] & 0o170000 == 0o040000

    assert client.chmod(SYSTEM, f"{d}/a", "750")["permissions"] == "rwxr-x---"
    owned = client.chown(SYSTEM, f"{d}/a", "alice", "alice")
    assert (owned["user"], owned["group"]) == ("alice", "alice")

    client.rm(SYSTEM, f"{d}/a")
    assert {f["name"] for f in client.list_files(SYSTEM, d)} == {"link"}


@pytest.mark.parametrize("compression, suffix", [("gzip", "tar.gz"), ("bzip2", "tar.bz2"),
                                                  ("xz", "tar.xz"), ("none", "tar")])
def test_pyfirecrest_compress_extract_round_trip(client, workdir, tmp_path, compression, suffix):
    d = workdir()
    client.mkdir(SYSTEM, f"{d}/src/sub", create_parents=True)
    for name, content in (("keep.txt", b"k"), ("sub/deep.txt", b"d"), ("skip.log", b"s")):
        (tmp_path / "f").write_bytes(content)
        directory, _, base = f"{d}/src/{name}".rpartition("/")
        client.upload(SYSTEM, str(tmp_path / "f"), directory, base)

    client.compress(SYSTEM, f"{d}/src", f"{d}/all.{suffix}", compression=compression)
    client.mkdir(SYSTEM, f"{d}/out")
    client.extract(SYSTEM, f"{d}/all.{suffix}", f"{d}/out", compression=compression)
    assert {f["name"] for f in client.list_files(SYSTEM, f"{d}/out", recursive=True)} == \
        {"src", "src/keep.txt", "src/skip.log", "src/sub", "src/sub/deep.txt"}
    assert client.view(SYSTEM, f"{d}/out/src/sub/deep.txt") == "d"

    client.compress(SYSTEM, f"{d}/src", f"{d}/txt.{suffix}", compression=compression,
                    match_pattern=r".*\.txt")
    with tarfile.open(f"{d}/txt.{suffix}") as archive:  # the cluster is this machine
        assert sorted(archive.getnames()) == ["./keep.txt", "./sub/deep.txt"]


# --- wire details: status codes and error bodies ------------------------------------------------------

def test_missing_path_is_404_with_the_v2_message(api, workdir):
    d = workdir()
    for route in ("ls", "stat", "head", "tail", "view", "checksum", "file", "download"):
        r = api().get(f"{OPS}/{route}", params={"path": f"{d}/missing"})
        assert r.status_code == 404, (route, r.text)
        body = r.json()
        assert body["message"].startswith("Remote process failed with exit status:1 and error message:")
        assert "No such file or directory" in body["message"] and body["user"] == "alice"
    r = api().delete(f"{OPS}/rm", params={"path": f"{d}/missing"})
    assert r.status_code == 404 and "No such file or directory" in r.json()["message"]


def test_download_missing_raises_file_not_found_in_pyfirecrest(client, workdir, tmp_path):
    with pytest.raises(FileNotFoundError):
        client.download(SYSTEM, f"{workdir()}/nope", str(tmp_path / "x"))


@pytest.mark.parametrize("path, message", [
    ("/etc/passwd", "does not match any of the defined filesystem paths"),
    ("home/alice", "is not an absolute path"),
    ("/home/alice/../../etc/passwd", "'..'"),
])
def test_paths_outside_the_filesystems_are_400(api, path, message):
    for method, route, kwargs in (("GET", "ls", {"params": {"path": path}}),
                                  ("GET", "download", {"params": {"path": path}}),
                                  ("POST", "mkdir", {"json": {"sourcePath": path}}),
                                  ("PUT", "chmod", {"json": {"path": path, "mode": "777"}})):
        r = api().request(method, f"{OPS}/{route}", **kwargs)
        assert r.status_code == 400, (route, r.text)
        assert message in r.json()["message"]


def test_symlink_target_and_archive_target_are_checked_too(api, workdir):
    d = workdir()
    r = api().post(f"{OPS}/symlink", json={"path": f"{d}/x", "linkPath": "/tmp/evil"})
    assert r.status_code == 400
    r = api().post(f"{OPS}/compress", json={"path": d, "targetPath": "/tmp/evil.tgz"})
    assert r.status_code == 400


def test_bob_gets_403_on_alices_private_folder(api, workdir, firecrest_client):
    d = workdir("alice")
    r = api("alice").post(f"{OPS}/mkdir", json={"path": f"{d}/private"})
    assert r.status_code == 201
    for route in ("ls", "stat", "checksum", "view", "download"):
        r = api("bob").get(f"{OPS}/{route}", params={"path": f"{d}/private"})
        assert r.status_code == 403, (route, r.text)
        assert "Permission denied" in r.json()["message"] and r.json()["user"] == "bob"
    r = api("bob").delete(f"{OPS}/rm", params={"path": d})
    assert r.status_code == 403
    with pytest.raises(FirecrestException) as exc:
        firecrest_client("bob").list_files(SYSTEM, "/scratch/alice")
    assert exc.value.responses[-1].status_code == 403


def test_a_symlink_cannot_reach_past_the_users_own_permissions(api, workdir):
    alice_dir, bob_dir = workdir("alice"), workdir("bob")
    secret = f"{alice_dir}/secret.txt"
    r = api("alice").post(f"{OPS}/upload", params={"path": alice_dir},
                          files={"file": ("secret.txt", b"alice only")})
    assert r.status_code == 204
    r = api("bob").post(f"{OPS}/symlink", json={"sourcePath": secret, "linkPath": f"{bob_dir}/peek"})
    assert r.status_code == 201 and r.json()["output"]["linkTarget"] == secret
    for route in ("view", "download", "checksum", "head"):
        r = api("bob").get(f"{OPS}/{route}", params={"path": f"{bob_dir}/peek"})
        assert r.status_code == 403, (route, r.text)
    r = api("bob").get(f"{OPS}/stat", params={"path": f"{bob_dir}/peek", "dereference": "true"})
    assert r.status_code == 403
    r = api("bob").post(f"{OPS}/compress", json={"path": f"{bob_dir}/peek", "targetPath": f"{bob_dir}/p.tgz",
                                                 "dereference": True})
    assert r.status_code == 403 and "Permission denied" in r.json()["message"], r.text
    # ... while alice reads her file through bob's link target path directly.
    assert api("alice").get(f"{OPS}/view", params={"path": secret}).json() == {"output": "alice only"}


def test_hostile_names_are_literal_and_nothing_runs(api, workdir):
    d = workdir()
    marker = f"utilities-injection-{uuid.uuid4().hex[:8]}"
    # Commands run in the user's home; an absolute marker too, through a three-level path.
    places = [f"/tmp/{marker}", f"/home/alice/{marker}", f"{d}/{marker}"]
    hostile_dir = f"{d}/$(touch /tmp/{marker});x"
    r = api().post(f"{OPS}/mkdir", json={"sourcePath": hostile_dir, "parent": True})
    assert r.status_code == 201 and r.json()["output"]["name"] == hostile_dir
    names = ["-rf", f"`touch {marker}`", f"a;touch {marker}", f"$(touch {marker})", "new\nline", "q'\"s",
             "*", "--help", "caf\u00e9 \u2603"]
    for name in names:
        r = api().post(f"{OPS}/upload", params={"path": d}, files={"file": (name, name.encode())})
        assert r.status_code == 204, (name, r.text)
    listed = {f["name"] for f in api().get(f"{OPS}/ls", params={"path": d}).json()["output"]}
    assert listed == {"$(touch ", *names}
    recursive = {f["name"] for f in api().get(f"{OPS}/ls", params={"path": d, "recursive": "true"})
                 .json()["output"]}
    assert f"$(touch /tmp/{marker});x" in recursive
    assert api().get(f"{OPS}/stat", params={"path": hostile_dir}).status_code == 200
    for name in names:
        path = f"{d}/{name}"
        assert api().get(f"{OPS}/view", params={"path": path}).json()["output"] == name
        assert api().get(f"{OPS}/checksum", params={"path": path}).json()["output"]["checksum"] == \
            hashlib.sha256(name.encode()).hexdigest()
        assert api().get(f"{OPS}/download", params={"path": path}).content == name.encode()
    assert api().delete(f"{OPS}/rm", params={"path": f"{d}/-rf"}).status_code == 204
    assert api().delete(f"{OPS}/rm", params={"path": f"{d}/*"}).status_code == 204
    left = {f["name"] for f in api().get(f"{OPS}/ls", params={"path": d}).json()["output"]}
    assert left == {"$(touch ", *names} - {"-rf", "*"}
    r = api().put(f"{OPS}/chmod", json={"path": f"{d}/--help", "mode": f"-w; touch {marker}"})
    assert r.status_code == 400 and "Invalid `mode`" in r.json()["message"]
    r = api().post(f"{OPS}/compress", json={"path": d, "targetPath": f"{d}/m.tgz",
                                            "matchPattern": f"$(touch {marker})"})
    assert r.status_code == 204
    assert not [p for p in places if os.path.lexists(p)]


def test_size_limits_413(api, workdir):
    d = workdir()
    big = f"{d}/big.bin"
    with open(big, "wb") as f:
        f.truncate(LIMIT + 1)
    _chown_tree(d, "alice")
    r = api().get(f"{OPS}/download", params={"path": big})
    assert r.status_code == 413 and r.json()["message"] == "File to download is too large."
    r = api().post(f"{OPS}/upload", params={"path": d}, files={"file": ("up.bin", b"\0" * (LIMIT + 1))})
    assert r.status_code == 413 and r.json()["message"] == "File to upload is too large."
    r = api().get(f"{OPS}/view", params={"path": big, "size": LIMIT + 1})
    assert r.status_code == 400
    # Exactly at the limit: allowed, byte for byte.
    os.truncate(big, LIMIT)
    r = api().get(f"{OPS}/download", params={"path": big})
    assert r.status_code == 200 and r.headers["content-type"] == "application/octet-stream"
    assert r.content == b"\0" * LIMIT
    assert len(api().get(f"{OPS}/view", params={"path": big}).json()["output"]) == LIMIT


def test_command_timeout_is_408(api, workdir):
    d = workdir()
    os.mkfifo(f"{d}/fifo")  # reading a FIFO nobody writes blocks until the remote `timeout` fires
    _chown_tree(d, "alice")
    r = api().get(f"{OPS}/head", params={"path": f"{d}/fifo"})
    assert r.status_code == 408, r.text
    assert r.json()["message"] == "Remote process failed with exit status:124"


def test_listing_of_10000_entries(api, workdir):
    d = workdir()
    big = f"{d}/many"
    os.mkdir(big)
    for i in range(10000):
        with open(f"{big}/file {i:05d}\n-x", "wb"):
            pass
    _chown_tree(d, "alice")
    files = api().get(f"{OPS}/ls", params={"path": big}).json()["output"]
    assert len(files) == 10000
    assert [f["name"] for f in files] == [f"file {i:05d}\n-x" for i in range(10000)]
    assert {(f["type"], f["size"], f["user"]) for f in files} == {("-", "0", "alice")}


def test_other_v2_status_codes(api, workdir):
    d = workdir()
    r = api().post(f"{OPS}/mkdir", json={"path": d})
    assert r.status_code == 400 and "File exists" in r.json()["message"]
    r = api().get(f"{OPS}/head", params={"path": d, "bytes": 1, "lines": 1})
    assert r.status_code == 400 and r.json()["message"] == "Only one of `bytes` or `lines` can be specified."
    r = api().put(f"{OPS}/chown", json={"path": d, "owner": "nosuchuser"})
    assert r.status_code == 400 and "invalid user" in r.json()["message"]
    r = api().put(f"{OPS}/chown", json={"path": d, "owner": "bob"})
    assert r.status_code == 403 and "Operation not permitted" in r.json()["message"]
    r = api().get(f"/filesystem/nosuchsystem/ops/ls", params={"path": d})
    assert r.status_code == 404 and r.json()["message"] == "System not found"
    r = api().post(f"{OPS}/compress", json={"path": d, "targetPath": f"{d}.zip", "compression": "zip"})
    assert r.status_code == 400
    r = api().post(f"{OPS}/upload", params={"path": d}, files={"file": ("..", b"x")})
    assert r.status_code == 400
    r = api().delete(f"{OPS}/rm", params={"path": d})
    assert r.status_code == 204 and r.content == b""
