"""`scontrol show -o job <id>`: a job's stream paths (its metadata; the script is `scontrol_batch_script`).

The fields read here come last in the record (`WorkDir= StdErr= StdIn= StdOut= Power=`) and are
written by the job's owner only, so they are read as `scontrol_records`' trailing fields: cut from the
right, where a hostile job name earlier in the line cannot shift them.
"""

from __future__ import annotations

from firecrest_mesh.compute.v1 import compute_pb2
from services.slurm import scontrol_records

TRAILING = ("WorkDir", "StdErr", "StdIn", "StdOut", "Power")


def command(job_id: str) -> list[str]:
    return ["scontrol", "show", "-o", "job", job_id]


def parse(stdout: str, job_id: str) -> compute_pb2.JobMetadata:
    """The job's stream paths (the script is left empty)."""
    line = next((line for line in stdout.splitlines() if line.startswith("JobId=")), "")
    f = scontrol_records.record(line, TRAILING)
    return compute_pb2.JobMetadata(job_id=job_id, standard_input=f.get("StdIn", ""),
                                   standard_output=f.get("StdOut", ""), standard_error=f.get("StdErr", ""))
