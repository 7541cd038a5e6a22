"""What every transfer job shares (FirecREST v2's `JobHelper`): the working directory
`<default_work_dir filesystem>/<username>`, stdin `/dev/null`, the hidden log files
`.f7t_file_handling_job_<uuid>.log` / `.f7t_file_handling_job_error_<uuid>.log` there, `PATH`, and the
script's header: the system's `datatransfer_jobs_directives` with `{account}` replaced.

`step()` is the one way a script runs a command: quoted by `shell_join`, its failure reported on
stderr as "Unable to <what>, exit code:<rc>" with that exit status.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Sequence

from firecrest_mesh.storage.v1 import storage_pb2
from services.common.config import SLURM_ACCOUNT_RE, SystemConfig
from services.common.errors import BadRequest
from services.common.identity import Caller
from services.common.ssh.command import shell_join
from services.compute.scheduler import JobSpec
from services.storage.settings import ACCOUNT_PLACEHOLDER

JOB_PATH = "/bin:/usr/bin/:/usr/local/bin/"


@dataclass(frozen=True)
class TransferJobPlan:
    """Where a transfer job runs and logs, before it is submitted."""
    system: str
    working_directory: str
    output_log: str
    error_log: str

    def answer(self, job_id: str) -> storage_pb2.TransferJob:
        """The API's `transferJob` for the submitted job."""
        return storage_pb2.TransferJob(
            job_id=job_id, system=self.system, working_directory=self.working_directory,
            logs=storage_pb2.TransferJobLogs(output_log=self.output_log, error_log=self.error_log))


def plan(system: SystemConfig, who: Caller) -> TransferJobPlan:
    """The working directory and fresh log names of a new transfer job of `who`."""
    roots = [fs.path for fs in system.file_systems if fs.default_work_dir]
    if not roots:
        raise BadRequest(f"System {system.name} has no filesystem marked default_work_dir for transfer jobs.")
    workdir = roots[0].rstrip("/") + "/" + who.username
    tag = uuid.uuid4()
    return TransferJobPlan(system.name, workdir, f"{workdir}/.f7t_file_handling_job_{tag}.log",
                           f"{workdir}/.f7t_file_handling_job_error_{tag}.log")


def directives(system: SystemConfig, account: str) -> list[str]:
    """The system's `#SBATCH` lines with `{account}` replaced; lines naming it are dropped without an
    account (Slurm then uses the user's default account). 400 for an account Slurm would not name."""
    if account and not SLURM_ACCOUNT_RE.match(account):
        raise BadRequest(f"Invalid account {account[:100]!r}: expected a Slurm account name.")
    lines = []
    for line in system.datatransfer_jobs_directives:
        if ACCOUNT_PLACEHOLDER in line:
            if not account:
                continue
            line = line.replace(ACCOUNT_PLACEHOLDER, account)
        lines.append(line)
    return lines


def step(argv: Sequence[str], what: str) -> str:
    """A script line that runs `argv` and, when it fails, says so on stderr and exits with its status."""
    return (f"{shell_join(argv)} || {{ rc=$?; echo \"Unable to {what}, exit code:$rc\" >&2; exit $rc; }}")


def job_spec(system: SystemConfig, job: TransferJobPlan, name: str, account: str, body: str) -> JobSpec:
    """The scheduler submission: `#!/bin/bash`, the directives, then `body` (which ends with the
    success line)."""
    script = "\n".join(["#!/bin/bash", *directives(system, account), "set -u", body.rstrip("\n"), ""])
    return JobSpec(working_directory=job.working_directory, env=(("PATH", JOB_PATH),), script=script,
                   name=name, standard_input="/dev/null", standard_output=job.output_log,
                   standard_error=job.error_log)
