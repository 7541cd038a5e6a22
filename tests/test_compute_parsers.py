"""Unit tests of the compute service's Slurm command builders and parsers, fed with real output
captured from Slurm 22.05.8 (services/compute/slurm/captured/), hostile job names included."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
from google.protobuf import json_format

from firecrest_mesh.compute.v1 import compute_pb2
from services.common.errors import BadRequest, Forbidden, InternalError, NotFound, RequestTimeout, ServiceUnavailable
from services.common.ssh.command import CommandResult, shell_join
from services.compute.scheduler import JobQuery, JobSpec, require_job_id
from services.compute.service import job_query, job_spec
from services.compute.slurm import errors, sacct, sbatch, scontrol, squeue, srun
from services.compute.slurm.values import wait_status

CAPTURED = Path(__file__).resolve().parents[1] / "services" / "compute" / "slurm" / "captured"


def read(name: str) -> str:
    return (CAPTURED / name).read_text()


def as_dict(job: compute_pb2.Job) -> dict:
    return json_format.MessageToDict(job)


# -- sacct ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def history():
    codes = sacct.parse_exit_codes(read("sacct_exit_codes_22.05.txt"))
    return {j.job.job_id: j for j in sacct.parse(read("sacct_22.05.json"), codes)}


def test_sacct_exit_code_of_failed_script_comes_from_parsable_query(history):
    # The JSON says return_code 0 for this job (Slurm 22.05 bug); the script ran `exit 3`.
    status = as_dict(history["3"].job)["status"]
    assert status == {"state": "FAILED", "stateReason": "None", "exitCode": 3, "interruptSignal": 0}


def test_sacct_signal_and_cancelled_by(history):
    assert as_dict(history["11"].job)["status"]["interruptSignal"] == 9
    cancelled = as_dict(history["10"].job)
    assert cancelled["status"]["state"] == "CANCELLED by 1001"
    assert cancelled["killRequestUser"] == "alice"
    assert list(history["10"].job.tasks) == []  # cancelled while pending: no step ran


def test_sacct_job_fields_and_steps(history):
    job = as_dict(history["12"].job)
    assert job["jobId"] == "12" and job["name"] == "attachme" and job["user"] == "alice"
    assert job["account"] == "proj-a" and job["partition"] == "normal" and job["nodes"] == "node01"
    assert job["cluster"] == "local" and job["workingDirectory"] == "/home/alice"
    assert job["allocationNodes"] == 1 and isinstance(job["priority"], float)
    assert [t["id"] for t in job["tasks"]] == ["12.batch", "12.0", "12.1"]
    assert job["tasks"][2]["status"]["state"] == "CANCELLED by 1001"
    assert job["time"]["limit"] is None  # unlimited
    assert as_dict(history["1"].job)["time"]["limit"] == 525600 * 60


def test_sacct_name_with_separator_characters(history):
    assert history["2"].job.name == "probe 2;x"


def test_sacct_argv_filters():
    q = JobQuery(allusers=False, account="proj-a", name="a b|c", time_window="3d")
    argv = sacct.json_argv("alice", q)
    assert argv == ["sacct", "--json", "--user=alice", "--starttime=now-3days", "--account=proj-a", "--name=a b|c"]
    assert sacct.json_argv("alice", JobQuery(allusers=True))[2] == "--allusers"
    assert sacct.exit_codes_argv("bob", job_id="42")[-2:] == ["--allusers", "--jobs=42"]


# -- squeue -----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def queue():
    return {j.job.job_id: j for j in squeue.parse(read("squeue_22.05.json"), now=1795691060)}


def test_squeue_pending_job_with_hostile_name(queue):
    job = as_dict(queue["9"].job)
    assert job["name"] == "pend|ing UserId=bob(1) x"
    assert job["status"]["state"] == "PENDING" and job["status"]["stateReason"] == "BeginTime"
    assert job["time"]["elapsed"] == 0 and queue["9"].job.nodes == ""


def test_squeue_running_job_elapsed_and_exit_status(queue):
    running = as_dict(queue["12"].job)
    assert running["status"]["state"] == "RUNNING"
    assert running["time"]["elapsed"] == 1795691060 - running["time"]["start"]
    assert as_dict(queue["3"].job)["status"]["exitCode"] == 3  # raw wait status 768


def test_squeue_comment_is_read():
    jobs = squeue.parse(read("squeue_marked_22.05.json"), now=0)
    assert [j.job.job_id for j in jobs if j.comment == "firecrest-mesh:abc123"] == ["13"]


@pytest.mark.parametrize("raw,expected", [(0, (0, 0)), (768, (3, 0)), (9, (0, 9)), (4021, (0, 53)), (None, (None, None))])
def test_wait_status(raw, expected):
    assert wait_status(raw) == expected


# -- scontrol ---------------------------------------------------------------------------------------

def test_scontrol_metadata_paths_with_spaces():
    meta = scontrol.parse_metadata("11", read("scontrol_show_job_spaces.txt"), "#!/bin/bash\n")
    assert meta.standard_output == "/scratch/alice/out dir 11.txt"
    assert meta.standard_error == "/scratch/alice/out dir 11.txt"
    assert meta.standard_input == "/dev/null"


def test_scontrol_metadata_hostile_name_does_not_shift_fields():
    meta = scontrol.parse_metadata("9", read("scontrol_show_job_hostile_name.txt"), "x")
    assert meta.standard_output == "/home/alice/slurm-9.out" and meta.script == "x"


# -- sbatch -----------------------------------------------------------------------------------------

def spec(**kw) -> JobSpec:
    base = dict(working_directory="/home/alice", env=(("X", "a,b'c\"$(id)"),), script="#!/bin/bash\n")
    base.update(kw)
    return JobSpec(**base)


def test_sbatch_argv_quotes_metacharacters_literally():
    argv = sbatch.argv(spec(name="n;$(touch /tmp/pwn)|x", partition="normal"), "firecrest-mesh:m")
    line = shell_join(argv)
    assert shlex.split(line) == argv  # the remote shell sees exactly these arguments
    assert "X=a,b'c\"$(id)" in argv and "--job-name=n;$(touch /tmp/pwn)|x" in argv
    assert argv.index("sbatch") == 2 and "--export=ALL" in argv and "--comment=firecrest-mesh:m" in argv


def test_sbatch_script_path_comes_after_double_dash():
    argv = sbatch.argv(spec(script=None, script_path="/home/alice/job.sh"), "m")
    assert argv[-2:] == ["--", "/home/alice/job.sh"]


@pytest.mark.parametrize("out,expected", [("4242\n", "4242"), ("4242;local\n", "4242"), ("", None),
                                          ("Submitted batch job 1\n", None)])
def test_sbatch_parse(out, expected):
    assert sbatch.parse(out) == expected


def test_srun_command_is_one_argument():
    assert srun.argv("12", "echo $HOSTNAME; id")[-3:] == ["/bin/sh", "-c", "echo $HOSTNAME; id"]


# -- request validation -----------------------------------------------------------------------------

def description(**kw) -> compute_pb2.JobDescription:
    return json_format.ParseDict(kw, compute_pb2.JobDescription())


def test_job_spec_accepts_every_working_directory_spelling_and_env_forms():
    assert job_spec(description(working_directory="/w", script="s")).working_directory == "/w"
    assert job_spec(description(currentWorkingDirectory="/c", script="s")).working_directory == "/c"
    assert job_spec(description(workingDirectory="/w", script="s")).env == (("F7T_version", "v2.0.0"),)
    assert dict(job_spec(description(workingDirectory="/w", script="s", env={"A": "1", "N": 3})).env) == {"A": "1", "N": "3"}
    assert job_spec(description(workingDirectory="/w", script="s", environment=["A=x=y"])).env == (("A", "x=y"),)


@pytest.mark.parametrize("kw", [
    dict(script="s"),  # no working directory
    dict(workingDirectory="rel", script="s"),
    dict(workingDirectory="/w"),  # no script
    dict(workingDirectory="/w", script="s", scriptPath="/x"),
    dict(workingDirectory="/w", scriptPath="x.sh"),
    dict(workingDirectory="/w", script="s", standardOutput="out.txt"),
    dict(workingDirectory="/w", script="s", env={"A;B": "x"}),
    dict(workingDirectory="/w", script="s", env=["NOEQUALS"]),
])
def test_job_spec_rejects(kw):
    with pytest.raises(BadRequest):
        job_spec(description(**kw))


@pytest.mark.parametrize("job_id", ["12", "abc12"])
def test_job_id_valid(job_id):
    assert require_job_id(job_id) == job_id


@pytest.mark.parametrize("job_id", ["", "1;id", "1 2", "../1", "1\n"])
def test_job_id_invalid(job_id):
    with pytest.raises(BadRequest):
        require_job_id(job_id)


def test_time_window_default_and_invalid():
    assert job_query(compute_pb2.ListJobsRequest(time_window="")).time_window == "24h"
    with pytest.raises(BadRequest):
        job_query(compute_pb2.ListJobsRequest(time_window="2h"))


# -- errors (stderr captured from Slurm 22.05.8) -----------------------------------------------------

@pytest.mark.parametrize("stderr,rc,kind,text", [
    ("sbatch: error: invalid partition specified: nope\nsbatch: error: Batch job submission failed: "
     "Invalid partition name specified", 1, BadRequest, "Invalid partition name specified"),
    ("sbatch: error: Batch job submission failed: Invalid account or account/partition combination specified",
     1, BadRequest, "Invalid account"),
    ("sbatch: error: Batch job submission failed: Requested reservation is invalid", 1, BadRequest, "reservation"),
    ("sbatch: error: Batch job submission failed: Job violates accounting/QOS policy (job submit limit, user's "
     "size and/or time limits)", 1, Forbidden, "QOS"),
    ("sbatch: error: Batch job submission failed: Unable to contact slurm controller (connect failure)", 1,
     ServiceUnavailable, "controller"),
    ("scancel: Terminating job 9999\nscancel: error: Kill job error on job id 9999: Invalid job id specified", 0,
     NotFound, "Job not found"),
    ("scancel: Terminating job 2\nscancel: error: Kill job error on job id 2: Access/permission denied", 0,
     Forbidden, "Access/permission denied"),
    ("job script retrieval failed: Invalid user id", 0, Forbidden, "Invalid user id"),  # exit 0!
    ("job script retrieval failed: Invalid job id specified", 0, NotFound, "Job not found"),
    ("srun: error: Unable to create step for job 12: Access/permission denied", 1, Forbidden, "denied"),
    ("srun: error: Unable to confirm allocation for job 9: Job is pending execution\n"
     "srun: Check SLURM_JOB_ID environment variable. Expired or invalid job 9", 1, BadRequest, "pending"),
    ("slurm_load_jobs error: Invalid job id specified", 1, NotFound, "Job not found"),
    ("", 124, RequestTimeout, "124"),
    ("something odd", 2, InternalError, "something odd"),
])
def test_error_mapping(stderr, rc, kind, text):
    result = CommandResult(rc, b"", stderr.encode())
    assert errors.failed(result)
    err = errors.error_for(result, "cmd")
    assert type(err) is kind and text in err.message


def test_scancel_success_with_verbose_chatter_is_not_a_failure():
    assert not errors.failed(CommandResult(0, b"", b"scancel: Terminating job 12\n"))
