"""The kill-anything suite (issue 13, item 4): under a steady load of mixed requests through the real
gateway, each process the API depends on is killed with SIGKILL in turn (one test per victim), and

- every request either succeeds with a whole answer (2xx bodies parse and have their keys; a download
  or head returns bytes that were uploaded) or fails with a FirecREST error (4xx/5xx, a JSON body with
  `errorType` and `message`), never hangs past the gateway's route timeout; only while Envoy itself is
  dead may a connection be refused or cut (nothing is there to answer), and only while the identity
  provider is dead may a token request fail that way;
- no job is submitted twice: every submission carries a unique job name and an Idempotency-Key (a
  failed submission is retried once with the same key, as a careful client does); afterwards squeue
  and sacct show at most one job of each name;
- an upload never leaves a partial file in place of an existing one: what the checksum, download and
  head see, and what is on disk at the end, is always one whole uploaded version;
- the mesh serves normally (one round of every operation succeeds) within 10 s of the process being
  back: supervised processes are restarted by the supervisor; the cluster's daemons by
  `cluster/up.sh`, as an operator would.

Waiting is always bounded; no test asserts on elapsed time except as such a bound. What each victim
caused (errors by status and message, the time until it was back and until the mesh served again) is
printed at the end of the session and saved in state/logs/kill-anything.json.
"""

from __future__ import annotations

import collections
import hashlib
import importlib.util
import json
import os
import pwd
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from services.common.oidc_client import fetch_token
from tests.faults.processes import eventually

ROOT = Path(__file__).resolve().parents[2]
SYSTEM = "local"
USERS = {"alice": "alice-secret", "bob": "bob-secret"}
THREADS_PER_USER = 2
CLIENT_TIMEOUT = 75.0       # s: past the gateway's route timeout (60 s), a request that has no answer hangs
LOAD_BEFORE_KILL = 1.5      # s of load before the kill
DOWN_AT_LEAST = 2.0         # s a cluster daemon stays dead before cluster/up.sh
LOAD_AFTER_RECOVERY = 1.5   # s of load once the mesh serves again
SERVES_AGAIN_WITHIN = 10.0  # s: bound on waiting for the mesh to serve normally once the process is back
BACK_WITHIN = 60.0          # s: bound on waiting for a supervised process to be restarted and ready
PAYLOAD_BYTES = 64 * 1024
# A process that died is the service's (or the system's) unavailability: 503 or 424 (or 408 for a
# command that ran out of time), never these.
MISLEADING = {500: "an internal error for an unavailable dependency", 499: "the client blamed (CANCELLED)"}
# The load's users have pooled SSH connections and cached certificates, which outlive a dead sshd or
# certificator; these test users' first requests need a new login. Each victim with fresh_logins takes
# FRESH_PER_VICTIM of them (a user's connection then stays pooled for the session).
FRESH_USERS = iter(["user01", "user02", "user03", "user04", "user05", "user06"])
FRESH_PER_VICTIM = 3
SQUEUE_ENV = {"SLURM_CONF": "/etc/slurm/slurm.conf", "PATH": "/usr/bin:/bin:/usr/sbin:/sbin"}

pytestmark = pytest.mark.faults


