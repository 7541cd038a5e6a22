"""The utilities servicer on a real gRPC channel behind the mesh's admission (tests/unit/conftest.py),
with the `CommandRunner` replaced at its interface by one that answers with output captured from the
real commands (tests/data/coreutils-9.1/): path validation (400) before anything runs, head/tail
bounds, each failed command mapped by the `error_for` the handler hands the runner, 201/204 through
`x-http-code`. No gateway, no sshd."""

from __future__ import annotations

import json
from pathlib import Path

import grpc
import pytest

from firecrest_mesh.utilities.v1 import utilities_pb2 as u, utilities_pb2_grpc
from services.common.ssh.command import CommandResult
from services.utilities.service import UtilitiesService

SYSTEM = "local"
CAPTURED = Path(__file__).parents[1] / "data" / "coreutils-9.1"
CAPTURE = "/scratch/alice/capture"  # the folder the outputs were captured in (see its capture.py)
FAILURES = json.loads((CAPTURED / "failures.json").read_text())


def captured(name: str) -> CommandResult:
    return CommandResult(0, (CAPTURED / f"{name}.out").read_bytes(), b"")


def failure(name: str) -> CommandResult:
    f = FAILURES[name]
    return CommandResult(f["exit_status"], f["stdout"].encode(), f["stderr"].encode())


class FakeRunner:
    """`CommandRunner.run` at its interface: answers by the first program's name, and, like the real
    runner, raises `error_for(result)` when the result failed. Records (user, argvs, timeout, stdin)."""

    def __init__(self, **answers: CommandResult):
        self.answers = answers
        self.calls: list[tuple] = []
        self.idempotent: dict[str, bool] = {}  # program → whether the pool may run it again

    async def run(self, caller, system, *argvs, timeout, error_for, failed=lambda r: not r.ok, stdin=None,
                  max_output=None, idempotent=False, stdout_sink=None):
        self.calls.append((caller.username, argvs, timeout, stdin))
        self.idempotent[argvs[0][0]] = idempotent
        result = self.answers.get(argvs[0][0], CommandResult(0, b"", b""))
        if failed(result):
            raise error_for(result)
        return result


@pytest.fixture
def runner() -> FakeRunner:
    return FakeRunner()


@pytest.fixture
def stub(serve, unit_config, runner):
    return serve(utilities_pb2_grpc, UtilitiesService(unit_config, runner))


# -- path validation ---------------------------------------------------------------------------------

@pytest.mark.parametrize("path, message", [
    ("", "Unable to decode request and retreive the required path"),
    ("scratch/alice", "is not an absolute path"),
    ("/scratch/alice/../bob", "contains a '..' component"),
    ("/etc/passwd", "does not match any of the defined filesystem paths"),
    ("/scratch/alice/a\0b", "contains a NUL byte"),
    ("/scratch/" + "x" * 5000, "is longer than 4095 bytes"),
], ids=["missing", "relative", "dotdot", "outside", "nul", "too-long"])
def test_invalid_path_is_400_and_runs_nothing(stub, tokens, runner, http_code, path, message, rpc_error):
    for method, request in ((stub.ListFiles, u.ListFilesRequest), (stub.HeadFile, u.HeadFileRequest),
                            (stub.DeleteFile, u.DeleteFileRequest), (stub.StatFile, u.StatFileRequest)):
        error = rpc_error(lambda: method(request(system_name=SYSTEM, path=path), metadata=tokens.metadata()))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and http_code(error) == "400", method
        assert message in error.details()
    assert runner.calls == []


def test_second_path_fields_are_validated_by_name(stub, tokens, runner, rpc_error):
    error = rpc_error(lambda: stub.CreateSymlink(u.CreateSymlinkRequest(
        system_name=SYSTEM, path="/scratch/alice/a", link_path="/etc/x"), metadata=tokens.metadata()))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "`linkPath` path (/etc/x)" in error.details()
    error = rpc_error(lambda: stub.CompressFiles(u.CompressFilesRequest(
        system_name=SYSTEM, path="/scratch/alice/a"), metadata=tokens.metadata()))
    assert error.details() == "The `targetPath` parameter is required."
    assert runner.calls == []


