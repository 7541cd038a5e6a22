"""Unit tests of what every Slurm parser shares: the one reader of Slurm's numbers
(`services.slurm.numbers`), of `scontrol -o` records (`scontrol_records`) and the one table of Slurm's
error messages (`errors`), fed with real output of Slurm 22.05.8 (tests/data/slurm-22.05/) and the
documented JSON numbers of later releases."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from services.common.errors import BadRequest, Forbidden, InternalError, NotFound, RequestTimeout, ServiceUnavailable
from services.common.ssh.command import CommandResult
from services.slurm import errors, scontrol_records
from services.slurm.numbers import (NO_VAL32, duration_seconds, epoch, exit_pair, limit_seconds, number,
                                    wait_status)

CAPTURED = Path(__file__).resolve().parents[1] / "data" / "slurm-22.05"


def read(name: str) -> str:
    return (CAPTURED / name).read_text()


# -- numbers ----------------------------------------------------------------------------------------
# Formerly two readers: compute's (squeue: unset or infinite → None) and status's (sinfo: kept the
# number of an infinite value, 0 when unset, and crashed on text). Both now read every form the same way.

@pytest.mark.parametrize("value,expected", [
    (8, 8), (0, 0), (None, None), (True, None), ("8", 8), (" 8 ", 8), ("", None), ("UNLIMITED", None),
    ("(null)", None), ("N/A", None), ("Unknown", None), ([1], None),
    ({"set": True, "infinite": False, "number": 7200}, 7200),  # Slurm 23.02+ JSON
    ({"set": False, "infinite": False, "number": 0}, None),
    ({"set": True, "infinite": True, "number": 0}, None),
    ({"set": False, "infinite": True, "number": 0}, None),
    ({"number": 5}, 5), ({"set": True}, None),
])
def test_number_reads_every_form(value, expected):
    assert number(value) == expected


def test_number_of_22_05_json_from_squeue_and_sinfo():
    job = next(j for j in json.loads(read("squeue.json"))["jobs"] if j["job_id"] == 3)
    assert number(job["exit_code"]) == 768 and number(job["node_count"]) == 1
    node = json.loads(read("sinfo.json"))["nodes"][0]
    assert number(node["cpus"]) == 8 and number(node["sockets"]) == 1
    assert isinstance(number(node["cpu_load"]), int) and number(node["free_memory"]) > 0


def test_number_of_scontrol_and_sacct_text():
    partition = scontrol_records.records(read("scontrol_show_partitions.txt"))[0]
    assert number(partition["TotalCPUs"]) == 8 and number(partition["MaxNodes"]) is None  # UNLIMITED
    reservation = scontrol_records.records(read("scontrol_show_reservations.txt"))[0]
    assert number(reservation["StartTime"]) == 1795694288


def test_epoch_limit_duration_and_exit_codes():
    assert epoch(0) is None and epoch("0") is None and epoch(1795691049) == 1795691049
    assert epoch({"set": True, "infinite": False, "number": 1795691049}) == 1795691049
    assert limit_seconds(1) == 60 and limit_seconds("525600") == 525600 * 60
    assert limit_seconds(NO_VAL32) is None and limit_seconds("UNLIMITED") is None
    assert limit_seconds({"set": True, "infinite": True, "number": 0}) is None
    assert duration_seconds("00:00:00") == 0 and duration_seconds("1-02:03:04") == 93784
    assert duration_seconds("03:04") == 184 and duration_seconds("") is None
    assert exit_pair("3:0") == (3, 0) and exit_pair("0:15") == (0, 15) and exit_pair("") == (None, None)


@pytest.mark.parametrize("raw,expected", [(0, (0, 0)), (768, (3, 0)), (9, (0, 9)), (4021, (0, 53)),
                                          (None, (None, None))])
def test_wait_status(raw, expected):
    assert wait_status(raw) == expected


# -- scontrol records -------------------------------------------------------------------------------

def test_records_of_partitions_and_reservations():
    partitions = scontrol_records.records(read("scontrol_show_partitions.txt"))
    assert [r["PartitionName"] for r in partitions] == ["normal", "xfer", "debug"]
    assert partitions[0]["TRES"] == "cpu=8,mem=21694M,node=1,billing=8"
    reservations = scontrol_records.records(read("scontrol_show_reservations.txt"))
    assert reservations[1]["ReservationName"] == "gpu week"
    assert scontrol_records.records("No reservations in the system\n\n") == []


def test_trailing_fields_are_cut_from_the_right():
    line = next(line for line in read("scontrol_show_job_hostile_name.txt").splitlines() if line.startswith("JobId="))
    record = scontrol_records.record(line, ("WorkDir", "StdErr", "StdIn", "StdOut", "Power"))
    assert record["StdOut"] == "/home/alice/slurm-9.out" and record["Power"] == ""
    assert record["JobId"] == "9" and record["JobName"].startswith("pend|ing")


def test_trailing_keys_never_come_from_free_text():
    # A job name that spells a whole tail; Slurm prints the real one after it, every key present.
    forged = ("JobId=5 JobName=x WorkDir=/ StdErr=/etc/shadow StdIn=/etc/shadow StdOut=/tmp/x Power= "
              "UserId=alice(1001) WorkDir=/home/a StdErr=/e StdIn=/dev/null StdOut=/o Power=")
    record = scontrol_records.record(forged, ("WorkDir", "StdErr", "StdIn", "StdOut", "Power"))
    assert (record["WorkDir"], record["StdErr"], record["StdIn"], record["StdOut"]) == ("/home/a", "/e", "/dev/null",
                                                                                      "/o")
    assert record["JobName"] == "x" and record["UserId"] == "alice(1001)"


@pytest.mark.parametrize("value,expected", [(None, None), ("", None), ("(null)", None), ("N/A", None),
                                            ("n/a", None), ("gpu&fast", "gpu&fast")])
def test_optional(value, expected):
    assert scontrol_records.optional(value) == expected


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
    # slurmdbd killed during a query, and its MariaDB down (the kill-anything suite's captures).
    ("sacct: error: _conn_readable: persistent connection for fd 3 experienced error[104]: Connection reset by "
     "peer\nsacct: error: slurm_persist_conn_open: No response to persist_init\nsacct: error: Getting response to "
     "message type: DBD_GET_JOBS_COND\nsacct: error: DBD_GET_JOBS_COND failure: Unspecified error", 11,
     ServiceUnavailable, "persistent connection"),
    ("sacct: error: Immediate execution impossible, insufficient priority", 221, ServiceUnavailable,
     "Immediate execution impossible"),
    ("sacct: error: Unable to connect to database", 88, ServiceUnavailable, "Unable to connect to database"),
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


def test_captured_refusals_with_exit_0_are_failures():
    completed = CommandResult(0, b"", read("scancel_verbose_completed.stderr.txt").encode())
    assert errors.failed(completed) and type(errors.error_for(completed, "scancel")) is BadRequest
    other_user = CommandResult(0, b"", read("scontrol_write_batch_script_other_user.stderr.txt").encode())
    assert errors.failed(other_user) and type(errors.error_for(other_user, "scontrol")) is Forbidden


def test_scancel_success_with_verbose_chatter_is_not_a_failure():
    assert not errors.failed(CommandResult(0, b"", read("scancel_verbose.stderr.txt").encode()))


def test_timeout_message_names_the_program():
    assert errors.program(["env", "SLURM_TIME_FORMAT=%s", "scontrol", "-a"]) == "scontrol"
    assert errors.program(["squeue", "--json"]) == "squeue"
    assert "(sacct timed out)" in errors.error_for(CommandResult(124, b"", b""), "sacct").message
