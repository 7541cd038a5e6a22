"""Unit tests of the compute service's Slurm command builders and parsers, fed with real output
captured from Slurm 22.05.8 (services/compute/slurm/captured/), hostile job names included."""

from __future__ import annotations

import asyncio
import shlex
from pathlib import Path

import pytest
from google.protobuf import json_format

from firecrest_mesh.compute.v1 import compute_pb2
from services.common.errors import BadRequest, Forbidden, InternalError, NotFound, RequestTimeout, ServiceUnavailable
from services.common.ssh.command import CommandResult, shell_join
from services.compute.scheduler import JobQuery, JobSpec, require_job_id
from services.common.config import load_config
from services.compute.validation import job_query, job_spec
from services.common import slurm_errors as errors
from services.compute.slurm import getent, sacct, sbatch, scontrol, squeue, srun
from services.compute.slurm.values import wait_status

CAPTURED = Path(__file__).resolve().parents[1] / "services" / "compute" / "slurm" / "captured"


def read(name: str) -> str:
    return (CAPTURED / name).read_text()


def as_dict(job: compute_pb2.Job) -> dict:
    return json_format.MessageToDict(job)


# -- sacct ------------------------------------------------------------------------------------------

# Delimiters the captures were made with: a random one (as every query uses), and a "guessed" one
# that hostile job names 263 (`half|G_uessed|open`) and 267 (a whole forged record after a newline) hold.
DELIMITER = "|zpEGafCy|"
GUESSED = "|G_uessed|"
NAMES = {0: "root", 1001: "alice"}  # what getent_passwd.txt gives


def parsed(name: str, delimiter: str) -> dict[str, compute_pb2.Job]:
    return {j.job.job_id: j.job for j in sacct.jobs(sacct.records(read(name), delimiter), NAMES)}


@pytest.fixture(scope="module")
def rows():
    return sacct.records(read("sacct_parsable_22.05.txt"), DELIMITER)


@pytest.fixture(scope="module")
def history(rows):
    return {j.job.job_id: j for j in sacct.jobs(rows, NAMES)}


# What GET /compute/local/jobs/{id} served for these jobs with the former `sacct --json` query.
SERVED_12 = {
    "jobId": "12", "name": "attachme", "account": "proj-a", "allocationNodes": 1, "cluster": "local",
    "group": "alice", "killRequestUser": None, "nodes": "node01", "partition": "normal", "priority": 4294901750,
    "status": {"exitCode": 0, "interruptSignal": 15, "state": "CANCELLED", "stateReason": "None"},
    "tasks": [
        {"id": "12.batch", "name": "batch",
         "status": {"exitCode": 0, "interruptSignal": 15, "state": "CANCELLED", "stateReason": None},
         "time": {"elapsed": 6, "end": 1795691055, "limit": None, "start": 1795691049, "suspended": 0}},
        {"id": "12.0", "name": "bash",
         "status": {"exitCode": 0, "interruptSignal": 0, "state": "COMPLETED", "stateReason": None},
         "time": {"elapsed": 0, "end": 1795691050, "limit": None, "start": 1795691050, "suspended": 0}},
        {"id": "12.1", "name": "sleep",
         "status": {"exitCode": 0, "interruptSignal": 9, "state": "CANCELLED by 1001", "stateReason": None},
         "time": {"elapsed": 5, "end": 1795691055, "limit": None, "start": 1795691050, "suspended": 0}}],
    "time": {"elapsed": 6, "end": 1795691055, "limit": None, "start": 1795691049, "suspended": 0},
    "user": "alice", "workingDirectory": "/home/alice"}
SERVED_257 = {
    "jobId": "257", "name": "root\nkill|me", "account": "proj-a", "allocationNodes": 1, "cluster": "local",
    "group": "alice", "killRequestUser": "root", "nodes": "node01", "partition": "normal", "priority": 4294901505,
    "status": {"exitCode": 0, "interruptSignal": 0, "state": "CANCELLED by 0", "stateReason": "None"},
    "tasks": [{"id": "257.batch", "name": "batch",
               "status": {"exitCode": 0, "interruptSignal": 15, "state": "CANCELLED", "stateReason": None},
               "time": {"elapsed": 4, "end": 1795692165, "limit": None, "start": 1795692161, "suspended": 0}}],
    "time": {"elapsed": 4, "end": 1795692165, "limit": None, "start": 1795692161, "suspended": 0},
    "user": "alice", "workingDirectory": "/home/alice"}


def test_sacct_jobs_are_what_the_json_query_served(history):
    assert as_dict(history["12"].job) == SERVED_12
    assert as_dict(history["257"].job) == SERVED_257
    assert history["12"].account == "proj-a"


