"""`sacct --parsable2`: the accounting history of jobs and their steps (slurmdbd), one query.

Slurm 22.05's `sacct --json` costs ~0.4 s even for one job (and gets exit codes wrong: a script
that exits 3 shows `return_code: 0`); `--parsable2` with an explicit `--format` costs ~0.1 s and
carries `ExitCode` and `State` ("CANCELLED by 1001") right.

Free text (`JobName`, `WorkDir`) may hold any character, `|` and newlines included: the fields are
joined by a fresh random delimiter and read by `delimited.records()` (`JobIDRaw` first, the anchor
of record boundaries; free text last).

Times are epoch seconds (`SLURM_TIME_FORMAT=%s`). `parse()` gives the records (field name → text)
and `JobsBuilder` makes them into jobs with their steps; `HistoryStream` does both while the output
arrives (a history of thousands of jobs is built by the time sacct ends). The user who cancelled a job
is a uid in the state ("CANCELLED by 0"): the builder lists the uids to name, and takes the names
once they are known (`jobs()` does it all for records at hand).
"""

from __future__ import annotations

import codecs
import logging
import re

from firecrest_mesh.compute.v1 import compute_pb2
from services.common import offload
from services.compute.scheduler import TIME_WINDOWS, JobQuery, SchedulerJob
from services.slurm import delimited
from services.slurm.numbers import duration_seconds, epoch, exit_pair, limit_seconds, number
from services.slurm.values import set_num, set_text

log = logging.getLogger(__name__)

# JobIDRaw first (never free text: it anchors record boundaries); free text (WorkDir, JobName) last.
FIELDS = ("JobIDRaw", "State", "ExitCode", "Reason", "Account", "AllocNodes", "Cluster", "Group", "NodeList",
          "Partition", "Priority", "UID", "User", "ElapsedRaw", "Start", "End", "Suspended", "TimelimitRaw",
          "WorkDir", "JobName")
_ID = re.compile(r"^(\d+)(?:\.([A-Za-z0-9_+-]+))?$")  # "4242" (a job) or "4242.batch", "4242.0" (steps)
_CANCELLED_BY = re.compile(r"^CANCELLED by (\d+)$")


new_delimiter = delimited.new_delimiter


def _server_side(value: str) -> bool:
    """Whether sacct can filter on `value` itself (see `_filters`)."""
    return value.isascii() and value.isprintable() and "," not in value


def _filters(username: str, query: JobQuery | None, job_id: str | None) -> list[str]:
    if job_id is not None:  # one job, any user's; no time limit
        return ["--allusers", f"--jobs={job_id}"]
    assert query is not None
    args = ["--allusers"] if query.allusers else [f"--user={username}"]
    args.append(f"--starttime=now-{TIME_WINDOWS[query.time_window]}seconds")
    # sacct reads a comma as a list separator, and slurmdbd fails on some non-ASCII filters ("Unknown
    # error 1267"): such values are not passed on (the service filters every record by exact value).
    if query.account and _server_side(query.account):
        args.append(f"--account={query.account}")
    if query.name and _server_side(query.name):
        args.append(f"--name={query.name}")
    return args


def command(username: str, delimiter: str, query: JobQuery | None = None, job_id: str | None = None) -> list[str]:
    """The caller's jobs within the query's window (filters it can apply exactly), or one job by id."""
    return ["env", "SLURM_TIME_FORMAT=%s", "sacct", "--parsable2", "--noheader", f"--delimiter={delimiter}",
            f"--format={','.join(FIELDS)}", *_filters(username, query, job_id)]


def parse(stdout: str, delimiter: str) -> list[dict[str, str]]:
    """The output's records (field name → text), jobs and steps in sacct's order."""
    return delimited.records(stdout, delimiter, FIELDS, _ID, "sacct")


