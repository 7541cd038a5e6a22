"""The kill-anything suite's load (tests/faults/test_kill_anything.py): threads of alice's and bob's
mixed requests through the gateway, each request's outcome recorded and judged (a whole answer, a
FirecREST error, or a violation), and the first requests of users without a pooled SSH login."""

from __future__ import annotations

import collections
import hashlib
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from services.common.oidc_client import fetch_token
from tests.faults.kill_victims import Victim

SYSTEM = "local"
USERS = {"alice": "alice-secret", "bob": "bob-secret"}
CLIENT_TIMEOUT = 95.0       # s: past the gateway's route timeout (80 s), a request that has no answer hangs
PAYLOAD_BYTES = 64 * 1024
# A process that died is the service's (or the system's) unavailability: 503 or 424 (or 408 for a
# command that ran out of time), never these.
MISLEADING = {500: "an internal error for an unavailable dependency", 499: "the client blamed (CANCELLED)"}


# --- outcomes -------------------------------------------------------------------------------------

@dataclass
class Outcome:
    op: str
    kind: str      # ok | error (FirecREST error) | refused (no gateway / no provider) | violation
    status: int | None
    detail: str
    seconds: float


class Recorder:
    def __init__(self):
        self.lock = threading.Lock()
        self.outcomes: list[Outcome] = []

    def add(self, outcome: Outcome) -> None:
        with self.lock:
            self.outcomes.append(outcome)

    def violations(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.kind == "violation"]

    def summary(self) -> dict:
        counts = collections.Counter(o.kind for o in self.outcomes)
        errors = collections.Counter(f"{o.status or '-'} {o.op}: {' '.join(o.detail.split())[:200]}"
                                     for o in self.outcomes
                                     if o.kind in ("error", "refused", "violation"))
        slowest: dict[str, float] = {}
        for o in self.outcomes:
            slowest[o.op] = round(max(slowest.get(o.op, 0.0), o.seconds), 1)
        return {"requests": len(self.outcomes), **counts, "errors": dict(errors.most_common()),
                "slowest_s": slowest}


class Closing:
    """Closes several clients (a thread's `client` for the test's clean-up)."""

    def __init__(self, clients):
        self.clients = clients

    def close(self) -> None:
        for client in self.clients:
            client.close()


class LoadFailure(Exception):
    """A request failed in a way the suite accepts (a FirecREST error, or a refused connection where
    that is allowed); already recorded."""


def _error_body(response: httpx.Response) -> str | None:
    """The FirecREST error's message, or None when the body is not the FirecREST error object."""
    try:
        body = response.json()
    except ValueError:
        return None
    if not isinstance(body, dict) or not isinstance(body.get("errorType"), str):
        return None
    message = body.get("message")
    return message if isinstance(message, str) and message else None


class Client:
    """One load thread's HTTP client: each call records its outcome and returns the parsed answer."""

    def __init__(self, base_url: str, user: str, token: str, victim: Victim, recorder: Recorder):
        self.user, self.victim, self.recorder = user, victim, recorder
        self.http = httpx.Client(base_url=base_url, timeout=CLIENT_TIMEOUT,
                                 headers={"Authorization": f"Bearer {token}"})

    def close(self) -> None:
        self.http.close()

    def call(self, op: str, method: str, url: str, check, expect: int = 200, **kwargs):
        """`check(response)` returns what the caller needs, or raises AssertionError for a success
        answer that is not whole."""
        start = time.monotonic()

        def record(kind: str, status: int | None, detail: str) -> None:
            self.recorder.add(Outcome(op, kind, status, detail, time.monotonic() - start))
        try:
            response = self.http.request(method, url, **kwargs)
        except httpx.TimeoutException as exc:
            record("violation", None, f"no answer within {CLIENT_TIMEOUT:.0f} s ({type(exc).__name__})")
            raise LoadFailure from exc
        except httpx.TransportError as exc:
            # Only a dead gateway leaves nobody to answer with an error object.
            kind = "refused" if self.victim.name == "envoy" else "violation"
            record(kind, None, f"{type(exc).__name__}: {exc}")
            raise LoadFailure from exc
        if response.status_code >= 400:
            message = _error_body(response)
            if message is None:
                record("violation", response.status_code, f"not a FirecREST error body: {response.text[:200]!r}")
            elif response.status_code in MISLEADING:
                record("violation", response.status_code, f"{MISLEADING[response.status_code]}: {message}")
            else:
                record("error", response.status_code, message)
            raise LoadFailure
        if response.status_code != expect:
            record("violation", response.status_code, f"expected {expect}: {response.text[:200]!r}")
            raise LoadFailure
        try:
            value = check(response)
        except (AssertionError, ValueError, KeyError, TypeError) as exc:
            record("violation", response.status_code, f"a {response.status_code} that is not whole ({exc!r}): "
                                                       f"{response.text[:200]!r}")
            raise LoadFailure from exc
        record("ok", response.status_code, "")
        return value


