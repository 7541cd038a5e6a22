"""`scontrol show -o job` (stream paths) and `scontrol write batch_script` (the script).

Slurm 22.05's scontrol has no JSON output. A record is one line of `Key=Value` pairs where values may
contain spaces (and `Key=`-like text: a job name is free text). The fields read here come last in
the record (`WorkDir= StdErr= StdIn= StdOut= Power=`) and are written by the job's owner only, so
they are cut from the right, at the last occurrence of each key.
"""

from __future__ import annotations

from firecrest_mesh.compute.v1 import compute_pb2

_TAIL_KEYS = ("WorkDir", "StdErr", "StdIn", "StdOut", "Power")


def show_argv(job_id: str) -> list[str]:
    return ["scontrol", "show", "-o", "job", job_id]


def script_argv(job_id: str) -> list[str]:
    return ["scontrol", "write", "batch_script", job_id, "-"]


def tail_fields(line: str) -> dict[str, str]:
    """The trailing `WorkDir`…`Power` fields of one `scontrol show -o job` record."""
    fields: dict[str, str] = {}
    rest = line.rstrip("\n")
    for key in reversed(_TAIL_KEYS):
        cut = rest.rfind(f" {key}=")
        if cut < 0:
            continue
        fields[key] = rest[cut + len(key) + 2:].strip()
        rest = rest[:cut]
    return fields


def parse_metadata(job_id: str, show_stdout: str, script: str) -> compute_pb2.JobMetadata:
    record = next((line for line in show_stdout.splitlines() if line.startswith("JobId=")), "")
    f = tail_fields(record)
    return compute_pb2.JobMetadata(job_id=job_id, script=script, standard_input=f.get("StdIn", ""),
                                   standard_output=f.get("StdOut", ""), standard_error=f.get("StdErr", ""))
