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
from services.common.errors import NotFound
from services.compute.scheduler import JobQuery, JobSpec
from services.slurm import delimited, sacct, scheduler
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
        self.idempotent: dict[str, bool] = {}  # answer key (program) → what the pool was told

    async def run(self, caller, system, line, *, stdin=None, timeout=None, max_output=None, idempotent=False,
                  stdout_sink=None):
        words = shlex.split(line)
        self.calls.append((words, stdin, timeout))
        self.idempotent[next(k for k in self.answers if k in words)] = idempotent
        key = next(k for k in self.answers if k in words)
        answer = self.answers[key]
        if isinstance(answer, Exception):
            raise answer
        if stdout_sink is not None:  # as a pooled command's output arrives: in pieces, cut anywhere
            stdout_sink.begin()
            for start in range(0, len(answer.stdout), 100):
                stdout_sink.feed(answer.stdout[start:start + 100])
        return answer


@pytest.fixture(scope="module")
def system():
    local = load_config().system("local")
    # Different timeouts, to tell which one a command runs under.
    return dataclasses.replace(local, scheduler=dataclasses.replace(local.scheduler, timeout=7, accounting_timeout=23),
                               ssh=dataclasses.replace(local.ssh, timeouts=dataclasses.replace(
                                   local.ssh.timeouts, command_execution=13)))


def client(pool: Pool) -> SlurmClient:
    return SlurmClient(CommandRunner(pool))


def built(rows: list[dict[str, str]]) -> sacct.JobsBuilder:
    """The jobs of sacct records, their uids not named yet (what `SlurmClient.history` returns)."""
    builder = sacct.JobsBuilder()
    builder.add(rows)
    return builder


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
    assert refused._runner.pool.idempotent == {"scancel": False}  # never run twice by the pool


def test_job_metadata_is_the_script_and_the_stream_paths(system):
    pool = Pool(batch_script=ok(read("scontrol_write_batch_script.txt")),
                show=ok(read("scontrol_show_job_running.txt")))
    meta = asyncio.run(client(pool).job_metadata(ALICE, system, "12"))
    assert meta.script == "#!/bin/bash\n# capture\nsleep 120\n" and meta.standard_input == "/dev/null"
    assert pool.idempotent == {"batch_script": True, "show": True}  # reads: the pool may run them again
    refused = Pool(batch_script=ok(b"", read("scontrol_write_batch_script_other_user.stderr.txt")),
                   show=ok(read("scontrol_show_job_running.txt")))
    with pytest.raises(Forbidden, match="Invalid user id"):
        asyncio.run(client(refused).job_metadata(ALICE, system, "12"))


def test_attach_runs_under_the_ssh_command_timeout(system):
    pool = Pool(srun=ok(read("srun_attach.txt")))
    asyncio.run(client(pool).attach(ALICE, system, "4442", "echo attached"))
    (words, _, timeout), = pool.calls
    assert words[:3] == ["timeout", "13", "srun"] and words[-1] == "echo attached"
    assert pool.idempotent == {"srun": False}
    assert timeout == 13 + SSH_GRACE_SECONDS


SPEC = JobSpec(working_directory="/home/alice", env=(), script="#!/bin/bash\n# capture\nsleep 120\n")


def test_submit_sends_the_script_on_stdin_and_reads_the_job_id(system):
    pool = Pool(sbatch=ok(read("sbatch_parsable.txt")))
    assert asyncio.run(client(pool).submit(ALICE, system, SPEC, "firecrest-mesh:m")) == "4442"
    (words, stdin, _), = pool.calls
    assert stdin == SPEC.script.encode() and "--comment=firecrest-mesh:m" in words
    assert pool.idempotent == {"sbatch": False}  # a submission is never run twice


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
    monkeypatch.setattr(delimited, "new_delimiter", lambda: SQ)
    pool = Pool(sbatch=CommandResult(124, b"", b""), squeue=ok(read("squeue_jobs_alice_all_states.txt")))
    slurm = SlurmScheduler(client(pool))
    assert asyncio.run(slurm.submit(ALICE, system, SPEC, "firecrest-mesh:capture2")) == "6274"
    looked_up = [words for words, _, _ in pool.calls if "squeue" in words]
    assert looked_up and all("--user=alice" in w and "--states=all" in w for w in looked_up)  # never all users
    with pytest.raises(RequestTimeout):  # no job carries the marker: the original error
        asyncio.run(slurm.submit(ALICE, system, SPEC, "firecrest-mesh:other"))
    with pytest.raises(RequestTimeout):  # the marker is someone else's job
        asyncio.run(slurm.submit(SimpleNamespace(username="bob"), system, SPEC, "firecrest-mesh:capture2"))