def test_unknown_system_is_404(stub, tokens, runner, http_code, rpc_error):
    error = rpc_error(lambda: stub.ListFiles(u.ListFilesRequest(system_name="nosuchsystem", path="/scratch"),
                                             metadata=tokens.metadata()))
    assert (error.code(), error.details(), http_code(error)) == (grpc.StatusCode.NOT_FOUND, "System not found", "404")
    assert runner.calls == []


# -- head / tail bounds ------------------------------------------------------------------------------

@pytest.mark.parametrize("amount, message", [
    ({"num_bytes": 1, "num_lines": 1}, "Only one of `bytes` or `lines` can be specified."),
    ({"num_lines": -1}, "`lines` must not be negative."),
    ({"num_bytes": -5}, "`bytes` must not be negative."),
    ({"num_bytes": 2 ** 62}, "`bytes` must be at most"),
])
def test_head_and_tail_bounds_are_400(stub, tokens, runner, amount, message, rpc_error):
    for method, request in ((stub.HeadFile, u.HeadFileRequest), (stub.TailFile, u.TailFileRequest)):
        error = rpc_error(lambda: method(request(system_name=SYSTEM, path="/scratch/alice/f", **amount),
                                         metadata=tokens.metadata()))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and message in error.details(), method
    assert runner.calls == []


def test_head_runs_as_the_caller_under_the_command_timeout(stub, tokens, runner, unit_config):
    runner.answers["head"] = captured("head_2_lines")
    response = stub.HeadFile(u.HeadFileRequest(system_name=SYSTEM, path="/scratch/bob/f", num_lines=2),
                             metadata=tokens.metadata("bob"))
    assert response.output.content == (CAPTURED / "head_2_lines.out").read_bytes().decode(errors="replace")
    (user, argvs, timeout, _), = runner.calls
    assert user == "bob" and argvs[0][0] == "head" and argvs[0][-1] == "/scratch/bob/f"
    assert timeout == unit_config.system(SYSTEM).ssh.timeouts.command_execution


def test_invalid_chmod_mode_is_400(stub, tokens, runner, rpc_error):
    for mode in ("", "-w; touch x", "8888", "u+rwx;g=x", "--reference=/etc/shadow"):
        error = rpc_error(lambda: stub.ChangeMode(u.ChangeModeRequest(
            system_name=SYSTEM, path="/scratch/alice/f", mode=mode), metadata=tokens.metadata()))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, mode
    assert runner.calls == []


# -- failed commands: each handler's error_for -------------------------------------------------------

@pytest.mark.parametrize("program, captured_failure, call, status, http", [
    ("head", "head_directory", lambda s, md: s.HeadFile(u.HeadFileRequest(system_name=SYSTEM, path=CAPTURE), metadata=md),
     grpc.StatusCode.INVALID_ARGUMENT, "400"),
    ("rm", "rm_missing", lambda s, md: s.DeleteFile(u.DeleteFileRequest(system_name=SYSTEM, path=f"{CAPTURE}/*"), metadata=md),
     grpc.StatusCode.NOT_FOUND, "404"),
    ("chown", "chown_to_bob", lambda s, md: s.ChangeOwnership(u.ChangeOwnershipRequest(
        system_name=SYSTEM, path=f"{CAPTURE}/-rf", owner="bob"), metadata=md), grpc.StatusCode.PERMISSION_DENIED, "403"),
    ("mkdir", "mkdir_existing", lambda s, md: s.MakeDirectory(u.MakeDirectoryRequest(
        system_name=SYSTEM, path=f"{CAPTURE}/--help"), metadata=md), grpc.StatusCode.INVALID_ARGUMENT, "400"),
    # `file` reports its errors on stdout: only its own error_for finds "No such file or directory" there.
    ("file", "file_missing", lambda s, md: s.GetFileType(u.GetFileTypeRequest(
        system_name=SYSTEM, path=f"{CAPTURE}/missing $(id)"), metadata=md), grpc.StatusCode.NOT_FOUND, "404"),
], ids=["head-directory-400", "rm-missing-404", "chown-403", "mkdir-exists-400", "file-stdout-404"])
def test_failed_command_is_mapped_by_its_error_for(stub, tokens, runner, http_code, program, captured_failure, call,
                                                   status, http, rpc_error):
    runner.answers[program] = failure(captured_failure)
    error = rpc_error(lambda: call(stub, tokens.metadata()))
    assert error.code() == status and http_code(error) == http
    assert error.details().startswith(f"Remote process failed with exit status:{FAILURES[captured_failure]['exit_status']}")


