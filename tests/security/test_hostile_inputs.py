"""A generated corpus of hostile inputs through the real gateway (issue 7), as alice.

The corpus is built in code from a fixed seed (`hostile_corpus.corpus()`): paths and file names, chmod
modes and owners, upload file names, job names, environment names and values, working directories and
the other job fields, listing filters, job ids and system names, and the numeric parameters at and past
the int32/int64/uint64 limits (floats, exponents, empty, unicode digits...). Strings mix shell
metacharacters, `$(...)`, backticks, `;`, `|`, `../`, option-looking names, control characters, NUL,
unicode, very long strings and non-UTF-8 percent-encodings. Every shell-looking payload would create a
regular file named by a fresh canary (in /tmp, /var/tmp, /dev/shm, or the current directory) if any
shell, `find -exec`, `dd of=` or sbatch option ever interpreted it.

Destructive operations (mkdir, symlink, chmod, chown, upload, rm) only name paths inside a scratch
folder made for the run, /home/alice/hostile-<token> (or paths outside the file systems, which must be
refused). Job submissions use a script that only echoes; most carry an unsatisfiable constraint, so
that Slurm refuses them after the service has built the whole sbatch command; every 8th runs as a real
job in the scratch folder, and every job is cancelled afterwards.

Asserted after the run:
- no answer is a 5xx (each failure is listed with its input);
- no regular file named like the canary exists anywhere on the machine;
- sentinel folders outside the file systems (in /tmp and /var/tmp, owned by alice so that she *could*
  change them) are unchanged, as are a few system files, and no file owned by alice or bob appeared
  outside /home and /scratch;
- every write the API accepted lies inside the scratch folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import pwd
import shutil
import stat
import subprocess
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.security.hostile_corpus import JOBS, OPS, Case, corpus

THREADS = 12
MIN_CORPUS = 1000
SYSTEM_FILES = ("/etc/passwd", "/etc/group", "/etc/shadow", "/etc/hosts", "/etc/ssh")


# -- running it --------------------------------------------------------------------------------------------

class Runner:
    """Sends cases from a few threads (one httpx client each); retries only while the mesh is being
    redeployed (connection refused or reset, or a 503 from the gateway)."""

    def __init__(self, base_url: str, token: str):
        self._base_url, self._token = base_url, token
        self._local = threading.local()
        self._clients: list[httpx.Client] = []
        self._lock = threading.Lock()

    def _client(self) -> httpx.Client:
        client = getattr(self._local, "client", None)
        if client is None:
            client = httpx.Client(base_url=self._base_url, timeout=60,
                                  headers={"Authorization": f"Bearer {self._token}"})
            self._local.client = client
            with self._lock:
                self._clients.append(client)
        return client

    def send(self, case: Case) -> tuple[Case, int, str]:
        headers = {}
        if case.content is not None:
            content = case.content
            headers["content-type"] = case.content_type or ""
        elif case.body is not None:
            content = json.dumps(case.body).encode()  # ensure_ascii: \u escapes
            headers["content-type"] = "application/json"
        else:
            content = None
        for attempt in range(6):
            try:
                r = self._client().request(case.method, case.url, content=content, headers=headers)
            except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError):
                time.sleep(0.5 * (attempt + 1))
                continue
            if r.status_code == 503 and attempt < 5 and "upstream" in r.text.lower():
                time.sleep(0.5 * (attempt + 1))
                continue
            return case, r.status_code, r.text[:300]
        return case, 599, "no answer after retries (gateway unreachable)"

    def run(self, cases: list[Case]) -> list[tuple[Case, int, str]]:
        with ThreadPoolExecutor(THREADS) as pool:
            return list(pool.map(self.send, cases))

    def close(self):
        for c in self._clients:
            c.close()


def _snapshot(root: str) -> dict:
    """Everything about a folder tree that a write, chmod, chown or rename would change."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [".", *sorted(dirnames), *sorted(filenames)]:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            digest = hashlib.sha256(Path(path).read_bytes()).hexdigest() if stat.S_ISREG(st.st_mode) else ""
            out[os.path.relpath(path, root)] = (st.st_mode, st.st_uid, st.st_gid, st.st_size, st.st_mtime_ns,
                                                st.st_ctime_ns, digest)
    return out