# -- job queries: squeue for what the controller runs or queues, sacct for what has ended --------------

SQ = "|Sq7dLm2x|"  # the delimiter of capture_squeue.py's outputs


def one_job(job_id: str) -> bytes:
    """The captured squeue record of one job (what `squeue --jobs=<id>` prints)."""
    return "".join(line + "\n" for line in read("squeue_jobs_alice.txt").decode().split("\n")
                   if line.startswith(job_id + SQ)).encode()


def programs(pool: Pool) -> list[str]:
    return [("squeue --steps" if "--steps" in w else w[2] if w[2] != "env" else w[4]) for w, _, _ in pool.calls]


@pytest.fixture
def fixed_delimiter(monkeypatch):
    monkeypatch.setattr(delimited, "new_delimiter", lambda: SQ)


@pytest.mark.parametrize("job_id,state", [("6264", "RUNNING"), ("6263", "PENDING")])
def test_a_held_job_is_answered_by_squeue_alone(system, fixed_delimiter, job_id, state):
    pool = Pool(**{"--steps": ok(read("squeue_steps_alice.txt")), "squeue": ok(one_job(job_id)),
                   "sacct": AssertionError("sacct must not run for a held job")})
    (job,) = asyncio.run(SlurmScheduler(client(pool)).get_job(ALICE, system, job_id))
    assert job.job_id == job_id and job.status.state == state
    assert sorted(programs(pool)) == ["squeue", "squeue --steps"]
    assert all(f"--jobs={job_id}" in w and not any(a.startswith("--user") for a in w) for w, _, _ in pool.calls)
    if state == "RUNNING":
        assert [t.id for t in job.tasks] == ["6264.batch"]


def test_an_ended_job_is_answered_by_sacct(system, fixed_delimiter):
    not_held = CommandResult(1, b"", read("squeue_not_held.stderr.txt"))
    sacct_out = ok(read("sacct_parsable.txt").replace(b"|zpEGafCy|", SQ.encode()))
    pool = Pool(squeue=not_held, sacct=sacct_out, getent=ok(read("getent_passwd.txt")))
    (job,) = asyncio.run(SlurmScheduler(client(pool)).get_job(ALICE, system, "12"))
    assert job.status.state == "CANCELLED" and [t.id for t in job.tasks] == ["12.batch", "12.0", "12.1"]
    assert sorted(programs(pool)) == ["getent", "sacct", "squeue", "squeue --steps"]  # getent: job 257's canceller
    # Accounting under its own timeout (its cost grows with the jobs it reads), the controller's under the scheduler's.
    remote_timeouts = {next(w for w in words if w in ("sacct", "squeue", "getent")): words[1] for words, _, _ in pool.calls}
    assert remote_timeouts == {"sacct": "23", "squeue": "7", "getent": "7"}
    with pytest.raises(NotFound, match="Job not found"):
        asyncio.run(SlurmScheduler(client(Pool(squeue=not_held, sacct=ok(b"")))).get_job(ALICE, system, "77"))


