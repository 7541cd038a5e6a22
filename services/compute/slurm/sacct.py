"""`sacct`: the accounting history of jobs (slurmdbd), as JSON plus one small `--parsable2` query.

`sacct --json` (openapi v0.0.38 in Slurm 22.05) gets job and step exit codes wrong (a script that
exits 3 shows `return_code: 0`) and drops "by <uid>" from CANCELLED. The companion query
`--parsable2 --format=JobIDRaw,ExitCode,State` carries exactly those, and no free text, so `|` in a
job name cannot shift its fields. Both queries take the same filters. With `--json` Slurm 22.05
ignores `--user` (and the implicit "own jobs only"): the caller filters the parsed jobs again.
"""

from __future__ import annotations

import json

from firecrest_mesh.compute.v1 import compute_pb2
from services.compute.scheduler import JobQuery, SchedulerJob
from services.compute.slurm.values import epoch, exit_pair, limit_seconds, num, number, text

_WINDOW = {"1h": "now-1hours", "8h": "now-8hours", "24h": "now-24hours", "3d": "now-3days", "7d": "now-7days"}
EXIT_FORMAT = "--format=JobIDRaw,ExitCode,State"


def _filters(username: str, query: JobQuery | None, job_id: str | None) -> list[str]:
    if job_id is not None:  # one job, any user's; no time limit
        return ["--allusers", f"--jobs={job_id}"]
    assert query is not None
    args = ["--allusers"] if query.allusers else [f"--user={username}"]
    args.append(f"--starttime={_WINDOW[query.time_window]}")
    if query.account:
        args.append(f"--account={query.account}")
    if query.name:
        args.append(f"--name={query.name}")
    return args


def json_argv(username: str, query: JobQuery | None = None, job_id: str | None = None) -> list[str]:
    return ["sacct", "--json", *_filters(username, query, job_id)]


def exit_codes_argv(username: str, query: JobQuery | None = None, job_id: str | None = None) -> list[str]:
    return ["sacct", "--parsable2", "--noheader", EXIT_FORMAT, *_filters(username, query, job_id)]


def parse_exit_codes(stdout: str) -> dict[str, tuple[int | None, int | None, str]]:
    """`{"4242": (exit, signal, "FAILED"), "4242.batch": (...)}` from the parsable2 query."""
    codes = {}
    for line in stdout.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[0]:
            code, signal = exit_pair(parts[1])
            codes[parts[0]] = (code, signal, parts[2])
    return codes


def _state(value) -> str:
    return ",".join(value) if isinstance(value, list) else str(value or "")


def _json_exit(exit_code) -> tuple[int | None, int | None]:
    """Exit code and signal from the JSON (used only when the parsable2 query lacks the id)."""
    if not isinstance(exit_code, dict):
        return None, None
    signal = exit_code.get("signal") or {}
    return number(exit_code.get("return_code")), number(signal.get("signal_id")) or 0


def _time(t: dict, limit=None) -> compute_pb2.JobTime:
    return compute_pb2.JobTime(elapsed=num(number(t.get("elapsed"))), start=num(epoch(t.get("start"))),
                               end=num(epoch(t.get("end"))), suspended=num(number(t.get("suspended")) or 0),
                               limit=num(limit_seconds(limit)))


def _status(state: str, reason, codes: tuple | None, json_exit) -> compute_pb2.JobStatus:
    code, signal = (codes[0], codes[1]) if codes else _json_exit(json_exit)
    if codes and codes[2]:
        state = codes[2]  # e.g. "CANCELLED by 1001"
    return compute_pb2.JobStatus(state=state, state_reason=text(reason), exit_code=num(code),
                                 interrupt_signal=num(signal))


def parse(stdout: str, exit_codes: dict[str, tuple]) -> list[SchedulerJob]:
    jobs = []
    for j in json.loads(stdout).get("jobs", []):
        job_id = str(j.get("job_id"))
        state = j.get("state") or {}
        tasks = []
        for s in j.get("steps") or []:
            step = s.get("step") or {}
            step_id = f"{job_id}.{step.get('id')}"
            tasks.append(compute_pb2.JobTask(
                id=step_id, name=str(step.get("name") or ""),
                status=_status(_state(s.get("state")), None, exit_codes.get(step_id), s.get("exit_code")),
                time=_time(s.get("time") or {})))
        t = j.get("time") or {}
        job = compute_pb2.Job(
            job_id=job_id, name=j.get("name") or "",
            status=_status(_state(state.get("current")), state.get("reason"), exit_codes.get(job_id),
                           j.get("exit_code")),
            tasks=tasks, time=_time(t, t.get("limit")),
            account=text(j.get("account")), allocation_nodes=number(j.get("allocation_nodes")) or 0,
            cluster=j.get("cluster") or "", group=text(j.get("group")), nodes=j.get("nodes") or "",
            partition=j.get("partition") or "", kill_request_user=text(j.get("kill_request_user")),
            user=j.get("user") or "", working_directory=j.get("working_directory") or "",
            priority=num(number(j.get("priority"))))
        comment = j.get("comment") or {}
        jobs.append(SchedulerJob(job=job, account=j.get("account") or "",
                                 comment=(comment.get("job") if isinstance(comment, dict) else comment) or ""))
    return jobs
