"""Unit tests of `services.slurm.sacct`: the command's filters and time window, and the parser fed with
real `sacct --parsable2` output captured from Slurm 22.05.8 (tests/data/slurm-22.05/), including job
names that hold the delimiter, newlines and whole forged records."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
from google.protobuf import json_format

from firecrest_mesh.compute.v1 import compute_pb2
from services.common.ssh.command import shell_join
from services.compute.scheduler import TIME_WINDOWS, JobQuery
from services.slurm import sacct

CAPTURED = Path(__file__).resolve().parents[1] / "data" / "slurm-22.05"


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
    return {j.job.job_id: j.job for j in sacct.jobs(sacct.parse(read(name), delimiter), NAMES)}


@pytest.fixture(scope="module")
def rows():
    return sacct.parse(read("sacct_parsable.txt"), DELIMITER)


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
    jobs = parsed("sacct_parsable_guessed_delimiter.txt", GUESSED)
    assert sorted(jobs) == ["1", "2", "264", "3"]
    assert jobs["1"].name == "probe1" and jobs["1"].user == "alice" and jobs["1"].status.state == "COMPLETED"
    assert jobs["3"].status.exit_code.number_value == 3 and [t.id for t in jobs["3"].tasks] == ["3.batch"]
    assert jobs["264"].name == "x"  # cut at the newline, its own fields intact
    assert jobs["264"].status.state == "COMPLETED" and [t.id for t in jobs["264"].tasks] == ["264.batch"]


def test_sacct_forged_record_cannot_replace_an_earlier_job():
    # With the delimiter known, job 267's name forges a whole record of job 1 (bob's, FAILED): the
    # output adds up, but the first record of an id wins, and sacct lists jobs by id.
    jobs = parsed("sacct_parsable_forged_record.txt", GUESSED)
    assert jobs["1"].status.state == "COMPLETED" and jobs["1"].user == "alice" and jobs["1"].name == "probe1"
    assert jobs["267"].name == "x" and [t.id for t in jobs["267"].tasks] == ["267.batch"]


@pytest.mark.parametrize("stdout", ["", "\n"])
def test_sacct_empty_output(stdout):
    assert sacct.parse(stdout, DELIMITER) == []


def test_sacct_garbage_is_dropped():
    assert sacct.parse("sacct: something odd\n", DELIMITER) == []
    one = read("sacct_parsable.txt").split("\n")[0]
    assert [r["JobIDRaw"] for r in sacct.parse(f"junk\n{one}\n", DELIMITER)] == ["1"]


# -- read while it arrives (HistoryStream) -------------------------------------------------------------

def streamed(stdout: bytes, delimiter: str, piece: int, into=None) -> sacct.JobsBuilder | None:
    """The output fed to a HistoryStream in pieces of `piece` bytes, as the SSH runner feeds it."""
    stream = sacct.HistoryStream(delimiter, into)
    stream.begin()
    for start in range(0, len(stdout), piece):
        stream.feed(stdout[start:start + piece])
    return stream.finish(stdout)


def as_dicts(builder_or_jobs) -> list[dict]:
    jobs = builder_or_jobs.jobs() if isinstance(builder_or_jobs, sacct.JobsBuilder) else builder_or_jobs
    return [as_dict(j.job) for j in jobs]


@pytest.mark.parametrize("piece", [1, 2, 3, 7, 64, 1000, 10 ** 6])
def test_sacct_output_read_as_it_arrives_is_read_as_a_whole(piece):
    # Pieces cut anywhere: inside the delimiter, a record, a multi-byte character, between \n and the id.
    stdout = (CAPTURED / "sacct_parsable.txt").read_bytes().replace(b"/home/alice", "/home/alice/d\u00e9j\u00e0 \u2713".encode())
    assert "é".encode() in stdout
    whole = sacct.jobs(sacct.parse(stdout.decode(), DELIMITER), {})
    built = streamed(stdout, DELIMITER, piece)
    assert built is not None and as_dicts(built) == as_dicts(whole) and len(whole) > 10
    assert built.kill_request_users() == {0, 1001} and built.known_users == {1001: "alice", 1002: "bob"}


def test_sacct_bytes_that_are_not_utf8_read_as_the_whole_output_decodes_them():
    stdout = (CAPTURED / "sacct_parsable.txt").read_bytes().replace(b"/home/alice", b"/home/\xff\xe2\x82alice")
    whole = sacct.jobs(sacct.parse(stdout.decode("utf-8", errors="replace"), DELIMITER), {})
    for piece in (1, 2, 5, 333):
        assert as_dicts(streamed(stdout, DELIMITER, piece)) == as_dicts(whole)


def test_sacct_output_that_does_not_add_up_is_read_again_line_by_line():
    stdout = (CAPTURED / "sacct_parsable_guessed_delimiter.txt").read_bytes()
    assert streamed(stdout, GUESSED, 50) is None  # the caller then rebuilds from the whole output
    stream = sacct.HistoryStream(GUESSED)
    rebuilt = as_dicts(stream.rebuild(stdout.decode()))
    assert rebuilt == as_dicts(sacct.jobs(sacct.parse(stdout.decode(), GUESSED), {})) and len(rebuilt) > 3


def test_sacct_forged_record_read_as_it_arrives_cannot_replace_an_earlier_job():
    stdout = (CAPTURED / "sacct_parsable_forged_record.txt").read_bytes()  # adds up: read exactly
    jobs = {j.job.job_id: j.job for j in streamed(stdout, GUESSED, 9).jobs()}
    assert jobs["1"].status.state == "COMPLETED" and jobs["1"].user == "alice" and jobs["1"].name == "probe1"
    assert jobs["267"].name == "x" and [t.id for t in jobs["267"].tasks] == ["267.batch"]


def test_sacct_stream_starts_over_when_the_command_is_run_again():
    stdout = (CAPTURED / "sacct_parsable.txt").read_bytes()
    into = compute_pb2.ListJobsResponse()
    stream = sacct.HistoryStream(DELIMITER, into)
    stream.feed(stdout[:1500])  # a first attempt whose connection broke
    assert len(into.jobs) > 0
    stream.begin()
    for start in range(0, len(stdout), 400):
        stream.feed(stdout[start:start + 400])
    built = stream.finish(stdout)
    assert as_dicts(built) == as_dicts(sacct.jobs(sacct.parse(stdout.decode(), DELIMITER), {}))
    assert [j.job_id for j in into.jobs] == [j.job.job_id for j in built.jobs()]  # nothing twice


def test_sacct_stream_not_fed_the_whole_output_says_so():
    stdout = (CAPTURED / "sacct_parsable.txt").read_bytes()
    stream = sacct.HistoryStream(DELIMITER)
    assert stream.finish(stdout) is None  # a command run on a thread never feeds it
    stream.feed(stdout[:-10])
    assert stream.finish(stdout) is None


def test_sacct_stream_reads_at_most_a_slice_per_piece_and_the_rest_at_finish():
    stdout = (CAPTURED / "sacct_parsable.txt").read_bytes()
    stream = sacct.HistoryStream(DELIMITER)
    stream.SLICE_BYTES = 100
    stream.feed(stdout[:50])
    stream.feed(stdout[50:])  # a piece larger than a slice: 100 bytes read now, the rest kept
    assert len(stream.backlog) == len(stdout) - 150
    stream.feed(b"")  # the next feed reads the next slice of what waits
    assert len(stream.backlog) == len(stdout) - 250
    assert as_dicts(stream.finish(stdout)) == as_dicts(sacct.jobs(sacct.parse(stdout.decode(), DELIMITER), {}))
    assert not stream.backlog


def test_sacct_uids_to_name(rows):
    builder = sacct.JobsBuilder()
    builder.add(rows)
    assert builder.kill_request_users() == {0, 1001}  # step "12.1 CANCELLED by 1001" is not a job
    assert builder.known_users == {1001: "alice", 1002: "bob"}


def test_sacct_delimiter_is_fresh_and_command_filters():
    assert sacct.new_delimiter() != sacct.new_delimiter()
    q = JobQuery(allusers=False, account="proj-a", name="a b|c", time_window="3d")
    argv = sacct.command("alice", "|d|", q)
    assert argv[:6] == ["env", "SLURM_TIME_FORMAT=%s", "sacct", "--parsable2", "--noheader", "--delimiter=|d|"]
    assert argv[6] == "--format=" + ",".join(sacct.FIELDS) and sacct.FIELDS[0] == "JobIDRaw"
    assert sacct.FIELDS[-1] == "JobName"
    assert argv[7:] == ["--user=alice", "--starttime=now-259200seconds", "--account=proj-a", "--name=a b|c"]
    assert sacct.command("alice", "|d|", JobQuery(allusers=True))[7] == "--allusers"
    assert sacct.command("bob", "|d|", job_id="42")[-2:] == ["--allusers", "--jobs=42"]
    assert shlex.split(shell_join(argv)) == argv


@pytest.mark.parametrize("value", ["a,b", "\u2603", "caf\u00e9", "tab\there"])
def test_sacct_filters_it_cannot_apply_exactly_are_left_to_the_service(value):
    # sacct splits on commas; slurmdbd answers "Unknown error 1267" for some non-ASCII names. The
    # service filters sacct's records by exact name and account anyway (SlurmScheduler.list_jobs).
    argv = sacct.command("alice", "|d|", JobQuery(account=value, name=value))
    assert argv[7:] == ["--user=alice", "--starttime=now-86400seconds"]


@pytest.mark.parametrize("window,seconds", [("1h", 3600), ("8h", 28800), ("24h", 86400), ("3d", 259200),
                                            ("7d", 604800)])
def test_sacct_starttime_is_the_time_window_in_seconds(window, seconds):
    # Slurm reads `now-<n>seconds` (checked on 22.05: the same jobs as now-1hours, now-3days...).
    assert TIME_WINDOWS[window] == seconds
    assert f"--starttime=now-{seconds}seconds" in sacct.command("alice", "|d|", JobQuery(time_window=window))
