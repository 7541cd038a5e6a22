"""Unit tests of `SlurmClient` (each command run through the real `CommandRunner` under the scheduler
timeout, its failure mapped) and of `SlurmScheduler` (ambiguous submissions, uid names), with the SSH
pool replaced at its interface by one that answers with real output captured from Slurm 22.05.8."""

from __future__ import annotations

import asyncio
import dataclasses
import shlex
from pathlib import Path
from types import SimpleNamespace

import pytest

from services.common.config import load_config
from services.common.errors import (BadRequest, Forbidden, InternalError, RequestTimeout, ServiceUnavailable,
                                    SshConnectionFailed)
from services.common.ssh.command import CommandResult
from services.common.ssh.runner import SSH_GRACE_SECONDS, CommandRunner
from services.compute.scheduler import JobSpec
from services.slurm import sacct, scheduler
from services.slurm.client import OutcomeUnknown, SlurmClient
from services.slurm.scheduler import SlurmScheduler

CAPTURED = Path(__file__).resolve().parents[1] / "data" / "slurm-22.05"
ALICE = SimpleNamespace(username="alice")


def read(name: str) -> bytes:
    return (CAPTURED / name).read_bytes()


def ok(stdout: bytes = b"", stderr: bytes = b"") -> CommandResult:
    return CommandResult(0, stdout, stderr)


class Pool:
    """The SSH pool at its interface: answers each command line by the first `answers` key (a program
    name, e.g. "sinfo") found among its words, and records what it was asked to run."""

    def __init__(self, **answers):
        self.answers = answers
        self.calls: list[tuple[list[str], bytes | None, float]] = []

    async def run(self, caller, system, line, *, stdin=None, timeout=None, max_output=None):
        words = shlex.split(line)
        self.calls.append((words, stdin, timeout))
        key = next(k for k in self.answers if k in words)
        answer = self.answers[key]
        if isinstance(answer, Exception):
            raise answer
        return answer


@pytest.fixture(scope="module")
def system():
    local = load_config().system("local")
    # Different timeouts, to tell which one a command runs under.
    return dataclasses.replace(local, scheduler=dataclasses.replace(local.scheduler, timeout=7),
                               ssh=dataclasses.replace(local.ssh, timeouts=dataclasses.replace(
                                   local.ssh.timeouts, command_execution=13)))


def client(pool: Pool) -> SlurmClient:
    return SlurmClient(CommandRunner(pool))


# -- status's queries -------------------------------------------------------------------------------

def test_status_queries_run_under_the_scheduler_timeout_and_parse_real_output(system):
    pool = Pool(sinfo=ok(read("sinfo.json")), partitions=ok(read("scontrol_show_partitions.txt")),
                reservations=ok(read("scontrol_show_reservations.txt")), id=ok(read("id.txt")),
                sacctmgr=ok(read("sacctmgr_show_user.txt")))
    slurm = client(pool)
    assert [n.name for n in asyncio.run(slurm.nodes(ALICE, system))] == ["node01"]
    assert [p.name for p in asyncio.run(slurm.partitions(ALICE, system, False))] == ["normal", "xfer"]
    assert [r.name for r in asyncio.run(slurm.reservations(ALICE, system))] == ["maint", "gpu week"]
    info = asyncio.run(slurm.userinfo(ALICE, system))
    assert info.user.name == "alice" and [(a.name, a.default) for a in info.accounts] == [("proj-a", True),
                                                                                          ("shared", False)]
    assert [words[:3] for words, _, _ in pool.calls][:3] == [["timeout", "7", "sinfo"], ["timeout", "7", "scontrol"],
                                                            ["timeout", "7", "env"]]
    assert [words[:3] for words, _, _ in pool.calls][3:] == [["timeout", "7", "id"], ["timeout", "7", "sacctmgr"]]
    assert {timeout for _, _, timeout in pool.calls} == {7 + SSH_GRACE_SECONDS}


def test_status_query_fails_on_its_exit_status_only(system):
    warning = b"sinfo: error: Parsing error at unrecognized key: Foo\n"
    assert asyncio.run(client(Pool(sinfo=ok(read("sinfo.json"), warning))).nodes(ALICE, system))
    down = CommandResult(1, b"", b"sinfo: error: Unable to contact slurm controller (connect failure)\n")
    with pytest.raises(ServiceUnavailable):
        asyncio.run(client(Pool(sinfo=down)).nodes(ALICE, system))
    with pytest.raises(RequestTimeout, match=r"\(scontrol timed out\)"):
        asyncio.run(client(Pool(reservations=CommandResult(124, b"", b""))).reservations(ALICE, system))


# -- compute's commands -----------------------------------------------------------------------------

def test_cancel_refused_with_exit_0_is_an_error(system):
    asyncio.run(client(Pool(scancel=ok(b"", read("scancel_verbose.stderr.txt")))).cancel(ALICE, system, "4442"))
    refused = client(Pool(scancel=ok(b"", read("scancel_verbose_completed.stderr.txt"))))
    with pytest.raises(BadRequest, match="already completing or completed"):
        asyncio.run(refused.cancel(ALICE, system, "4442"))


