"""`scontrol write batch_script <id> -`: a job's batch script, to stdout.

Slurm gives it to the job's owner (and operators) only; a refusal is `job script retrieval failed:
Invalid user id` on stderr with exit status 0 (`errors.failed` catches it).
"""

from __future__ import annotations


def command(job_id: str) -> list[str]:
    return ["scontrol", "write", "batch_script", job_id, "-"]


def parse(stdout: str) -> str:
    """The script, exactly as submitted."""
    return stdout