def test_a_job_accounting_answered_as_ended_is_next_asked_of_accounting_alone(system, fixed_delimiter):
    not_held = CommandResult(1, b"", read("squeue_not_held.stderr.txt"))
    sacct_out = ok(read("sacct_parsable.txt").replace(b"|zpEGafCy|", SQ.encode()))
    pool = Pool(squeue=not_held, sacct=sacct_out, getent=ok(read("getent_passwd.txt")))
    slurm = SlurmScheduler(client(pool))
    first = asyncio.run(slurm.get_job(ALICE, system, "12"))
    pool.calls.clear()
    again = asyncio.run(slurm.get_job(ALICE, system, "12"))
    assert again == first and programs(pool) == ["sacct"]  # getent's answer is cached, squeue skipped
    # Accounting no longer knows it (or a requeue, a reused id): both are asked again, the job forgotten.
    pool.answers["sacct"] = ok(b"")
    pool.calls.clear()
    with pytest.raises(NotFound):
        asyncio.run(slurm.get_job(ALICE, system, "12"))
    assert sorted(programs(pool)) == ["sacct", "sacct", "squeue", "squeue --steps"]
    pool.calls.clear()
    with pytest.raises(NotFound):
        asyncio.run(slurm.get_job(ALICE, system, "12"))
    assert sorted(programs(pool)) == ["sacct", "squeue", "squeue --steps"]


def test_an_ended_job_accounting_does_not_know_yet_is_not_recorded(system, fixed_delimiter):
    ended = ok(read("squeue_jobs_alice_all_states.txt"))  # 6266: COMPLETED, still held; sacct lags
    pool = Pool(**{"--steps": ok(b""), "squeue": ended, "sacct": ok(b"")})
    slurm = SlurmScheduler(client(pool))
    asyncio.run(slurm.get_job(ALICE, system, "6266"))
    pool.calls.clear()
    asyncio.run(slurm.get_job(ALICE, system, "6266"))
    assert "squeue" in programs(pool)


def test_an_ended_job_still_held_falls_back_to_squeue_while_accounting_lags_or_fails(system, fixed_delimiter):
    ended = ok(read("squeue_jobs_alice_all_states.txt"))  # 6266: COMPLETED
    for accounting in (ok(b""), CommandResult(1, b"", b"sacct: error: Problem talking to the database")):
        pool = Pool(**{"--steps": ok(b""), "squeue": ended, "sacct": accounting})
        (job,) = asyncio.run(SlurmScheduler(client(pool)).get_job(ALICE, system, "6266"))
        assert job.status.state == "COMPLETED" and "sacct" in programs(pool)


@pytest.mark.parametrize("allusers", [False, True])
def test_a_list_asks_squeue_for_the_callers_jobs_only_unless_allusers(system, fixed_delimiter, allusers):
    sacct_out = ok(read("sacct_parsable_held.txt"))
    pool = Pool(**{"--steps": ok(read("squeue_steps_alice.txt")), "squeue": ok(read("squeue_jobs_alice.txt")),
                   "sacct": sacct_out})
    jobs = asyncio.run(SlurmScheduler(client(pool)).list_jobs(ALICE, system, JobQuery(allusers=allusers))).jobs
    squeues = [w for w, _, _ in pool.calls if "squeue" in w]
    assert len(squeues) == 2
    assert all(("--user=alice" in w) != allusers for w in squeues)
    assert all(not any(a.startswith("--user") for a in w) for w in squeues) == allusers
    assert {j.user for j in jobs} == {"alice"} and len(jobs) == 10
    assert next(j for j in jobs if j.job_id == "6263").time.start.number_value > 0  # PENDING: squeue's record