def test_sacct_exit_code_of_failed_script(history):
    # `sacct --json` said return_code 0 for this job (Slurm 22.05 bug); the script ran `exit 3`.
    status = as_dict(history["3"].job)["status"]
    assert status == {"state": "FAILED", "stateReason": "None", "exitCode": 3, "interruptSignal": 0}
    assert as_dict(history["3"].job)["time"]["limit"] == 525600 * 60


def test_sacct_signal_timeout_and_cancelled_by(history):
    assert as_dict(history["11"].job)["status"]["interruptSignal"] == 9
    assert as_dict(history["4"].job)["status"] == {"state": "FAILED", "stateReason": "None", "exitCode": 0,
                                                   "interruptSignal": 53}
    assert as_dict(history["265"].job)["status"]["state"] == "TIMEOUT"
    assert as_dict(history["265"].job)["time"]["elapsed"] == 63
    by_self = as_dict(history["34"].job)
    assert by_self["status"]["state"] == "CANCELLED by 1001" and by_self["killRequestUser"] == "alice"
    by_root = as_dict(history["266"].job)  # bob's job, cancelled by root
    assert by_root["user"] == "bob" and by_root["account"] == "proj-b" and by_root["killRequestUser"] == "root"
    assert as_dict(history["10"].job)["killRequestUser"] is None  # state "CANCELLED": no uid recorded


def test_sacct_never_started_and_running_jobs(history):
    cancelled_pending = as_dict(history["10"].job)
    assert cancelled_pending["nodes"] == "None assigned" and history["10"].job.allocation_nodes == 0
    assert cancelled_pending["time"] == {"elapsed": 0, "start": None, "end": 1795691037, "suspended": 0,
                                         "limit": None}
    assert list(history["10"].job.tasks) == []  # cancelled while pending: no step ran
    pending = as_dict(history["258"].job)
    assert pending["status"]["stateReason"] == "BeginTime" and pending["name"] == "later\n1|2"
    assert pending["time"]["start"] is None and pending["time"]["end"] is None
    running = as_dict(history["256"].job)
    assert running["status"]["state"] == "RUNNING" and running["time"]["end"] is None
    assert running["time"]["elapsed"] == 440 and running["tasks"][0]["time"]["end"] is None
    assert as_dict(history["261"].job)["time"]["limit"] == 60  # --time=1


def test_sacct_array_tasks_are_jobs_by_raw_id(history):
    assert {history[i].job.name for i in ("260", "262")} == {"arr"}
    assert [t.id for t in history["262"].job.tasks] == ["262.batch"]


def test_sacct_free_text_with_separators_and_newlines_is_exact(history, rows):
    assert history["2"].job.name == "probe 2;x"
    assert history["254"].job.name == "evil|name\n999|0:0|COMPLETED"  # no job 999 appears
    assert history["255"].job.name == "a|#|b|c;d"
    assert history["259"].job.working_directory == "/home/alice/wd|#|x y"
    assert history["263"].job.name == f"half{GUESSED}open"
    assert history["267"].job.name.startswith("x\n1" + GUESSED) and history["267"].job.name.endswith("forged")
    assert history["1"].job.name == "probe1" and history["1"].job.user == "alice"
    assert "999" not in history and len(rows) == 45  # 50 lines, 5 of them inside names
    assert [t.id for t in history["267"].job.tasks] == ["267.batch"]


def test_sacct_name_holding_the_delimiter_hides_only_its_own_job():
    # Job 263's name holds the delimiter the output was split with: the records do not add up, so
    # only well-formed lines are kept; job 264's name ends in a truncated forged record of job 1.
    jobs = parsed("sacct_parsable_guessed_delimiter_22.05.txt", GUESSED)
    assert sorted(jobs) == ["1", "2", "264", "3"]
    assert jobs["1"].name == "probe1" and jobs["1"].user == "alice" and jobs["1"].status.state == "COMPLETED"
    assert jobs["3"].status.exit_code.number_value == 3 and [t.id for t in jobs["3"].tasks] == ["3.batch"]
    assert jobs["264"].name == "x"  # cut at the newline, its own fields intact
    assert jobs["264"].status.state == "COMPLETED" and [t.id for t in jobs["264"].tasks] == ["264.batch"]


