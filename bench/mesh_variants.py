"""The two variants of the mesh that bench/zero_trust.py compares: a baseline git ref's tree (`git
archive` into state/bench/baseline, sharing this checkout's state and .venv) and this working tree;
switching the running mesh from one to the other with each variant's own `scripts/mesh.py`, and
checking that the processes running are that variant's and were not restarted by anyone else."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Processes that run no code of the variant's tree (the same binaries either way; the S3 server runs in
# its state folder, where it finds its security.toml): their working directory is not checked.
THIRD_PARTY = frozenset({"s3", "prometheus"})
CODE_DIRS = ("services", "gateway", "envoy", "scripts", "config", "gen", "protos")  # envoy/: older refs


class Disturbed(RuntimeError):
    """Someone else restarted part of the mesh during a phase (tests, `mesh.py up`)."""


@dataclass
class Variant:
    label: str  # "baseline" | "current"
    root: Path
    env: dict
    description: str = ""
    names: list[str] = field(default_factory=list)  # its mesh.py's processes, in start order

    @property
    def python(self) -> str:
        return str(self.root / ".venv" / "bin" / "python")

    def mesh(self, *args: str, check: bool = True) -> str:
        proc = subprocess.run([self.python, str(self.root / "scripts" / "mesh.py"), *args],
                              cwd=self.root, env=self.env, capture_output=True, text=True, timeout=300)
        if check and proc.returncode != 0:
            raise RuntimeError(f"{self.label}: mesh.py {' '.join(args)} failed ({proc.returncode}):\n"
                               f"{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
        return proc.stdout


def git(*args: str) -> str:
    return subprocess.run(["git", "--no-optional-locks", *args], cwd=ROOT, check=True,
                          capture_output=True, text=True).stdout.strip()


def code_fingerprint(root: Path) -> str:
    """sha256 over the files the mesh runs (by relative path and content), caches excluded."""
    digest = hashlib.sha256()
    for top in CODE_DIRS:
        for path in sorted((root / top).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def extract_baseline(ref: str, target: Path) -> str:
    """The ref's tree in `target` (replaced), with `state` and `.venv` linked to this checkout's."""
    commit = git("rev-parse", "--verify", f"{ref}^{{commit}}")
    remove_baseline(target)
    target.mkdir(parents=True)
    with tempfile.TemporaryFile() as archive:
        subprocess.run(["git", "archive", "--format=tar", commit], cwd=ROOT, stdout=archive, check=True)
        archive.seek(0)
        with tarfile.open(fileobj=archive) as tar:
            tar.extractall(target, filter="data")
    (target / "state").symlink_to(ROOT / "state")
    (target / ".venv").symlink_to(ROOT / ".venv")
    return commit


def remove_baseline(target: Path) -> None:
    # The links first: never walk into the shared state or the venv.
    for link in ("state", ".venv"):
        if (target / link).is_symlink():
            (target / link).unlink()
    shutil.rmtree(target, ignore_errors=True)


def process_names(variant: Variant) -> list[str]:
    """The processes of the variant's launcher, from `mesh.py status` (one line per process), without
    the supervisor: it runs them, it is not one of the variant's processes to stop and compare."""
    return [name for line in variant.mesh("status").splitlines() if line.strip()
            and (name := line.split()[0]) != "supervisor"]


def pid_of(config, name: str) -> int | None:
    try:
        pid = int(config.state("run", f"{name}.pid").read_text())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def envoy_yaml_digest(config) -> str:
    return hashlib.sha256(config.state("envoy", "envoy.yaml").read_bytes()).hexdigest()[:12]


def switch(stopper: Variant, starter: Variant) -> dict[str, int]:
    """Stops the mesh with `stopper`'s launcher (`mesh.py down`: its supervisor and every process, the
    identity provider too; the cluster keeps running), starts `starter`'s with its own `mesh.py up`;
    returns the pids that up reports it started. The supervisor goes too because it starts every
    process in its own tree: the other variant's processes must be started by that variant's."""
    stopper.mesh("down")
    out = starter.mesh("up")
    started = {}
    for line in out.splitlines():  # "started NAME (pid N)"
        if line.startswith("started ") and "(pid " in line:
            started[line.split()[1]] = int(line.rsplit("(pid ", 1)[1].rstrip(")"))
    return started


def verify(config, variant: Variant, started: dict[str, int]) -> dict[str, int]:
    """Every process of the variant but the idp runs from the variant's tree, is the one its
    launcher just started, and Envoy runs the config it rendered. Returns name -> pid."""
    pids = {}
    for name in variant.names:
        if name == "idp":
            continue
        pid = pid_of(config, name)
        if pid is None:
            raise Disturbed(f"{variant.label}: {name} is not running")
        if started.get(name) != pid:
            raise Disturbed(f"{variant.label}: {name} is pid {pid}, its launcher started "
                               f"{started.get(name)} (someone else restarted it?)")
        cwd = Path(os.readlink(f"/proc/{pid}/cwd"))
        if name not in THIRD_PARTY and cwd != variant.root.resolve():
            raise RuntimeError(f"{variant.label}: {name} (pid {pid}) runs in {cwd}, not {variant.root}")
        pids[name] = pid
    if config.state("envoy", "envoy.yaml").stat().st_mtime > started_at(pids["envoy"]) + 0.05:
        raise Disturbed(f"{variant.label}: envoy.yaml was rewritten after Envoy started")
    return pids


def started_at(pid: int) -> float:
    """A process's start time (epoch seconds), from /proc."""
    ticks = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    boot = next(int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                if line.startswith("btime "))
    return boot + ticks / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def launcher_lock(config):
    """mesh.py's own lock: others' `mesh.py up/stop` wait while a phase measures."""
    with open(config.state("run", "launcher.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield
