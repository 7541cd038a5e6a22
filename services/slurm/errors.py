"""Slurm's error messages (stderr) → the API error a user can act on: the one table, used by
`SlurmClient` for every Slurm command (compute's and status's).

Slurm CLIs report problems as text on stderr (often with exit status 0, e.g. `scancel`), so the
mapping reads the message itself, in two steps:
1. `unreachable`: whatever the command (sbatch, squeue, sacct, scontrol, scancel, sinfo, sacctmgr),
   a failure that says it could not talk to slurmctld or slurmdbd is 503 "retry shortly", before any
   user-error rule can read it. The rule is the kind of failure, not one text per command: Slurm
   prefixes the same few communication errors with each command's own words ("Batch job submission
   failed: ", "Kill job error on job id 1: ", "slurm_load_jobs error: "), so a variant no table
   foresaw (sbatch's "Connection reset by peer" when slurmctld died under load) fell to the 400 of
   "Batch job submission failed". Texts: Slurm 22.05's communication errors (slurm_errno.c, the
   persistent connection to slurmdbd) and glibc's texts of the socket errnos, which Slurm prints as
   they are; read only on Slurm's own diagnostic lines, never in a job's output (srun).
2. `_RULES`: the command's refusals (not found, denied, quota, what the user can fix). Order
   matters: the first matching rule wins.
"""

from __future__ import annotations

import re

from services.common.errors import (ApiError, BadRequest, Forbidden, InternalError, NotFound,
                                    RequestTimeout, ServiceUnavailable)
from services.common.ssh.command import CommandResult

JOB_NOT_FOUND = "Job not found"  # pyfirecrest's wait_for_job matches this substring

# Slurm's own diagnostic lines: "sbatch: error: …", "sacctmgr: fatal: …", slurm_perror's "<API call>
# error: …" ("slurm_load_jobs error: …", "slurm_get_job_steps error: …" of squeue --steps,
# "slurm_load_partitions: …" of sinfo), "job script retrieval failed: …" (scontrol write batch_script).
_DIAGNOSTIC = r"^(?:[\w-]+: (?:error|fatal): |slurm_\w+(?: error)?: |job script retrieval failed: )"
# Could not talk to slurmctld or slurmdbd (Slurm 22.05.8's texts, checked in libslurmfull.so).
_COMMUNICATION = (
    "Unable to contact slurm controller",  # SLURMCTLD_COMMUNICATIONS_*: (connect|send|receive|shutdown) failure
    "Communication connection failure", "Communication shutdown failure",  # SLURM_COMMUNICATIONS_*
    "Message send failure", "Message receive failure",
    "Socket timed out on send/recv operation",  # SLURM_PROTOCOL_SOCKET_IMPL_TIMEOUT: no answer in MessageTimeout
    "Zero Bytes were transmitted or received",  # SLURM_PROTOCOL_SOCKET_ZERO_BYTES_SENT: the daemon hung up
    "Received zero length message", "Failed to send entire message", "Unexpected missing socket error",
    "Slurm backup controller in standby mode", "Controller is in standby mode",
    "Unable to connect to database", "Problem talking to the database",  # slurmdbd, or its MariaDB
    "Database connection reference is invalid",
    # glibc's strerror of the socket errnos (ECONNRESET, ECONNREFUSED, ETIMEDOUT, EPIPE, ENETUNREACH,
    # EHOSTUNREACH, ENOTCONN, ESHUTDOWN, ECONNABORTED, ENETDOWN, EHOSTDOWN, ENETRESET)
    "Connection reset by peer", "Connection refused", "Connection timed out", "Broken pipe",
    "Network is unreachable", "No route to host", "Transport endpoint is not connected",
    "Cannot send after transport endpoint shutdown", "Software caused connection abort", "Network is down",
    "Host is down", "Network dropped connection on reset",
)
# The persistent connection to slurmdbd (sacct, sacctmgr): "slurm_persist_conn_open: No response to
# persist_init", "Sending PersistInit msg: …", "_conn_readable: …", "DBD_GET_JOBS_COND failure: …".
_PERSISTENT = (r"slurm_persist_conn|persist_init|PersistInit|persistent connection|_conn_readable|DBD_\w+ failure|"
               r"slurmdbd: .*(?:down|unreachable)")