def _system_stats() -> dict:
    return {p: (os.lstat(p).st_mtime_ns, os.lstat(p).st_ctime_ns) for p in SYSTEM_FILES if os.path.lexists(p)}


def _owned_outside_file_systems(slurm_spool: str) -> set[str]:
    """Files owned by alice or bob outside /home and /scratch (root's view of the whole machine), but
    for slurmd's spool, where the job scripts of every running job (the parallel tests' too) live as
    their owner's."""
    out = subprocess.run(["find", "/", "/dev/shm", "/run", "-xdev", "(", "-path", "/proc", "-o", "-path", "/sys",
                          "-o", "-path", "/home", "-o", "-path", "/scratch", "-o", "-path", slurm_spool, ")",
                          "-prune", "-o", "(", "-user", "alice", "-o", "-user", "bob", ")", "-print0"],
                         capture_output=True).stdout
    return set(out.decode("utf-8", "surrogateescape").split("\0")) - {""}


def _canary_files(canary: str) -> list[str]:
    """Regular files whose name starts with the canary, anywhere (mkdir and symlink with hostile paths
    make directories and links named like it, never regular files)."""
    out = subprocess.run(["find", "/", "/dev/shm", "/run", "-xdev", "(", "-path", "/proc", "-o", "-path", "/sys",
                          ")", "-prune", "-o", "-type", "f", "-name", f"{canary}*", "-print0"],
                         capture_output=True).stdout
    return sorted(set(out.decode("utf-8", "surrogateescape").split("\0")) - {""})


def _chown(path: str, user: str) -> None:
    pw = pwd.getpwnam(user)
    os.lchown(path, pw.pw_uid, pw.pw_gid)


@pytest.fixture(scope="module")
def hostile_run(api, gateway_url, token, config):
    """Runs the corpus once; returns what the tests below assert on."""
    tag = uuid.uuid4().hex[:12]
    canary = f"f7tcanary{tag}"
    base = f"/home/alice/hostile-{tag}"
    alice = api("alice")

    # Sentinels outside the file systems that alice could change, were a path to reach them.
    sentinels = (f"/tmp/f7t-sentinel-{tag}", f"/var/tmp/f7t-sentinel-{tag}")
    for s in sentinels:
        os.makedirs(f"{s}/sub")
        Path(f"{s}/victim.txt").write_text("untouched\n")
        for p in (s, f"{s}/sub", f"{s}/victim.txt"):
            _chown(p, "alice")
            os.chmod(p, 0o777 if os.path.isdir(p) else 0o666)
    before = {s: _snapshot(s) for s in sentinels}
    system_before = _system_stats()
    slurm_spool = str(config.state("cluster", "slurm", "slurmd"))
    owned_before = _owned_outside_file_systems(slurm_spool)
    home_before = {root: set(os.listdir(root)) for root in ("/home", "/home/alice", "/scratch", "/scratch/alice")}

    for sub in ("", "/sub", "/m", "/l", "/u"):
        r = alice.post(f"{OPS}/mkdir", json={"path": base + sub, "parent": True})
        assert r.status_code == 201, r.text
    for name, data in (("f.txt", b"one\ntwo\nthree\n"), ("chmod-target", b"c\n"), ("chown-target", b"o\n")):
        r = alice.post(f"{OPS}/upload", params={"path": base}, files={"file": (name, data)})
        assert r.status_code == 204, r.text

    first, removals = corpus(base, canary, sentinels)
    runner = Runner(gateway_url, token("alice"))
    try:
        results = runner.run(first)
        # Where accepted writes landed, while they still exist (before the rm phase).
        landed = [(case, os.path.realpath(os.path.dirname(case.target.rstrip("/") or "/")))
                  for case, status, _ in results if case.target and 200 <= status < 300]
        results += runner.run(removals)
    finally:
        runner.close()

    jobs = [json.loads(body)["jobId"] for case, status, body in results
            if case.method == "POST" and case.url == JOBS and status == 201]
    for job_id in jobs:
        alice.delete(f"{JOBS}/{job_id}")
    deadline = time.monotonic() + 60  # a bound on waiting for the cancelled jobs, not an assertion
    while jobs and time.monotonic() < deadline:
        active = subprocess.run(["squeue", "--noheader", "--format=%i", f"--jobs={','.join(jobs)}"],
                                capture_output=True, text=True).stdout.split()
        if not active:
            break
        time.sleep(0.5)

    observed = {
        "corpus_size": len(first) + len(removals),
        "results": results,
        "jobs": jobs,
        "canary_files": _canary_files(canary),
        "sentinels_changed": {s: sorted(set(before[s].items()) ^ set(_snapshot(s).items())) for s in sentinels},
        "system_changed": {p: v for p, v in _system_stats().items() if system_before.get(p) != v},
        "owned_outside": sorted(_owned_outside_file_systems(slurm_spool) - owned_before),
        "landed": landed,
        "base": base,
        "new_top_level": {root: sorted(n for n in set(os.listdir(root)) - names if tag in n or canary in n)
                          for root, names in home_before.items()},
    }
    yield observed

    alice.delete(f"{OPS}/rm", params={"path": base})
    shutil.rmtree(base, ignore_errors=True)
    for s in sentinels:
        shutil.rmtree(s, ignore_errors=True)


