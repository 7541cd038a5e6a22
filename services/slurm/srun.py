"""`srun --jobid --overlap`: runs a command inside a running job's allocation (attach).

The command is a shell command line given by the caller; it runs as the caller inside the job,
via `/bin/sh -c`, so it is one quoted argument here and only the job's shell interprets it.
"""

from __future__ import annotations


def command(job_id: str, shell_command: str) -> list[str]:
    return ["srun", f"--jobid={job_id}", "--overlap", "--", "/bin/sh", "-c", shell_command]


def parse(stdout: str) -> str:
    """What the command printed (the API does not return it: attaching answers 204)."""
    return stdout