_UNREACHABLE = re.compile(_DIAGNOSTIC + r".*?(?:" + "|".join(map(re.escape, _COMMUNICATION)) + "|" + _PERSISTENT + ")",
                          re.M | re.I)
# Communication failures that come before a request was sent: the daemon cannot have acted on it.
_NOT_SENT = re.compile(r"connect failure|Connection refused|Network is unreachable|No route to host|Network is down|"
                       r"Host is down|failed to open persistent connection", re.I)
_ACCOUNTING = ("sacct", "sacctmgr")  # the commands that talk to slurmdbd; the others talk to slurmctld

_RULES: list[tuple[re.Pattern, type[ApiError], str | None]] = [
    # slurmdbd answering while its MariaDB is down: "Immediate execution impossible, insufficient
    # priority" (exit 221) until the database is back (kill-anything suite).
    (re.compile(r"sacct: error: Immediate execution impossible", re.I), ServiceUnavailable, None),
    # Attach to a job that is not running (checked before "Expired or invalid job", which srun adds).
    (re.compile(r"Job is pending execution|Slurm job \d+ has expired", re.I), BadRequest, None),
    (re.compile(r"Invalid job id specified|Expired or invalid job|does not exist|Bad job/step specified", re.I),
     NotFound, JOB_NOT_FOUND),
    (re.compile(r"Access/permission denied|Invalid user id|Permission denied|not owner", re.I), Forbidden, None),
    # Quotas: FirecREST v2's SlurmQuotaError (403).
    (re.compile(r"(QOS|Assoc)(Grp|Max|Min)\w*Limit|Job violates accounting/QOS policy", re.I), Forbidden, None),
    # Refusals the user can fix: partition, account, reservation, features, script, limits, an #SBATCH
    # directive sbatch does not know ("sbatch: unrecognized option '--nonsense'", exit 255).
    (re.compile(r"Batch job submission failed|Invalid (partition|account|feature|qos)|Requested reservation|"
                r"Unable to open file|does not look like a batch script|Batch script|invalid|Job/step already completing "
                r"or completed|Unable to create step|Requested time limit|unrecognized option",
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


def unreachable(result: CommandResult) -> bool:
    """True when the command failed because it could not talk to slurmctld or slurmdbd."""
    return bool(_UNREACHABLE.search(result.error_text()))


def maybe_delivered(result: CommandResult) -> bool:
    """For an `unreachable` failure: True unless it happened before the request left (connection
    refused, no route): the connection was reset, hung up or timed out after sending, so the daemon
    may have acted on it (an sbatch whose job may exist)."""
    return any(_UNREACHABLE.match(line) and not _NOT_SENT.search(line)
               for line in result.error_text().splitlines())


def error_for(result: CommandResult, command: str) -> ApiError:
    """The API error for a failed Slurm command (exit status ≠ 0 or an `error:` on stderr)."""
    if result.exit_status == 124:
        return RequestTimeout(f"Remote process failed with exit status:124 ({command} timed out)")
    stderr = result.error_text()
    if unreachable(result):
        daemon = "accounting database (slurmdbd)" if command in _ACCOUNTING else "controller (slurmctld)"
        return ServiceUnavailable(f"The scheduler is unavailable: {command} could not reach the Slurm {daemon}; "
                                  f"retry shortly. {slurm_message(stderr)}")
    for pattern, kind, message in _RULES:
        if pattern.search(stderr):
            return kind(message or slurm_message(stderr))
    return InternalError(f"Remote process failed with exit status:{result.exit_status} "
                         f"and error message:{stderr}")


_FAILURE_LINE = re.compile(r"^[\w-]+: error: |^job script retrieval failed: |^slurm_\w+ error: ", re.M)


def failed(result: CommandResult) -> bool:
    """True when a Slurm command failed: non-zero exit, or an error line on stderr (`scancel` and
    `scontrol write batch_script` exit 0 after refusing)."""
    return not result.ok or bool(_FAILURE_LINE.search(result.error_text()))
