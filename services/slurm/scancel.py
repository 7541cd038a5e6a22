"""`scancel --verbose <id>`: cancels a job.

Slurm reports refusals on stderr with exit status 0 (`scancel: error: Kill job error on job id 2:
Access/permission denied`): `errors.failed` reads them. On success it prints nothing to stdout.
"""

from __future__ import annotations


def command(job_id: str) -> list[str]:
    return ["scancel", "--verbose", job_id]


def parse(stdout: str) -> None:
    """Nothing to read: a cancellation succeeded when `errors.failed` finds no refusal."""
    return None