def test_sacct_forged_record_cannot_replace_an_earlier_job():
    # With the delimiter known, job 267's name forges a whole record of job 1 (bob's, FAILED): the
    # output adds up, but the first record of an id wins, and sacct lists jobs by id.
    jobs = parsed("sacct_parsable_forged_record_22.05.txt", GUESSED)
    assert jobs["1"].status.state == "COMPLETED" and jobs["1"].user == "alice" and jobs["1"].name == "probe1"
    assert jobs["267"].name == "x" and [t.id for t in jobs["267"].tasks] == ["267.batch"]


@pytest.mark.parametrize("stdout", ["", "\n"])
def test_sacct_empty_output(stdout):
    assert sacct.records(stdout, DELIMITER) == []


def test_sacct_garbage_is_dropped():
    assert sacct.records("sacct: something odd\n", DELIMITER) == []
    one = read("sacct_parsable_22.05.txt").split("\n")[0]
    assert [r["JobIDRaw"] for r in sacct.records(f"junk\n{one}\n", DELIMITER)] == ["1"]


def test_sacct_uids_to_name(rows):
    assert sacct.kill_request_users(rows) == {0, 1001}  # step "12.1 CANCELLED by 1001" is not a job
    assert sacct.known_users(rows) == {1001: "alice", 1002: "bob"}
    assert getent.parse(read("getent_passwd.txt")) == {0: "root", 1001: "alice"}
    assert getent.argv({1001, 0}) == ["getent", "passwd", "0", "1001"]


def test_sacct_delimiter_is_fresh_and_argv_filters():
    assert sacct.new_delimiter() != sacct.new_delimiter()
    q = JobQuery(allusers=False, account="proj-a", name="a b|c", time_window="3d")
    argv = sacct.argv("alice", "|d|", q)
    assert argv[:6] == ["env", "SLURM_TIME_FORMAT=%s", "sacct", "--parsable2", "--noheader", "--delimiter=|d|"]
    assert argv[6] == "--format=" + ",".join(sacct.FIELDS) and sacct.FIELDS[0] == "JobIDRaw"
    assert sacct.FIELDS[-1] == "JobName"
    assert argv[7:] == ["--user=alice", "--starttime=now-3days", "--account=proj-a", "--name=a b|c"]
    assert sacct.argv("alice", "|d|", JobQuery(allusers=True))[7] == "--allusers"
    assert sacct.argv("bob", "|d|", job_id="42")[-2:] == ["--allusers", "--jobs=42"]
    assert shlex.split(shell_join(argv)) == argv


@pytest.mark.parametrize("value", ["a,b", "\u2603", "caf\u00e9", "tab\there"])
def test_sacct_filters_it_cannot_apply_exactly_are_left_to_the_service(value):
    # sacct splits on commas; slurmdbd answers "Unknown error 1267" for some non-ASCII names. The
    # service filters sacct's records by exact name and account anyway (SlurmCli.list_jobs).
    argv = sacct.argv("alice", "|d|", JobQuery(account=value, name=value))
    assert argv[7:] == ["--user=alice", "--starttime=now-24hours"]


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
    assert argv[:3] == ["bash", "-c", sbatch.ENV_FILE_SCRIPT] and argv[4:6] == ["1", "X=a,b'c\"$(id)"]
    assert argv[6] == "sbatch" and "--export=ALL" in argv and "--export-file=3" in argv
    assert "--comment=firecrest-mesh:m" in argv


def _run_with_fake_sbatch(argv: list[str], tmp_path: Path, **environ: str) -> tuple[list[str], list[str], bytes]:
    """Runs `argv` as the remote shell would, with an `sbatch` that records its arguments, what it
    reads on file descriptor 3 and on stdin, and its own environment's PATH/LD_PRELOAD/SBATCH_WAIT."""
    import os
    import subprocess

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / "sbatch"
    fake.write_text('#!/bin/sh\nprintf "%s\\0" "$@" > "$OUT/args"\ncat <&3 > "$OUT/fd3"\n'
                    'cat > "$OUT/stdin"\nprintf "%s|%s|%s" "$PATH" "$LD_PRELOAD" "$SBATCH_WAIT" > "$OUT/own"\n'
                    'echo 4242\n')
    fake.chmod(0o755)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "OUT": str(tmp_path), **environ}
    run = subprocess.run(shell_join(argv), shell=True, input=b"#!/bin/bash\necho script\n", env=env,
                         capture_output=True)
    assert run.returncode == 0 and run.stdout == b"4242\n", run.stderr
    args = (tmp_path / "args").read_bytes().split(b"\0")[:-1]
    fd3 = (tmp_path / "fd3").read_bytes().split(b"\0")[:-1]
    assert (tmp_path / "stdin").read_bytes() == b"#!/bin/bash\necho script\n"
    return [a.decode() for a in args], [d.decode() for d in fd3], (tmp_path / "own").read_bytes()


