"""Unit tests of the one rule for a scheduler that cannot be reached (`services.slurm.errors`): every
Slurm command the services run, failing because it could not talk to slurmctld or slurmdbd, is 503
before any user-error rule reads it, while real refusals stay 400/403/404; and a submission that
failed so is never run again (at most its marker is looked up). The texts are real: captured from
Slurm 22.05.8's binaries against a refused port and fake daemons that reset, hang up or stay silent
(tests/data/slurm-22.05/capture_unreachable.py), plus the one CI saw when slurmctld was killed."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from services.common.config import load_config
from services.common.errors import BadRequest, Forbidden, InternalError, NotFound, ServiceUnavailable
from services.common.ssh.command import CommandResult
from services.slurm import delimited, errors, scheduler
from services.slurm.scheduler import SlurmScheduler
from tests.unit.test_slurm_client import ALICE, SPEC, SQ, Pool, client, ok, read

CAPTURED = Path(__file__).resolve().parents[1] / "data" / "slurm-22.05" / "scheduler_unreachable.txt"


def captured() -> list[tuple[str, str, int, str]]:
    """(command, how the daemon failed, exit status, stderr) of every capture."""
    entries = []
    for block in re.split(r"^## ", CAPTURED.read_text(), flags=re.M)[1:]:
        header, _, stderr = block.partition("\n")
        command, mode, status = (part.strip() for part in header.split("|"))
        entries.append((command, mode, int(status.removeprefix("exit ")), stderr))
    return entries


CAPTURES = captured()


@pytest.fixture(scope="module")
def system():
    return load_config().system("local")


CI_SEEN = "sbatch: error: Batch job submission failed: Connection reset by peer\n"  # slurmctld killed under load


def test_every_command_and_every_failure_was_captured():
    commands = {"sbatch", "squeue", "squeue --steps", "scontrol show job", "scontrol write batch_script", "scancel", "sinfo",
                "sacct", "sacctmgr"}
    assert {(c, m) for c, m, _, _ in CAPTURES} == {(c, m) for c in commands
                                                     for m in ("refused", "reset", "hangup", "silent")}
    assert any(stderr == CI_SEEN for _, _, _, stderr in CAPTURES)


@pytest.mark.parametrize("command,mode,status,stderr", CAPTURES, ids=[f"{c}-{m}" for c, m, _, _ in CAPTURES])
def test_a_scheduler_that_cannot_be_reached_is_503_for_every_command(command, mode, status, stderr):
    result = CommandResult(status, b"", stderr.encode())
    assert errors.failed(result)  # exit 0 too: scontrol write batch_script, sacct after DBD_GET_JOBS_COND
    assert errors.unreachable(result)
    program = command.split()[0]
    error = errors.error_for(result, program)
    assert type(error) is ServiceUnavailable and error.http_status == 503
    daemon = "slurmdbd" if program in ("sacct", "sacctmgr") else "slurmctld"
    assert error.message.startswith(f"The scheduler is unavailable: {program} could not reach the Slurm ")
    assert daemon in error.message and "retry shortly" in error.message


@pytest.mark.parametrize("stderr", [
    CI_SEEN,
    "squeue: error: Batch job submission failed: Broken pipe",
    "scontrol: error: slurm_load_jobs error: Transport endpoint is not connected",
    "sinfo: error: Network is unreachable",
    "scancel: error: Kill job error on job id 5: No route to host",
    "sbatch: error: Batch job submission failed: Communication connection failure",
    "sbatch: error: Batch job submission failed: Unable to contact slurm controller (receive failure)",
    "sacct: error: slurm_persist_conn_open: No response to persist_init",
])
def test_communication_failures_come_before_the_user_error_rules(stderr):
    # "Batch job submission failed" alone is a user error (400): the communication rule reads first.
    error = errors.error_for(CommandResult(1, b"", stderr.encode()), "sbatch")
    assert type(error) is ServiceUnavailable


@pytest.mark.parametrize("stderr,status,kind", [
    ("sbatch: error: invalid partition specified: nope\nsbatch: error: Batch job submission failed: "
     "Invalid partition name specified", 1, BadRequest),
    ("sbatch: error: Batch job submission failed: Invalid account or account/partition combination specified",
     1, BadRequest),
    ("sbatch: error: Invalid --time specification", 255, BadRequest),  # #SBATCH --time=abc
    ("sbatch: unrecognized option '--nonsense'\nTry \"sbatch --help\" for more information", 255,
     BadRequest),  # #SBATCH --nonsense
    ("sbatch: error: Batch job submission failed: Job violates accounting/QOS policy (job submit limit, user's "
     "size and/or time limits)", 1, Forbidden),
    ("scancel: Terminating job 9999\nscancel: error: Kill job error on job id 9999: Invalid job id specified", 0,
     NotFound),
    ("slurm_load_jobs error: Invalid job id specified", 1, NotFound),
    ("job script retrieval failed: Invalid job id specified", 0, NotFound),
])
def test_real_user_errors_stay_user_errors(stderr, status, kind):
    result = CommandResult(status, b"", stderr.encode())
    assert errors.failed(result) and not errors.unreachable(result)
    assert type(errors.error_for(result, "cmd")) is kind


def test_a_jobs_own_output_is_not_read_as_slurms():
    # srun attach: the user's command reports its own refused connection; srun only says it failed.
    result = CommandResult(7, b"", b"curl: (7) Failed to connect to example.org port 80: Connection refused\n"
                                   b"srun: error: node01: task 0: Exited with exit code 7\n")
    assert not errors.unreachable(result)
    assert type(errors.error_for(result, "srun")) is InternalError


@pytest.mark.parametrize("command,mode,status,stderr", [c for c in CAPTURES if c[0] == "sbatch"],
                         ids=[m for c, m, _, _ in CAPTURES if c == "sbatch"])
def test_whether_the_request_may_have_reached_the_controller(command, mode, status, stderr):
    # Refused: the controller never saw it. Reset, hang-up, silence: sent first, it may have been acted on.
    assert errors.maybe_delivered(CommandResult(status, b"", stderr.encode())) == (mode != "refused")


def refused() -> CommandResult:
    return next(CommandResult(s, b"", e.encode()) for c, m, s, e in CAPTURES if (c, m) == ("sbatch", "refused"))


def test_a_submission_the_controller_refused_to_connect_is_503_at_once_and_never_run_again(system, monkeypatch):
    monkeypatch.setattr(scheduler, "SETTLE_SECONDS", 0)
    pool = Pool(sbatch=refused(), squeue=ok(read("squeue_jobs_alice_all_states.txt")))
    with pytest.raises(ServiceUnavailable, match="could not reach the Slurm controller"):
        asyncio.run(SlurmScheduler(client(pool)).submit(ALICE, system, SPEC, "firecrest-mesh:capture2"))
    assert [words for words, _, _ in pool.calls if "sbatch" in words] == [pool.calls[0][0]]
    assert len(pool.calls) == 1 and pool.idempotent == {"sbatch": False}  # no look-up, no second sbatch


def test_a_submission_reset_after_it_was_sent_is_looked_up_by_its_marker_not_resubmitted(system, monkeypatch):
    monkeypatch.setattr(scheduler, "SETTLE_SECONDS", 0)
    monkeypatch.setattr(delimited, "new_delimiter", lambda: SQ)
    reset = CommandResult(1, b"", CI_SEEN.encode())
    # The controller is back and holds the job: its id, from one sbatch.
    pool = Pool(sbatch=reset, squeue=ok(read("squeue_jobs_alice_all_states.txt")))
    assert asyncio.run(SlurmScheduler(client(pool)).submit(ALICE, system, SPEC, "firecrest-mesh:capture2")) == "6274"
    assert sum("sbatch" in words for words, _, _ in pool.calls) == 1 and pool.idempotent["sbatch"] is False
    # The controller is still away: the submission's own 503, still from one sbatch.
    down = CommandResult(1, b"", b"slurm_load_jobs error: Unable to contact slurm controller (connect failure)\n")
    pool = Pool(sbatch=reset, squeue=down)
    with pytest.raises(ServiceUnavailable, match=r"sbatch could not reach .*Connection reset by peer"):
        asyncio.run(SlurmScheduler(client(pool)).submit(ALICE, system, SPEC, "firecrest-mesh:capture2"))
    assert sum("sbatch" in words for words, _, _ in pool.calls) == 1
    # No job carries the marker: the 503 too (the caller may submit again; nothing was created).
    pool = Pool(sbatch=reset, squeue=ok(read("squeue_jobs_alice_all_states.txt")))
    with pytest.raises(ServiceUnavailable):
        asyncio.run(SlurmScheduler(client(pool)).submit(ALICE, system, SPEC, "firecrest-mesh:other"))
    assert sum("sbatch" in words for words, _, _ in pool.calls) == 1