def _json_keys(*keys):
    def check(response: httpx.Response):
        body = response.json()
        for key in keys:
            assert key in body, f"no {key!r}"
        return body
    return check


# --- the load -------------------------------------------------------------------------------------

@dataclass
class UploadTarget:
    """A file that one thread alone uploads to: every version it ever tried, and which of them the
    file may hold now (the last one that succeeded, plus any tried since whose answer was lost)."""
    path: str
    versions: dict[str, bytes] = field(default_factory=dict)  # sha256 -> bytes
    possible: set[str] = field(default_factory=set)

    def add(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        self.versions[digest] = data
        return digest

    def head_lines(self, digest: str, lines: int = 10) -> str:
        return b"".join(self.versions[digest].splitlines(keepends=True)[:lines]).decode()


def payload(tag: str) -> bytes:
    """PAYLOAD_BYTES of text lines unique to `tag` (head and download compare them)."""
    line = (tag + " " + uuid.uuid4().hex + "\n").encode()
    data = (line * (PAYLOAD_BYTES // len(line) + 1))[:PAYLOAD_BYTES - 1] + b"\n"
    return data


@dataclass
class Submission:
    user: str
    name: str
    key: str
    job_ids: set[str] = field(default_factory=set)


class LoadThread(threading.Thread):
    def __init__(self, client: Client, workdir: str, target: UploadTarget, text_file: tuple[str, bytes],
                 token_url: str, stop: threading.Event, submissions: list[Submission], with_transfers: bool):
        super().__init__(daemon=True, name=f"load-{client.user}-{Path(target.path).stem}")
        self.client, self.workdir, self.target, self.text_file = client, workdir, target, text_file
        self.token_url, self.stop, self.submissions = token_url, stop, submissions
        self.with_transfers = with_transfers

    def run(self) -> None:
        ops = [self.token, self.systems, self.ls, self.stat, self.head_text, self.upload_and_check,
               self.submit_and_info, self.jobs, self.tasks]
        if self.with_transfers:
            ops.append(self.transfer_download)
        while not self.stop.is_set():
            for op in ops:
                if self.stop.is_set():
                    break
                try:
                    op()
                except LoadFailure:
                    time.sleep(0.1)  # a failing dependency: do not spin

    # Each operation: the request and what a whole answer looks like.
    def token(self) -> None:
        start = time.monotonic()
        try:
            token = fetch_token(self.token_url, f"firecrest-{self.client.user}", USERS[self.client.user])
        except Exception as exc:  # noqa: BLE001 - any failure is recorded and judged below
            kind = "refused" if self.client.victim.name == "idp" else "violation"
            self.client.recorder.add(Outcome("token", kind, None, f"{type(exc).__name__}: {exc}"[:200],
                                             time.monotonic() - start))
            raise LoadFailure from exc
        ok = isinstance(token, str) and token.count(".") == 2
        self.client.recorder.add(Outcome("token", "ok" if ok else "violation", 200, "" if ok else repr(token)[:200],
                                         time.monotonic() - start))

    def systems(self) -> None:
        def check(r):
            systems = r.json()["systems"]
            assert any(s["name"] == SYSTEM for s in systems), "no local system"
        self.client.call("systems", "GET", "/status/systems", check)

    def ls(self) -> None:
        def check(r):
            names = {entry["name"] for entry in r.json()["output"]}
            assert Path(self.text_file[0]).name in names, "the text file is missing from ls"
        self.client.call("ls", "GET", f"/filesystem/{SYSTEM}/ops/ls", check, params={"path": self.workdir})

    def stat(self) -> None:
        def check(r):
            assert r.json()["output"]["size"] == len(self.text_file[1])
        self.client.call("stat", "GET", f"/filesystem/{SYSTEM}/ops/stat", check, params={"path": self.text_file[0]})

    def head_text(self) -> None:
        def check(r):
            assert r.json()["output"]["content"] == self.text_file[1].decode(), "head differs from the file"
        self.client.call("head", "GET", f"/filesystem/{SYSTEM}/ops/head", check, params={"path": self.text_file[0]})

    def upload_and_check(self) -> None:
        target = self.target
        data = payload(f"{self.name}-{time.monotonic_ns()}")
        digest = target.add(data)
        directory, name = target.path.rsplit("/", 1)
        target.possible.add(digest)  # until an answer says otherwise, the new version may be in place
        try:
            self.client.call("upload", "POST", f"/filesystem/{SYSTEM}/ops/upload", lambda r: None, expect=204,
                             params={"path": directory}, files={"file": (name, data)})
            target.possible = {digest}
        finally:
            def check_sum(r):
                found = r.json()["output"]["checksum"]
                assert found in target.possible, "the file is none of the uploaded versions"
                return found
            found = self.client.call("checksum", "GET", f"/filesystem/{SYSTEM}/ops/checksum", check_sum,
                                     params={"path": target.path})
            target.possible = {found}

            def check_download(r):
                assert hashlib.sha256(r.content).hexdigest() in target.possible, \
                    f"downloaded {len(r.content)} bytes that are none of the uploaded versions"
            self.client.call("download", "GET", f"/filesystem/{SYSTEM}/ops/download", check_download,
                             params={"path": target.path})

            def check_head(r):
                assert any(r.json()["output"]["content"] == target.head_lines(d) for d in target.possible), \
                    "head is none of the uploaded versions' first lines"
            self.client.call("head", "GET", f"/filesystem/{SYSTEM}/ops/head", check_head,
                             params={"path": target.path})

    def submit_and_info(self) -> None:
        submission = Submission(self.client.user, f"ka-{self.client.victim}-{uuid.uuid4().hex[:10]}", uuid.uuid4().hex)
        self.submissions.append(submission)
        body = {"job": {"name": submission.name, "script": "#!/bin/bash\ntrue\n",
                        "workingDirectory": self.workdir}}

        def check(r):
            job_id = r.json()["jobId"]
            assert str(job_id).isdigit(), f"job id {job_id!r}"
            return str(job_id)
        job_id = None
        for attempt in range(2):  # a failed submission is retried once with the same key
            try:
                job_id = self.client.call("submit", "POST", f"/compute/{SYSTEM}/jobs", check, expect=201,
                                          json=body, headers={"Idempotency-Key": submission.key})
                submission.job_ids.add(job_id)
                break
            except LoadFailure:
                if attempt or self.stop.is_set():
                    raise
                time.sleep(1.0)

        def check_info(r):
            jobs = r.json()["jobs"]
            assert jobs and str(jobs[0]["jobId"]) == job_id and jobs[0]["name"] == submission.name, "another job"
        self.client.call("job info", "GET", f"/compute/{SYSTEM}/jobs/{job_id}", check_info)

    def jobs(self) -> None:
        # The last hour's jobs (squeue and sacct all the same): the default 24 h of alice's and bob's
        # history (thousands of jobs after a day of tests, several MB, 4-6 s) made every probe and
        # load round wait on it, whatever the victim.
        self.client.call("job list", "GET", f"/compute/{SYSTEM}/jobs", _json_keys("jobs"),
                         params={"time_window": "1h"})

    def tasks(self) -> None:
        self.client.call("task list", "GET", "/tasks", _json_keys("tasks"), params={"pageSize": 5})

    def transfer_download(self) -> None:
        def check(r):
            body = r.json()
            assert str(body["transferJob"]["jobId"]).isdigit()
            assert body["transferDirectives"]["downloadUrl"].startswith("http")
        self.client.call("transfer download", "POST", f"/filesystem/{SYSTEM}/transfer/download", check,
                         expect=201, json={"path": self.text_file[0], "transferDirectives": {"transferMethod": "s3"}})


def fresh_logins(clients: list[Client], killed: threading.Event, stop: threading.Event) -> None:
    """Once the victim is dead, each client's first request (a new SSH login), 0.5 s apart."""
    killed.wait()
    for client in clients:
        if stop.is_set():
            break
        user = client.user
        try:
            client.call("first login (ls)", "GET", f"/filesystem/{SYSTEM}/ops/ls", _json_keys("output"),
                        params={"path": f"/home/{user}"})
        except LoadFailure:
            pass
        time.sleep(0.5)
