"""Unit tests of `services.slurm.squeue`: the command (always filtered by Slurm to a job or a user,
fixed format, random delimiter) and the parser fed with real output of Slurm 22.05.8 captured as alice
by tests/data/slurm-22.05/capture_squeue.py: pending (one with a name holding the capture's delimiter),
running (an array, a job with a named srun step), a just-ended job with a newline in its name; with
the sacct records and the `squeue --json` of the same jobs at the same moment, to compare field by
field with what the service answered before (accounting's record for running jobs, the JSON's for
pending ones)."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

from google.protobuf import json_format

from services.common.ssh.command import shell_join
from services.slurm import sacct, squeue

CAPTURED = Path(__file__).resolve().parents[1] / "data" / "slurm-22.05"
DELIMITER = "|Sq7dLm2x|"  # capture_squeue.py's; every real query draws a fresh one


def read(name: str) -> str:
    return (CAPTURED / name).read_text()


def without_hostile(text: str) -> str:
    """The capture without job 6273, whose name holds the capture's (known) delimiter."""
    return text.replace(read("squeue_jobs_alice.txt").split("\n6264")[0].split("\n", 1)[1] + "\n", "")


def held(jobs_file: str = "squeue_jobs_alice.txt") -> dict[str, dict]:
    jobs = squeue.attach_steps(squeue.parse(read(jobs_file), DELIMITER),
                               squeue.parse_steps(read("squeue_steps_alice.txt"), DELIMITER))
    return {j.job.job_id: json_format.MessageToDict(j.job) for j in jobs}


def test_command_is_filtered_by_slurm_fixed_format_and_unpadded():
    argv = squeue.command("|d|", user="alice")
    assert argv[:4] == ["env", "SLURM_TIME_FORMAT=%s", "squeue", "--noheader"] and "--json" not in argv
    assert "--user=alice" in argv and not any(a.startswith("--jobs") or a == "--states=all" for a in argv)
    fmt = argv[-1].removeprefix("--Format=").split(",")
    assert fmt[0] == "JobID:0|d|" and fmt[-1] == "Name:0" and len(fmt) == len(squeue.FIELDS)
    assert all(f == f"{name}:0|d|" for f, name in zip(fmt[:-1], squeue.FIELDS))
    one = squeue.command("|d|", job_id="42", all_states=True)
    assert "--jobs=42" in one and "--states=all" in one and not any(a.startswith("--user") for a in one)
    steps = squeue.steps_command("|d|", user="bob")
    assert "--steps" in steps and "--user=bob" in steps and steps[-1].endswith("StepName:0")
    assert not any(a.startswith(("--user", "--jobs")) for a in squeue.command("|d|"))  # allusers only
    some = squeue.command("|d|", user="alice", job_ids=["7", "42"])  # the follower's: both filters
    assert "--jobs=7,42" in some and "--user=alice" in some
    for a in (argv, one, steps, some):
        assert shlex.split(shell_join(a)) == a


def test_running_jobs_are_what_accounting_answers_field_by_field():
    queue = held()
    history = {j.job.job_id: json_format.MessageToDict(j.job)
               for j in sacct.jobs(sacct.parse(read("sacct_parsable_held.txt"), DELIMITER), {})}
    running = [i for i, j in queue.items() if j["status"]["state"] == "RUNNING"]
    assert sorted(running) == ["6264", "6265", "6267", "6268", "6270", "6271", "6272", "6274"]
    for job_id in running:
        assert queue[job_id] == history[job_id], job_id
    assert queue["6265"]["time"]["limit"] == 300 and queue["6264"]["time"]["limit"] == 365 * 86400
    assert queue["6268"]["time"]["limit"] is None and queue["6264"]["time"]["end"] is None


def test_steps_are_named_by_raw_id_in_saccts_order():
    queue = held()
    assert [t["id"] for t in queue["6268"]["tasks"]] == ["6268.batch", "6268.0"]
    assert queue["6268"]["tasks"][1]["name"] == "my step"
    assert [t["id"] for t in queue["6270"]["tasks"]] == ["6270.batch"]  # squeue says 6267_0.batch
    assert "tasks" not in queue["6263"]  # none (MessageToDict leaves empty lists out; the wire has [])


def test_pending_jobs_are_what_squeue_json_answered_but_the_end_sentinel():
    queue = held()
    raw = {str(j["job_id"]): j for j in json.loads(read("squeue_held.json"))["jobs"]}
    pending = queue["6263"]
    assert pending == {
        "jobId": "6263", "name": "pend|x y", "account": "proj-a", "allocationNodes": 1, "cluster": "local",
        "group": "alice", "killRequestUser": None, "partition": "normal",  # nodes "", tasks []: left out
        "priority": raw["6263"]["priority"],
        "status": {"state": "PENDING", "stateReason": "BeginTime", "exitCode": 0, "interruptSignal": 0},
        "time": {"elapsed": 0, "start": raw["6263"]["start_time"], "end": None, "suspended": 0,
                              "limit": None},
        "user": "alice", "workingDirectory": "/home/alice"}
    # The JSON's end was the expected start plus Slurm's "no limit" sentinel (136 years on): now null.
    assert raw["6263"]["end_time"] - raw["6263"]["start_time"] > 100 * 365 * 86400


def test_a_name_holding_the_delimiter_hides_only_its_own_fields():
    queue = held()
    assert queue["6273"]["name"] == "hostile"  # cut at its newline; the rest of the name is not a record
    assert len(queue) == 10 and queue["6274"]["name"] == "cap2"
    clean = {j.job.job_id: j.job for j in squeue.parse(without_hostile(read("squeue_jobs_alice_all_states.txt")),
                                                       DELIMITER)}
    assert clean["6266"].name == "nl\nname|x" and clean["6266"].status.state == "COMPLETED"
    assert "6273" not in clean and len(clean) == 10


def test_comment_and_not_held():
    jobs = squeue.parse(read("squeue_jobs_alice_all_states.txt"), DELIMITER)
    assert [j.job.job_id for j in jobs if j.comment == "firecrest-mesh:capture2"] == ["6274"]
    assert {j.comment for j in jobs} == {"", "firecrest-mesh:capture1", "firecrest-mesh:capture2"}  # (null): ""
    assert squeue.not_held(read("squeue_not_held.stderr.txt"))
    assert squeue.not_held("squeue: error: Invalid job id: abc\n")  # an id Slurm cannot parse (22.05.8)
    assert not squeue.not_held("squeue: error: Unable to contact slurm controller (connect failure)\n")
    assert squeue.parse("", DELIMITER) == [] and squeue.parse_steps("", DELIMITER) == {}
