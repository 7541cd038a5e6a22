"""The direct-streaming scripts (services/storage/stream_commands.py) run by the local sh in a temporary
folder, with hostile names: upload into the partial and rename, offsets, declared size and digest,
status and download; and the parsing and error mapping of what they print."""

from __future__ import annotations

import hashlib
import subprocess

import grpc
import pytest

from services.common.errors import BadRequest, Forbidden, NotFound
from services.common.ssh.command import CommandResult, shell_join
from services.storage import stream_commands as sc


def run(argv: list[str], stdin: bytes = b"") -> CommandResult:
    """`argv` as the remote side runs it: one line quoted by shell_join, through sh -c."""
    done = subprocess.run(["sh", "-c", shell_join(argv)], input=stdin, capture_output=True, timeout=30)
    return CommandResult(done.returncode, done.stdout, done.stderr)


@pytest.fixture(params=["plain.bin", "a b;$(touch x)`id`'\"\n.bin"])
def target(tmp_path, request):
    return str(tmp_path / request.param)


def test_upload_writes_the_partial_then_renames_it(target):
    data = b"x" * 100_000
    result = run(sc.upload_command(target, 0, hashlib.sha256(data).hexdigest().upper(), len(data)), data)
    assert result.ok, result.stderr
    assert result.stdout.startswith(sc.READY)
    assert sc.parse_digest(result.stdout[len(sc.READY):]) == sc.FileDigest(len(data), hashlib.sha256(data).hexdigest())
    assert open(target, "rb").read() == data
    status = sc.parse_status(run(sc.status_command(target)).stdout)
    assert (status.size, status.in_progress) == (0, False)
    assert status.path.endswith("/." + target.rsplit("/", 1)[1] + sc.PARTIAL_SUFFIX)


def test_resume_from_the_partial(target):
    assert run(sc.upload_command(target, 0, "", 10), b"first").exit_status == sc.TOO_SHORT
    assert sc.parse_status(run(sc.status_command(target)).stdout).size == 5
    wrong = run(sc.upload_command(target, 3, "", 10), b"zz")
    assert wrong.exit_status == sc.OFFSET_MISMATCH and isinstance(sc.error_for(wrong), sc.Conflict)
    assert "resume from offset 5" in sc.error_for(wrong).message
    assert sc.error_for(wrong).grpc_code == grpc.StatusCode.ABORTED
    assert run(sc.upload_command(target, 5, hashlib.sha256(b"firstsecnd").hexdigest(), 10), b"secnd").ok
    assert open(target, "rb").read() == b"firstsecnd"


def test_a_wrong_digest_or_too_many_bytes_leave_the_target(target):
    open(target, "wb").write(b"old")
    bad = run(sc.upload_command(target, 0, "0" * 64, None), b"new")
    assert bad.exit_status == sc.DIGEST_MISMATCH and isinstance(sc.error_for(bad), BadRequest)
    assert run(sc.upload_command(target, 0, "", 2), b"new").exit_status == sc.TOO_LONG
    assert open(target, "rb").read() == b"old"
    assert sc.parse_status(run(sc.status_command(target)).stdout).size == 0  # deleted: start over


def test_offset_zero_starts_over(target):
    run(sc.upload_command(target, 0, "", 100), b"stale bytes")
    assert run(sc.upload_command(target, 0, "", None), b"fresh").ok
    assert open(target, "rb").read() == b"fresh"


def test_download_announces_size_and_digest_then_the_bytes(target):
    data = bytes(range(256)) * 10
    open(target, "wb").write(data)
    result = run(sc.download_command(target, 100))
    line, _, rest = result.stdout.partition(b"\n")
    assert sc.parse_digest(line + b"\n") == sc.FileDigest(len(data), hashlib.sha256(data).hexdigest())
    assert rest == data[100:]
    beyond = run(sc.download_command(target, len(data) + 1))
    assert beyond.exit_status == sc.BEYOND_END and isinstance(sc.error_for(beyond), BadRequest)


def test_errors_of_paths(tmp_path):
    assert isinstance(sc.error_for(run(sc.download_command(str(tmp_path / "missing"), 0))), NotFound)
    assert isinstance(sc.error_for(run(sc.download_command(str(tmp_path), 0))), BadRequest)
    assert isinstance(sc.error_for(run(sc.upload_command(str(tmp_path / "no" / "f"), 0, "", None))), NotFound)
    assert isinstance(sc.error_for(run(sc.upload_command(str(tmp_path), 0, "", None))), BadRequest)
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    result = run(sc.upload_command(str(locked / "f"), 0, "", None))
    if result.ok:  # root ignores the folder's mode
        pytest.skip("running as root")
    assert isinstance(sc.error_for(result), Forbidden)


def test_request_checks():
    with pytest.raises(BadRequest):
        sc.upload_command("/a", -1, "", None)
    with pytest.raises(BadRequest):
        sc.upload_command("/a", 0, "xyz", None)
    with pytest.raises(BadRequest):
        sc.upload_command("/a", 0, "", -5)
    with pytest.raises(ValueError):
        sc.parse_digest(b"12 nothex\n")
    assert sc.parse_status(b"7\x001\x00/p/.f.firecrest-partial\x00") == sc.PartialStatus("/p/.f.firecrest-partial", 7, True)
