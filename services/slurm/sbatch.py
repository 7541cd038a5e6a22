"""`sbatch`: submits a batch job; the script arrives on stdin or is a path on the system.

Environment variables are not passed through `--export=ALL,K=V` (Slurm splits that list on commas,
so a value with a comma or quote would be mangled), nor set on the sbatch process itself (then a
job's `PATH`, `LD_PRELOAD`, `SLURM_CONF` or `SBATCH_*` variables would change how sbatch runs: a `PATH`
without sbatch made the submission fail, `SLURM_CONF` made it hang, `SBATCH_WAIT` made it wait for the
job). They reach the job through `--export-file=3`: a fixed bash script writes the login environment
(`env -0`, what `--export=ALL` would export) followed by the job's `NAME=value` definitions, NUL
separated, to file descriptor 3 (a later definition of a name wins). Every value reaches the job
literally; sbatch's own environment is the login environment.
The marker (`--comment`) lets a caller find the job when the submission's outcome is unknown.
"""

from __future__ import annotations

import re

from services.compute.scheduler import JobSpec

_SUBMITTED = re.compile(r"^(\d+)(?:;\S+)?\s*$", re.M)
# Fixed script: $1 = how many NAME=value definitions follow, then the definitions, then the sbatch
# argv. User text only ever arrives as positional parameters, never as part of the script.
ENV_FILE_SCRIPT = ('n=$1; shift; vars=("${@:1:n}"); shift "$n"; '
                   'exec "$@" 3< <(env -0; if [ "$n" -gt 0 ]; then printf \'%s\\0\' "${vars[@]}"; fi)')


def command(spec: JobSpec, marker: str) -> list[str]:
    """The argument list; the script text (if any) goes to stdin. The job environment reaches sbatch
    on file descriptor 3 (see the module's docstring)."""
    definitions = [f"{k}={v}" for k, v in spec.env]
    sbatch = ["sbatch", "--parsable", "--export=ALL", "--export-file=3", f"--chdir={spec.working_directory}",
              f"--comment={marker}"]
    for option, value in (("--job-name", spec.name), ("--partition", spec.partition),
                          ("--reservation", spec.reservation), ("--account", spec.account),
                          ("--constraint", spec.constraints), ("--input", spec.standard_input),
                          ("--output", spec.standard_output), ("--error", spec.standard_error)):
        if value:
            sbatch.append(f"{option}={value}")
    if spec.script_path:
        sbatch += ["--", spec.script_path]
    return ["bash", "-c", ENV_FILE_SCRIPT, "bash", str(len(definitions)), *definitions, *sbatch]


def parse(stdout: str) -> str | None:
    """The job id from `--parsable` output (`4242` or `4242;cluster`), or None."""
    m = _SUBMITTED.search(stdout)
    return m.group(1) if m else None
