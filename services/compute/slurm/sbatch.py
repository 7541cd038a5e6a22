"""`sbatch`: submits a batch job; the script arrives on stdin or is a path on the system.

Environment variables are not passed through `--export=ALL,K=V` (Slurm splits that list on commas,
so a value with a comma or quote would be mangled). They are set on the sbatch process with `env
NAME=value` arguments and exported with `--export=ALL`: every value reaches the job literally.
The marker (`--comment`) lets a caller find the job when the submission's outcome is unknown.
"""

from __future__ import annotations

import re

from services.compute.scheduler import JobSpec

_SUBMITTED = re.compile(r"^(\d+)(?:;\S+)?\s*$", re.M)


def argv(spec: JobSpec, marker: str) -> list[str]:
    """The argument list; the script text (if any) goes to stdin."""
    command = ["env", *(f"{k}={v}" for k, v in spec.env),
               "sbatch", "--parsable", "--export=ALL", f"--chdir={spec.working_directory}",
               f"--comment={marker}"]
    for option, value in (("--job-name", spec.name), ("--partition", spec.partition),
                          ("--reservation", spec.reservation), ("--account", spec.account),
                          ("--constraint", spec.constraints), ("--input", spec.standard_input),
                          ("--output", spec.standard_output), ("--error", spec.standard_error)):
        if value:
            command.append(f"{option}={value}")
    if spec.script_path:
        command += ["--", spec.script_path]
    return command


def parse(stdout: str) -> str | None:
    """The job id from `--parsable` output (`4242` or `4242;cluster`), or None."""
    m = _SUBMITTED.search(stdout)
    return m.group(1) if m else None
