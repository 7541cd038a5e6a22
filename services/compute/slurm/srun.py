"""`srun --jobid --overlap`: runs a command inside a running job's allocation (attach).

The command is a shell command line given by the caller; it runs as the caller inside the job,
via `/bin/sh -c`, so it is one quoted argument here and only the job's shell interprets it.
"""

from __future__ import annotations


def argv(job_id: str, command: str) -> list[str]:
    return ["srun", f"--jobid={job_id}", "--overlap", "--", "/bin/sh", "-c", command]
