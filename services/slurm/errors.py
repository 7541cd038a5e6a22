"""Slurm's error messages (stderr) → the API error a user can act on: the one table, used by
`SlurmClient` for every Slurm command (compute's and status's).

Slurm CLIs report problems as text on stderr (often with exit status 0, e.g. `scancel`), so the
mapping matches the message itself. Order matters: the first matching rule wins.
"""

from __future__ import annotations

import re

from services.common.errors import (ApiError, BadRequest, Forbidden, InternalError, NotFound,
                                    RequestTimeout, ServiceUnavailable)
from services.common.ssh.command import CommandResult

JOB_NOT_FOUND = "Job not found"  # pyfirecrest's wait_for_job matches this substring

_RULES: list[tuple[re.Pattern, type[ApiError], str | None]] = [
    # Controller or accounting database down or unreachable. slurmdbd killed mid-query: sacct's
    # persistent connection reset ("_conn_readable: persistent connection ... experienced error",
    # "DBD_GET_JOBS_COND failure"); its MariaDB down: slurmdbd answers sacct "Immediate execution
    # impossible, insufficient priority" (exit 221) until the database is back, or "Unable to connect
    # to database" (exit 88) while it reconnects (kill-anything suite).
    (re.compile(r"Unable to contact slurm controller|Socket timed out|Problem talking to the database|"
                r"Connection refused|slurmdbd: .*(down|unreachable)|Zero Bytes were transmitted|"
                r"persistent connection|slurm_persist_conn|DBD_\w+ failure|"
                r"sacct: error: Immediate execution impossible|Unable to connect to database",
                re.I), ServiceUnavailable, None),
    # Attach to a job that is not running (checked before "Expired or invalid job", which srun adds).
    (re.compile(r"Job is pending execution|Slurm job \d+ has expired", re.I), BadRequest, None),
    (re.compile(r"Invalid job id specified|Expired or invalid job|does not exist|Bad job/step specified", re.I),
     NotFound, JOB_NOT_FOUND),
    (re.compile(r"Access/permission denied|Invalid user id|Permission denied|not owner", re.I), Forbidden, None),
    # Quotas: FirecREST v2's SlurmQuotaError (403).
    (re.compile(r"(QOS|Assoc)(Grp|Max|Min)\w*Limit|Job violates accounting/QOS policy", re.I), Forbidden, None),
    # Refusals the user can fix: partition, account, reservation, features, script, limits.
    (re.compile(r"Batch job submission failed|Invalid (partition|account|feature|qos)|Requested reservation|"
                r"Unable to open file|does not look like a batch script|Batch script|invalid|Job/step already completing "
                r"or completed|Unable to create step|Requested time limit",
                re.I), BadRequest, None),
]


def slurm_message(stderr: str) -> str:
    """The meaningful lines of a Slurm stderr: `sbatch: error: X` → `X`, verbose chatter dropped."""
    lines = []
    for line in stderr.splitlines():
        line = line.strip()
        m = re.match(r"^[\w-]+: error: (.*)$", line)
        if m:
            lines.append(m.group(1))
        elif line and not re.match(r"^[\w-]+: (Terminating job|Check SLURM_JOB_ID|forcing|got SIG)", line):
            lines.append(line)
    return "\n".join(lines) or stderr.strip()


def program(argv: list[str]) -> str:
    """The program an argument list runs, for messages: `sacct` of `env SLURM_TIME_FORMAT=%s sacct ...`."""
    return next((arg for arg in argv if arg != "env" and "=" not in arg), argv[0])


def error_for(result: CommandResult, command: str) -> ApiError:
    """The API error for a failed Slurm command (exit status ≠ 0 or an `error:` on stderr)."""
    if result.exit_status == 124:
        return RequestTimeout(f"Remote process failed with exit status:124 ({command} timed out)")
    stderr = result.error_text()
    for pattern, kind, message in _RULES:
        if pattern.search(stderr):
            return kind(message or slurm_message(stderr))
    return InternalError(f"Remote process failed with exit status:{result.exit_status} "
                         f"and error message:{stderr}")


_FAILURE_LINE = re.compile(r"^[\w-]+: error: |^job script retrieval failed: |^slurm_load_jobs error: ", re.M)


def failed(result: CommandResult) -> bool:
    """True when a Slurm command failed: non-zero exit, or an error line on stderr (`scancel` and
    `scontrol write batch_script` exit 0 after refusing)."""
    return not result.ok or bool(_FAILURE_LINE.search(result.error_text()))