def test_job_metadata_is_the_script_and_the_stream_paths(system):
    pool = Pool(batch_script=ok(read("scontrol_write_batch_script.txt")),
                show=ok(read("scontrol_show_job_running.txt")))
    meta = asyncio.run(client(pool).job_metadata(ALICE, system, "12"))
    assert meta.script == "#!/bin/bash\n# capture\nsleep 120\n" and meta.standard_input == "/dev/null"
    refused = Pool(batch_script=ok(b"", read("scontrol_write_batch_script_other_user.stderr.txt")),
                   show=ok(read("scontrol_show_job_running.txt")))
    with pytest.raises(Forbidden, match="Invalid user id"):
        asyncio.run(client(refused).job_metadata(ALICE, system, "12"))


def test_attach_runs_under_the_ssh_command_timeout(system):
    pool = Pool(srun=ok(read("srun_attach.txt")))
    asyncio.run(client(pool).attach(ALICE, system, "4442", "echo attached"))
    (words, _, timeout), = pool.calls
    assert words[:3] == ["timeout", "13", "srun"] and words[-1] == "echo attached"
    assert timeout == 13 + SSH_GRACE_SECONDS


SPEC = JobSpec(working_directory="/home/alice", env=(), script="#!/bin/bash\n# capture\nsleep 120\n")


def test_submit_sends_the_script_on_stdin_and_reads_the_job_id(system):
    pool = Pool(sbatch=ok(read("sbatch_parsable.txt")))
    assert asyncio.run(client(pool).submit(ALICE, system, SPEC, "firecrest-mesh:m")) == "4442"
    (words, stdin, _), = pool.calls
    assert stdin == SPEC.script.encode() and "--comment=firecrest-mesh:m" in words


@pytest.mark.parametrize("answer", [CommandResult(124, b"", b""), SshConnectionFailed("lost"),
                                    RequestTimeout("ssh timed out")])
def test_submit_whose_outcome_is_unknown(system, answer):
    with pytest.raises(OutcomeUnknown) as unknown:
        asyncio.run(client(Pool(sbatch=answer)).submit(ALICE, system, SPEC, "m"))
    assert isinstance(unknown.value.error, (RequestTimeout, SshConnectionFailed))


def test_submit_refused_or_unreadable(system):
    refused = CommandResult(1, b"", b"sbatch: error: Batch job submission failed: Invalid partition name specified")
    with pytest.raises(BadRequest, match="Invalid partition"):
        asyncio.run(client(Pool(sbatch=refused)).submit(ALICE, system, SPEC, "m"))
    with pytest.raises(InternalError, match="Unexpected sbatch output"):
        asyncio.run(client(Pool(sbatch=ok(b"Submitted batch job 1\n"))).submit(ALICE, system, SPEC, "m"))


# -- SlurmScheduler ---------------------------------------------------------------------------------

def test_ambiguous_submission_is_resolved_by_its_marker(system, monkeypatch):
    monkeypatch.setattr(scheduler, "SETTLE_SECONDS", 0)
    pool = Pool(sbatch=CommandResult(124, b"", b""), squeue=ok(read("squeue_marked.json")))
    slurm = SlurmScheduler(client(pool))
    assert asyncio.run(slurm.submit(ALICE, system, SPEC, "firecrest-mesh:abc123")) == "13"
    with pytest.raises(RequestTimeout):  # no job carries the marker: the original error
        asyncio.run(slurm.submit(ALICE, system, SPEC, "firecrest-mesh:other"))
    with pytest.raises(RequestTimeout):  # the marker is someone else's job
        asyncio.run(slurm.submit(SimpleNamespace(username="bob"), system, SPEC, "firecrest-mesh:abc123"))


def test_uid_names_come_from_the_rows_then_one_cached_getent(system):
    rows = sacct.parse(read("sacct_parsable.txt").decode(), "|zpEGafCy|")
    pool = Pool(getent=CommandResult(2, read("getent_passwd.txt"), b""))  # 2: some uid unknown
    slurm = SlurmScheduler(client(pool))
    assert asyncio.run(slurm._user_names(ALICE, system, rows)) == {0: "root", 1001: "alice", 1002: "bob"}
    assert [words[2:] for words, _, _ in pool.calls] == [["getent", "passwd", "0"]]  # alice: her own records
    asyncio.run(slurm._user_names(ALICE, system, rows))
    assert len(pool.calls) == 1  # cached
    unknown = [dict(rows[0], State="CANCELLED by 77777")]
    assert asyncio.run(slurm._user_names(ALICE, system, unknown)) == {1001: "alice"}
    assert pool.calls[-1][0][2:] == ["getent", "passwd", "77777"]
    assert sacct.jobs(unknown, {})[0].job.kill_request_user.HasField("null_value")


def test_a_failed_uid_look_up_leaves_the_name_unknown(system):
    rows = sacct.parse(read("sacct_parsable.txt").decode(), "|zpEGafCy|")
    slurm = SlurmScheduler(client(Pool(getent=SshConnectionFailed("lost"))))
    assert asyncio.run(slurm._user_names(ALICE, system, rows)) == {1001: "alice", 1002: "bob"}