def _launcher():
    """scripts/mesh.py as a module: its process table knows how to tell each process is ready."""
    sys.path.insert(0, str(ROOT / "scripts"))
    spec = importlib.util.spec_from_file_location("mesh_launcher", ROOT / "scripts" / "mesh.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@dataclass(frozen=True)
class Victim:
    name: str
    supervised: bool
    pid_file: tuple[str, ...] = ()   # under the state folder (cluster daemons)
    comm: str = ""                   # /proc/PID/comm of a cluster daemon
    transfers: bool = False          # add S3-staged transfers to the load (storage's own path)
    fresh_logins: bool = False       # add first requests of users without a pooled SSH connection

    def __str__(self) -> str:
        return self.name


VICTIMS = [
    Victim("envoy", True),
    Victim("status", True),
    Victim("compute", True),
    Victim("utilities", True),
    Victim("tasks", True, transfers=True),
    Victim("storage", True, transfers=True),
    Victim("certificator", True, fresh_logins=True),
    Victim("idp", True),
    Victim("s3", True, transfers=True),
    Victim("sshd", False, ("cluster", "sshd", "sshd.pid"), "sshd", fresh_logins=True),
    Victim("slurmctld", False, ("cluster", "slurm", "run", "slurmctld.pid"), "slurmctld"),
    Victim("slurmdbd", False, ("cluster", "slurm", "run", "slurmdbd.pid"), "slurmdbd"),
    Victim("mariadb", False, ("cluster", "mariadb", "mariadb.pid"), "mariadbd"),
]


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


class _Closing:
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
        self.client.call("job list", "GET", f"/compute/{SYSTEM}/jobs", _json_keys("jobs"))

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


# --- processes ------------------------------------------------------------------------------------

def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


class Processes:
    def __init__(self, config):
        self.config = config
        self.launcher = _launcher()
        self.ready = {proc.name: proc.ready for proc in self.launcher.processes(config)}

    def pid(self, victim: Victim) -> int | None:
        if victim.supervised:
            return self.launcher.running_pid(self.config, victim.name)
        try:
            pid = int(self.config.state(*victim.pid_file).read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        if not _alive(pid) or Path(f"/proc/{pid}/comm").read_text().strip() != victim.comm:
            return None
        return pid

    def bring_back(self, victim: Victim, killed: int) -> None:
        """Waits (bounded) until the supervisor has restarted `victim` and it is ready; a cluster
        daemon is started again by cluster/up.sh."""
        if victim.supervised:
            back = eventually(lambda: self.pid(victim) not in (None, killed) and self.ready[victim.name](),
                               BACK_WITHIN, interval=0.2)
            assert back, f"{victim} was not restarted and ready within {BACK_WITHIN:.0f} s"
        else:
            run = subprocess.run(["bash", str(ROOT / "cluster" / "up.sh")], capture_output=True, text=True,
                                 timeout=300)
            assert run.returncode == 0, f"cluster/up.sh: {run.stderr[-2000:]}"

    def restore_all(self) -> None:
        subprocess.run(["bash", str(ROOT / "cluster" / "up.sh")], capture_output=True, timeout=300)
        subprocess.run([sys.executable, str(ROOT / "scripts" / "mesh.py"), "up"], capture_output=True, timeout=600)


# --- what is on the cluster ---------------------------------------------------------------------

def jobs_by_name(prefix: str, since: str) -> dict[str, set[str]]:
    """Job ids per job name starting with `prefix`, of alice and bob, from squeue (slurmctld's
    memory, every state) and sacct (the accounting database)."""
    found: dict[str, set[str]] = collections.defaultdict(set)
    users = ",".join(USERS)
    commands = [["squeue", "-h", "-t", "all", "-u", users, "-o", "%i|%j"],
                ["sacct", "-n", "-X", "-P", "-u", users, "-S", since, "-o", "JobID,JobName"]]
    for command in commands:
        out = subprocess.run(command, capture_output=True, text=True, env=SQUEUE_ENV, timeout=60).stdout
        for line in out.splitlines():
            job_id, _, name = line.strip().partition("|")
            if name.startswith(prefix):
                found[name].add(job_id)
    return found


# --- fixtures -------------------------------------------------------------------------------------

REPORT: dict[str, dict] = {}


@pytest.fixture(scope="module")
def processes(config, request):
    procs = Processes(config)

    def restore_and_report():
        procs.restore_all()  # the stack is whole again, whatever happened
        if not REPORT:
            return
        path = config.state("logs", "kill-anything.json")
        path.write_text(json.dumps(REPORT, indent=1))
        reporter = request.config.pluginmanager.getplugin("terminalreporter")
        capture = request.config.pluginmanager.getplugin("capturemanager")
        if reporter is None or capture is None:
            return
        with capture.global_and_fixture_disabled():
            _write_report(reporter, path)
    request.addfinalizer(restore_and_report)
    return procs


def _write_report(reporter, path: Path) -> None:
    reporter.write_sep("-", "kill-anything: what each kill -9 caused")
    for name, rep in REPORT.items():
        load = rep["load"]
        reporter.write_line(f"{name:13} back after {rep.get('back_after_s')} s, serving again "
                            f"{rep.get('serving_after_back_s')} s later; {load['requests']} requests: "
                            f"{load.get('ok', 0)} ok, {load.get('error', 0)} errors, {load.get('refused', 0)} "
                            f"refused, {load.get('violation', 0)} violations; {rep['submissions']} submissions")
        for line, count in load["errors"].items():
            reporter.write_line(f"{'':13} {count:4} × {line}")
        slow = {op: t for op, t in load["slowest_s"].items() if t >= 5}
        if slow:
            reporter.write_line(f"{'':13} slowest answers (s): {slow}")
        if rep.get("leftovers"):
            reporter.write_line(f"{'':13} left beside the uploads: {', '.join(rep['leftovers'])}")
    reporter.write_line(f"(saved in {path})")


@pytest.fixture(scope="module")
def workdirs():
    """A folder per user with a text file (ls, stat, head) and a file per load thread to upload to."""
    dirs = {}
    for user in USERS:
        pw = pwd.getpwnam(user)
        folder = Path(f"/home/{user}/kill-anything")
        folder.mkdir(exist_ok=True)
        os.chown(folder, pw.pw_uid, pw.pw_gid)
        for old in folder.iterdir():  # earlier runs' job outputs and files (ls stays short)
            if old.is_file():
                old.unlink()
        text = folder / "text.txt"
        content = "".join(f"{user} line {i}\n" for i in range(1, 8)).encode()
        text.write_bytes(content)
        os.chown(text, pw.pw_uid, pw.pw_gid)
        dirs[user] = (str(folder), (str(text), content), pw)
    return dirs


def _probe(base_url: str, user: str, token: str, victim: Victim, workdir, text_file) -> Recorder:
    """One round of every operation, as `user`: what `serves normally` means."""
    recorder = Recorder()
    client = Client(base_url, user, token, victim, recorder)
    target = UploadTarget(f"{workdir}/probe.bin")
    try:
        thread = LoadThread(client, workdir, target, text_file, "", threading.Event(), [], victim.transfers)
        for op in (thread.systems, thread.ls, thread.stat, thread.head_text, thread.upload_and_check,
                   thread.submit_and_info, thread.jobs, thread.tasks,
                   *([thread.transfer_download] if victim.transfers else [])):
            try:
                op()
            except LoadFailure:
                break
    finally:
        client.close()
    return recorder


@pytest.mark.parametrize("victim", VICTIMS, ids=str)
def test_kill_minus_9_under_load(victim, processes, workdirs, gateway_url, config):
    tokens = {user: fetch_token(config.identity.token_url, f"firecrest-{user}", secret)
              for user, secret in USERS.items()}
    since = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(time.time() - 60))
    alice_dir, alice_text, _ = workdirs["alice"]

    probe_failures = collections.Counter()

    def serves() -> bool:
        probe = _probe(gateway_url, "alice", tokens["alice"], victim, alice_dir, alice_text)
        failures = [o for o in probe.outcomes if o.kind != "ok"]
        probe_failures.update(f"{o.status or '-'} {o.op}: {' '.join(o.detail.split())[:200]}" for o in failures)
        return bool(probe.outcomes) and not failures
    # Before: the mesh serves (a previous victim's recovery is not this victim's).
    assert eventually(serves, 60, interval=1), "the mesh does not serve before the kill"

    recorder, stop, submissions, threads, targets = Recorder(), threading.Event(), [], [], []
    for user, (workdir, text_file, pw) in workdirs.items():
        for n in range(THREADS_PER_USER):
            target = UploadTarget(f"{workdir}/upload-{n}.bin")
            first = payload(f"{user}-{n}-initial")
            Path(target.path).write_bytes(first)
            os.chown(target.path, pw.pw_uid, pw.pw_gid)
            target.possible = {target.add(first)}
            targets.append(target)
            client = Client(gateway_url, user, tokens[user], victim, recorder)
            threads.append(LoadThread(client, workdir, target, text_file, config.identity.token_url, stop,
                                      submissions, victim.transfers))
    killed = threading.Event()
    if victim.fresh_logins:
        users = [user for user, _ in zip(FRESH_USERS, range(FRESH_PER_VICTIM))]
        clients = [Client(gateway_url, user, fetch_token(config.identity.token_url, f"firecrest-{user}",
                                                         config.state("idp", "clients", f"firecrest-{user}.secret")
                                                         .read_text().strip()), victim, recorder)
                   for user in users]
        first_logins = threading.Thread(target=fresh_logins, args=(clients, killed, stop), daemon=True)
        first_logins.client = _Closing(clients)
        threads.append(first_logins)
    for thread in threads:
        thread.start()
    report = {}
    try:
        time.sleep(LOAD_BEFORE_KILL)
        pid = processes.pid(victim)
        assert pid, f"{victim} is not running before the kill"
        os.kill(pid, signal.SIGKILL)
        killed_at = time.monotonic()
        assert eventually(lambda: not _alive(pid), 30, interval=0.2), f"{victim} (pid {pid}) survived SIGKILL"
        killed.set()
        if not victim.supervised:
            time.sleep(DOWN_AT_LEAST)
        processes.bring_back(victim, pid)
        back_at = time.monotonic()
        report["back_after_s"] = round(back_at - killed_at, 1)

        # Serves normally again: a round of every operation, begun within the bound, succeeds whole.
        report["serving_after_back_s"] = None
        while (began := time.monotonic()) - back_at <= SERVES_AGAIN_WITHIN:
            if serves():
                report["serving_after_back_s"] = round(began - back_at, 1)
                break
            time.sleep(0.5)
        time.sleep(LOAD_AFTER_RECOVERY)
    finally:
        stop.set()
        killed.set()
        for thread in threads:
            thread.join(CLIENT_TIMEOUT + 30)
        for thread in threads:
            thread.client.close()
        report["load"] = recorder.summary()
        report["probe_failures"] = dict(probe_failures)
        report["submissions"] = len(submissions)
        REPORT[victim.name] = report
    hung = [t.name for t in threads if t.is_alive()]
    assert not hung, f"load threads still waiting: {hung}"

    violations = recorder.violations()
    assert not violations, "\n".join(f"{o.op}: {o.status} {o.detail}" for o in violations[:20])
    assert report["serving_after_back_s"] is not None, \
        f"the mesh did not serve normally within {SERVES_AGAIN_WITHIN:.0f} s of {victim} being back"

    # No job twice: at most one job per name, and the one the API answered with.
    seen = jobs_by_name(f"ka-{victim}-", since)
    twice = {name: ids for name, ids in seen.items() if len(ids) > 1}
    assert not twice, f"jobs submitted more than once: {twice}"
    for submission in submissions:
        assert len(submission.job_ids) <= 1, f"{submission.name}: one key, several job ids {submission.job_ids}"
        if submission.job_ids and submission.name in seen:
            assert seen[submission.name] == submission.job_ids, (submission.name, seen[submission.name])

    # Left beside the targets (e.g. an upload's temporary file after a kill): reported, not refused.
    expected = {"text.txt", "probe.bin", *(Path(t.path).name for t in targets)}
    report["leftovers"] = sorted(str(f) for user, (workdir, _, _) in workdirs.items() for f in Path(workdir).iterdir()
                                 if f.name not in expected and not f.name.startswith("slurm-"))

    # No partial file in place of an existing one: each target holds one whole version.
    for target in targets:
        digest = hashlib.sha256(Path(target.path).read_bytes()).hexdigest()
        assert digest in target.possible, f"{target.path} is none of the versions uploaded to it"