def test_timeout_is_408_and_unknown_failure_500(stub, tokens, runner, http_code, rpc_error):
    request = u.ChecksumFileRequest(system_name=SYSTEM, path="/scratch/alice/f")
    runner.answers["sha256sum"] = CommandResult(124, b"", b"")
    error = rpc_error(lambda: stub.ChecksumFile(request, metadata=tokens.metadata()))
    assert (error.code(), http_code(error)) == (grpc.StatusCode.DEADLINE_EXCEEDED, "408")
    assert error.details() == "Remote process failed with exit status:124"
    runner.answers["sha256sum"] = CommandResult(3, b"", b"sha256sum: something odd\n")
    error = rpc_error(lambda: stub.ChecksumFile(request, metadata=tokens.metadata()))
    assert (error.code(), http_code(error)) == (grpc.StatusCode.INTERNAL, "500")
    assert error.details() == "Remote process failed with exit status:3 and error message:sha256sum: something odd"


# -- success codes -----------------------------------------------------------------------------------

def test_delete_compress_extract_upload_are_204(stub, tokens, runner, http_code):
    md = tokens.metadata()
    for method, request in (
            (stub.DeleteFile, u.DeleteFileRequest(system_name=SYSTEM, path="/scratch/alice/f")),
            (stub.CompressFiles, u.CompressFilesRequest(system_name=SYSTEM, path="/scratch/alice/d",
                                                        target_path="/scratch/alice/d.tgz")),
            (stub.ExtractArchive, u.ExtractArchiveRequest(system_name=SYSTEM, path="/scratch/alice/d.tgz",
                                                          target_path="/scratch/alice/x"))):
        response, call = method.with_call(request, metadata=md)
        assert http_code(call) == "204" and response.ByteSize() == 0, method
    assert [argvs[0][0] for _, argvs, _, _ in runner.calls] == ["rm", "tar", "tar"]
    assert runner.idempotent == {"rm": False, "tar": False}  # writes are never run twice by the pool


def test_mkdir_is_201_with_the_new_directorys_entry(stub, tokens, runner, http_code):
    path = f"{CAPTURE}/$(touch y);y/sub dir"
    runner.answers["mkdir"] = captured("mkdir_substitution")
    response, call = stub.MakeDirectory.with_call(
        u.MakeDirectoryRequest(system_name=SYSTEM, source_path=path, parent=True), metadata=tokens.metadata())
    assert http_code(call) == "201"
    assert response.output.name == path and response.output.type == "d" and response.output.user == "alice"
    (_, argvs, _, _), = runner.calls
    assert argvs[0] == ["mkdir", "-p", "--", path]


def test_listing_parses_the_entries(stub, tokens, runner, http_code):
    runner.answers["find"] = captured("ls_dir")
    response, call = stub.ListFiles.with_call(u.ListFilesRequest(system_name=SYSTEM, path=CAPTURE),
                                              metadata=tokens.metadata())
    assert http_code(call) is None  # 200
    names = {f.name for f in response.output}
    assert "new\nline" in names and "-rf" in names and all(f.user == "alice" for f in response.output)
    assert runner.idempotent == {"find": True}  # a read: the pool may run it again