def test_the_corpus_is_large_and_deterministic(hostile_run):
    assert hostile_run["corpus_size"] >= MIN_CORPUS
    again = corpus("/home/alice/hostile-x", "f7tcanaryx", ("/tmp/s", "/var/tmp/s"))
    assert again == corpus("/home/alice/hostile-x", "f7tcanaryx", ("/tmp/s", "/var/tmp/s"))
    assert sum(map(len, again)) == hostile_run["corpus_size"]


def test_no_hostile_input_gets_a_5xx(hostile_run):
    failures = [f"{status} {case.show()} -> {body[:200]}" for case, status, body in hostile_run["results"]
                if status >= 500]
    assert not failures, f"{len(failures)} inputs got a 5xx:\n" + "\n".join(failures[:80])


def test_no_canary_command_ever_ran(hostile_run):
    assert hostile_run["canary_files"] == []


def test_nothing_outside_the_file_systems_changed(hostile_run):
    assert hostile_run["sentinels_changed"] == {s: [] for s in hostile_run["sentinels_changed"]}
    assert hostile_run["system_changed"] == {}
    assert hostile_run["owned_outside"] == []


def test_accepted_writes_landed_inside_the_scratch_folder(hostile_run):
    base = hostile_run["base"]
    real_base = os.path.realpath(base)
    assert hostile_run["landed"], "the corpus made no successful write at all"
    def under(path: str, root: str) -> bool:
        return (path + "/").startswith(root + "/")

    outside = [(case.show(), parent) for case, parent in hostile_run["landed"]
               if not under(posixpath.normpath(case.target), base) or not under(parent, real_base)]
    assert outside == []
    assert all(names == [] or names == [os.path.basename(base)] for names in hostile_run["new_top_level"].values()), \
        hostile_run["new_top_level"]


def test_some_jobs_really_ran_and_were_cancelled(hostile_run):
    # The corpus is only meaningful for compute if some hostile submissions became real jobs.
    assert len(hostile_run["jobs"]) >= 5
    active = subprocess.run(["squeue", "--noheader", "--format=%i %T", f"--jobs={','.join(hostile_run['jobs'])}"],
                            capture_output=True, text=True).stdout
    assert all(state not in ("PENDING", "RUNNING") for _, state in
               (line.split() for line in active.splitlines())), active