def _fill_time(time: compute_pb2.JobTime, r: dict[str, str], limit: int | None = None) -> None:
    set_num(time.elapsed, number(r["ElapsedRaw"]))
    set_num(time.start, epoch(r["Start"]))
    set_num(time.end, epoch(r["End"]))
    set_num(time.suspended, duration_seconds(r["Suspended"]) or 0)
    set_num(time.limit, limit)


def _fill_status(status: compute_pb2.JobStatus, r: dict[str, str], reason: str | None) -> None:
    code, signal = exit_pair(r["ExitCode"])
    status.state = r["State"]
    set_text(status.state_reason, reason)
    set_num(status.exit_code, code)
    set_num(status.interrupt_signal, signal)


class JobsBuilder:
    """Jobs with their steps as tasks, made from sacct's records in sacct's order as they come (`add`),
    as entries of one ListJobsResponse (`into`, or a new one): one protobuf arena for all of them, ~40 %
    less memory than a message each, and a list answer can be that response itself
    (`SlurmScheduler._list_jobs`).

    A job "CANCELLED by <uid>" names who cancelled it (`kill_request_user`); the records pair most uids
    with a name (`known_users`), the rest need a look-up on the system, so the names are given once
    every record is in (`name_cancellers`)."""

    def __init__(self, into: compute_pb2.ListJobsResponse | None = None):
        self.container = into if into is not None else compute_pb2.ListJobsResponse()
        self._by_id: dict[str, SchedulerJob] = {}
        self._cancelled: list[tuple[compute_pb2.Job, int]] = []  # (job, uid that cancelled it)
        # uid → user name as the records pair them; never uid 0, which a record can show (with its
        # owner's name, from the association) until accounting has the job's start (seen in CI:
        # "CANCELLED by 0" named "alice"): uid 0 is named by a look-up.
        self.known_users: dict[int, str] = {}

    def add(self, rows: list[dict[str, str]]) -> None:
        """Makes the jobs of `rows` (records of `parse`, continuing the ones added before)."""
        by_id, known = self._by_id, self.known_users
        for r in rows:
            uid = number(r["UID"])
            if uid and r["User"]:
                known[uid] = r["User"]
            job_id, step = _ID.match(r["JobIDRaw"]).groups()
            if step is not None:
                parent = by_id.get(job_id)
                if parent is not None:  # a step without its job (never seen) is dropped
                    task = parent.job.tasks.add(id=r["JobIDRaw"], name=r["JobName"])
                    _fill_status(task.status, r, None)
                    _fill_time(task.time, r)
                continue
            if job_id in by_id:
                log.warning("sacct listed job %s twice; keeping the first", job_id)
                continue
            job = self.container.jobs.add(job_id=job_id, name=r["JobName"],
                                          allocation_nodes=number(r["AllocNodes"]) or 0, cluster=r["Cluster"],
                                          nodes=r["NodeList"], partition=r["Partition"], user=r["User"],
                                          working_directory=r["WorkDir"])
            _fill_status(job.status, r, r["Reason"])
            _fill_time(job.time, r, limit_seconds(r["TimelimitRaw"]))
            set_text(job.account, r["Account"])
            set_text(job.group, r["Group"])
            set_text(job.kill_request_user, None)  # named by name_cancellers()
            set_num(job.priority, number(r["Priority"]))
            cancelled_by = _CANCELLED_BY.match(r["State"])
            if cancelled_by:
                self._cancelled.append((job, int(cancelled_by.group(1))))
            by_id[job_id] = SchedulerJob(job=job, account=r["Account"])

    def kill_request_users(self) -> set[int]:
        """The uids in "CANCELLED by <uid>" states of the jobs (not steps)."""
        return {uid for _, uid in self._cancelled}

    def name_cancellers(self, user_names: dict[int, str]) -> None:
        """Sets `kill_request_user` of the cancelled jobs whose uid `user_names` names (else null)."""
        for job, uid in self._cancelled:
            name = user_names.get(uid)
            if name is not None:
                set_text(job.kill_request_user, name)

    def jobs(self) -> list[SchedulerJob]:
        """The jobs made so far, in sacct's order."""
        return list(self._by_id.values())


