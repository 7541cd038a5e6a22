"""`scancel --verbose`: cancels a job. Slurm reports refusals on stderr, sometimes with exit 0."""

from __future__ import annotations


def argv(job_id: str) -> list[str]:
    return ["scancel", "--verbose", job_id]