def test_concurrent_identical_queries_share_one_call_and_each_caller_gets_its_own_answer(system, fixed_delimiter):
    class SlowPool(Pool):  # each command yields once, so that the callers overlap (no timing involved)
        async def run(self, *args, **kwargs):
            await asyncio.sleep(0)
            return await super().run(*args, **kwargs)

    pool = SlowPool(**{"--steps": ok(read("squeue_steps_alice.txt")), "squeue": ok(read("squeue_jobs_alice.txt")),
                       "sacct": ok(read("sacct_parsable_held.txt"))})
    slurm = SlurmScheduler(client(pool))
    bob = SimpleNamespace(username="bob")

    async def main():
        alices = [slurm.list_jobs(ALICE, system, JobQuery()) for _ in range(32)]
        bobs = [slurm.list_jobs(bob, system, JobQuery()) for _ in range(4)]
        alices, bobs = await asyncio.gather(*alices), await asyncio.gather(*bobs)
        return [list(a.jobs) for a in alices], [list(b.jobs) for b in bobs]
    alices, bobs = asyncio.run(main())
    assert all(a == alices[0] for a in alices) and len(alices[0]) == 10
    assert {j.user for j in alices[0]} == {"alice"}
    assert all(b == [] for b in bobs)  # the captured output is alice's: bob's own filter leaves nothing
    users = sorted(next(a for a in w if a.startswith("--user=")) for w, _, _ in pool.calls if "squeue" in w)
    assert users == ["--user=alice"] * 2 + ["--user=bob"] * 2  # one call (jobs + steps) per user
    assert programs(pool).count("sacct") == 2
    asyncio.run(slurm.list_jobs(ALICE, system, JobQuery()))  # after the call: a new call, nothing kept
    assert programs(pool).count("sacct") == 3


def test_uid_names_come_from_the_rows_then_one_cached_getent(system):
    rows = sacct.parse(read("sacct_parsable.txt").decode(), "|zpEGafCy|")
    pool = Pool(getent=CommandResult(2, read("getent_passwd.txt"), b""))  # 2: some uid unknown
    slurm = SlurmScheduler(client(pool))
    assert asyncio.run(slurm._user_names(ALICE, system, built(rows))) == {0: "root", 1001: "alice", 1002: "bob"}
    assert [words[2:] for words, _, _ in pool.calls] == [["getent", "passwd", "0"]]  # alice: her own records
    asyncio.run(slurm._user_names(ALICE, system, built(rows)))
    assert len(pool.calls) == 1  # cached
    unknown = [dict(rows[0], State="CANCELLED by 77777")]
    assert asyncio.run(slurm._user_names(ALICE, system, built(unknown))) == {1001: "alice"}
    assert pool.calls[-1][0][2:] == ["getent", "passwd", "77777"]
    assert sacct.jobs(unknown, {})[0].job.kill_request_user.HasField("null_value")


def test_a_record_that_still_shows_uid_0_does_not_name_root(system):
    # Accounting can show a job's record with UID 0 and its owner's name until it has the job's start.
    rows = sacct.parse(read("sacct_parsable.txt").decode(), "|zpEGafCy|")
    lagging = [dict(rows[0], UID="0", State="CANCELLED by 0")]
    assert built(lagging).known_users == {}
    pool = Pool(getent=CommandResult(0, b"root:x:0:0:root:/root:/bin/bash\n", b""))
    assert asyncio.run(SlurmScheduler(client(pool))._user_names(ALICE, system, built(lagging))) == {0: "root"}


def test_a_failed_uid_look_up_leaves_the_name_unknown(system):
    rows = sacct.parse(read("sacct_parsable.txt").decode(), "|zpEGafCy|")
    slurm = SlurmScheduler(client(Pool(getent=SshConnectionFailed("lost"))))
    assert asyncio.run(slurm._user_names(ALICE, system, built(rows))) == {1001: "alice", 1002: "bob"}


def test_an_ended_job_keeps_the_controllers_name_accounting_cuts_at_255_bytes(system, fixed_delimiter):
    full = "n" * 300
    record = one_job("6264").decode().replace("|RUNNING|", "|COMPLETED|").replace(f"{SQ}run1\n", f"{SQ}{full}\n")
    rows = read("sacct_parsable_held.txt").decode().replace("|RUNNING|", "|COMPLETED|").replace(f"{SQ}run1\n",
                                                                                             f"{SQ}{'n' * 255}\n")
    pool = Pool(**{"--steps": ok(b""), "squeue": ok(record.encode()), "sacct": ok(rows.encode())})
    (job,) = asyncio.run(SlurmScheduler(client(pool)).get_job(ALICE, system, "6264"))
    assert job.status.state == "COMPLETED" and job.name == full and [t.id for t in job.tasks] == ["6264.batch"]