class HistoryStream:
    """sacct's output read and made into jobs while it arrives: the SSH runner's stdout sink (`begin()`
    at each attempt of the command, `feed()` with each piece of its output, on the event loop). sacct
    sends the records of a large history over its last few hundred ms (9,570 jobs: 3.5 MB over ~320 ms,
    after ~2 s of querying), and reading and building them takes ~350 ms more: fed as it comes, that
    work is mostly done by the time sacct ends. Each feed reads at most SLICE_BYTES of what has come,
    as much as the service parses on the loop anyway (`offload.LARGE_OUTPUT_BYTES`, ~25 ms); what it
    did not get to waits (`backlog`) for the next feed, and the rest for `finish()`, which the caller
    runs on a thread when it is large."""

    SLICE_BYTES = offload.LARGE_OUTPUT_BYTES

    def __init__(self, delimiter: str, into: compute_pb2.ListJobsResponse | None = None):
        self._delimiter, self._into = delimiter, into
        self.begin()

    def begin(self) -> None:
        """A new attempt of the command: whatever an earlier one sent is dropped."""
        if self._into is not None:
            del self._into.jobs[:]
        self.builder = JobsBuilder(self._into)
        self._reader = delimited.RecordReader(self._delimiter, FIELDS, _ID)
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")  # as CommandResult.text()
        self._fed = 0
        self._broken = False
        self.backlog = bytearray()  # output kept for finish()

    def feed(self, chunk: bytes) -> None:
        self._fed += len(chunk)
        if self._broken:  # finish() says None: nothing more is kept
            return
        self.backlog += chunk
        piece = bytes(self.backlog[:self.SLICE_BYTES])
        del self.backlog[:self.SLICE_BYTES]
        try:
            self.builder.add(self._reader.feed(self._decoder.decode(piece)))
        except Exception:  # a bug here must not fail the command: finish() says None, the caller parses
            log.exception("reading sacct's output as it arrived failed")
            self._broken = True

    def finish(self, stdout: bytes) -> JobsBuilder | None:
        """The jobs of the command's whole output `stdout`, its uids not named yet; None when this
        stream was not fed all of it (a command run on a thread: command-certificate mode) or the output
        does not split into records exactly: `rebuild()` reads it then, as `parse` does."""
        if self._broken or self._fed != len(stdout):
            return None
        text, self.backlog = self._decoder.decode(bytes(self.backlog), final=True), bytearray()
        self.builder.add(self._reader.feed(text))
        last = self._reader.finish()
        if last is None:
            return None
        self.builder.add(last)
        return self.builder

    def rebuild(self, stdout: str) -> JobsBuilder:
        """The jobs of the whole output `stdout` (text), read by `parse` (which reads an output that does
        not add up line by line)."""
        self.begin()
        self.builder.add(parse(stdout, self._delimiter))
        return self.builder


def jobs(rows: list[dict[str, str]], user_names: dict[int, str],
         into: compute_pb2.ListJobsResponse | None = None) -> list[SchedulerJob]:
    """The jobs of `rows` (`JobsBuilder`), the uids that cancelled them named by `user_names`."""
    builder = JobsBuilder(into)
    builder.add(rows)
    builder.name_cancellers(user_names)
    return builder.jobs()


def follow_command(username: str, delimiter: str, job_ids: list[str]) -> list[str]:
    """Accounting records of some of `username`'s jobs, whatever their age: one query for all the jobs
    a follower tracks for that user (`services.compute.follower`). Parsed like `command`'s output."""
    return ["env", "SLURM_TIME_FORMAT=%s", "sacct", "--parsable2", "--noheader", f"--delimiter={delimiter}",
            f"--format={','.join(FIELDS)}", f"--user={username}", f"--jobs={','.join(job_ids)}"]