def test_sbatch_job_environment_goes_to_fd3_after_the_login_environment(tmp_path):
    env = (("PATH", "/nowhere"), ("LD_PRELOAD", "/nowhere.so"), ("SBATCH_WAIT", "1"), ("ODD", "a,b'c\"$(id) `x`;|"),
           ("LOGIN", "overridden"), ("EMPTY", ""))
    argv = sbatch.argv(spec(env=env, name="n"), "m")
    args, fd3, own = _run_with_fake_sbatch(argv, tmp_path, LOGIN="from-login")
    assert argv[4:5 + len(env)] == [str(len(env)), *(f"{k}={v}" for k, v in env)]
    assert args == argv[6 + len(env):] and argv[5 + len(env)] == "sbatch" and "--job-name=n" in args
    # The login environment first (what --export=ALL exports), then the job's definitions in order.
    assert "LOGIN=from-login" in fd3 and fd3[-len(env):] == [f"{k}={v}" for k, v in env]
    # sbatch itself ran with the login environment, not the job's PATH, LD_PRELOAD or SBATCH_WAIT.
    assert own.startswith(str(tmp_path).encode()) and own.endswith(b"||")


def test_sbatch_without_definitions_exports_the_login_environment_only(tmp_path):
    args, fd3, _ = _run_with_fake_sbatch(sbatch.argv(spec(env=()), "m"), tmp_path, LOGIN="x")
    assert "LOGIN=x" in fd3 and "" not in fd3 and args[0] == "--parsable"


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


@pytest.fixture(scope="module")
def local():
    return load_config().system("local")  # file systems /home and /scratch


def test_job_spec_accepts_every_working_directory_spelling_and_env_forms(local):
    assert job_spec(description(working_directory="/home/w", script="s"), local).working_directory == "/home/w"
    assert job_spec(description(currentWorkingDirectory="/scratch/c", script="s"), local).working_directory == "/scratch/c"
    assert job_spec(description(workingDirectory="/home/w", script="s"), local).env == (("F7T_version", "v2.0.0"),)
    assert dict(job_spec(description(workingDirectory="/home/w", script="s", env={"A": "1", "N": 3}), local).env) == \
        {"A": "1", "N": "3"}
    assert job_spec(description(workingDirectory="/home/w", script="s", environment=["A=x=y"]), local).env == \
        (("A", "x=y"),)


@pytest.mark.parametrize("kw", [
    dict(script="s"),  # no working directory
    dict(workingDirectory="rel", script="s"),
    dict(workingDirectory="/home/w"),  # no script
    dict(workingDirectory="/home/w", script="s", scriptPath="/x"),
    dict(workingDirectory="/home/w", scriptPath="x.sh"),
    dict(workingDirectory="/home/w", script="s", standardOutput="out.txt"),
    dict(workingDirectory="/home/w", script="s", env={"A;B": "x"}),
    dict(workingDirectory="/home/w", script="s", env=["NOEQUALS"]),
])
def test_job_spec_rejects(kw, local):
    with pytest.raises(BadRequest):
        job_spec(description(**kw), local)


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
    ("sacct: fatal: Bad job/step specified: abc", 1, NotFound, "Job not found"),
    ("sbatch: error: Batch script is empty!", 1, BadRequest, "Batch script is empty"),
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


# -- SlurmCli: naming the uid that cancelled a job ------------------------------------------------------

def test_uid_names_come_from_the_rows_then_one_cached_getent(rows):
    from types import SimpleNamespace

    from services.compute.slurm.cli import SlurmCli

    calls = []

    class Cli(SlurmCli):
        async def _exec(self, caller, system, argv, **kw):
            calls.append(argv)
            return CommandResult(2, read("getent_passwd.txt").encode(), b"")  # 2: some uid unknown

    cli, system, caller = Cli(pool=None), SimpleNamespace(name="local"), SimpleNamespace(username="alice")
    assert asyncio.run(cli._user_names(caller, system, rows)) == {0: "root", 1001: "alice", 1002: "bob"}
    assert calls == [["getent", "passwd", "0"]]  # alice (1001) is named by her own records
    asyncio.run(cli._user_names(caller, system, rows))
    assert len(calls) == 1  # cached
    unknown = [dict(rows[0], State="CANCELLED by 77777")]
    assert asyncio.run(cli._user_names(caller, system, unknown)) == {1001: "alice"}
    assert calls[-1] == ["getent", "passwd", "77777"]
    assert sacct.jobs(unknown, {})[0].job.kill_request_user.HasField("null_value")
