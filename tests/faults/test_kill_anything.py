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
import json
import os
import pwd
import signal
import threading
import time
from pathlib import Path

import pytest

from services.common.oidc_client import fetch_token
from tests.faults.kill_load import (CLIENT_TIMEOUT, USERS, Client, Closing, LoadFailure, LoadThread, Recorder,
                                    UploadTarget, fresh_logins, payload)
from tests.faults.kill_victims import VICTIMS, Processes, Victim, alive, cancel_pending, jobs_by_name
from tests.faults.processes import eventually

THREADS_PER_USER = 2
LOAD_BEFORE_KILL = 1.5      # s of load before the kill
DOWN_AT_LEAST = 2.0         # s a cluster daemon stays dead before cluster/up.sh
LOAD_AFTER_RECOVERY = 1.5   # s of load once the mesh serves again
SERVES_AGAIN_WITHIN = 10.0  # s: bound on waiting for the mesh to serve normally once the process is back
# The load's users have pooled SSH connections and cached certificates, which outlive a dead sshd or
# certificator; these test users' first requests need a new login. Each victim with fresh_logins takes
# FRESH_PER_VICTIM of them (a user's connection then stays pooled for the session).
FRESH_USERS = iter(["user01", "user02", "user03", "user04", "user05", "user06"])
FRESH_PER_VICTIM = 3

pytestmark = pytest.mark.faults


# --- fixtures -------------------------------------------------------------------------------------

REPORT: dict[str, dict] = {}


@pytest.fixture(scope="module")
def processes(config, request):
    procs = Processes(config)

    def restore_and_report():
        procs.restore_all()  # the stack is whole again, whatever happened
        cancelled = cancel_pending("ka-", list(USERS))  # the load's jobs still queued: none is checked
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
            reporter.write_line(f"cancelled {cancelled} of the load's jobs still pending")
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
    assert eventually(serves, 60, interval=0.2), "the mesh does not serve before the kill"

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
        first_logins.client = Closing(clients)
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
        assert eventually(lambda: not alive(pid), 30, interval=0.2), f"{victim} (pid {pid}) survived SIGKILL"
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
            time.sleep(0.2)
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
    seen = jobs_by_name(f"ka-{victim}-", since, list(USERS))
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
