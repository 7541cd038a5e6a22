"""The kill-anything suite's victims (tests/faults/test_kill_anything.py): every process the API
depends on, how to find its pid, how it comes back (the supervisor, or cluster/up.sh), and what
slurmctld and the accounting database hold afterwards (squeue, sacct)."""

from __future__ import annotations

import collections
import importlib.util
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.faults.processes import eventually

ROOT = Path(__file__).resolve().parents[2]
BACK_WITHIN = 60.0          # s: bound on waiting for a supervised process to be restarted and ready
SQUEUE_ENV = {"SLURM_CONF": "/etc/slurm/slurm.conf", "PATH": "/usr/bin:/bin:/usr/sbin:/sbin"}


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


# --- processes ------------------------------------------------------------------------------------

def alive(pid: int) -> bool:
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
        if not alive(pid) or Path(f"/proc/{pid}/comm").read_text().strip() != victim.comm:
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

def _named(command: list[str], prefix: str) -> list[tuple[str, str]]:
    """(job id, name) of the jobs `command` lists as "id|name" lines whose name starts with `prefix`."""
    out = subprocess.run(command, capture_output=True, text=True, env=SQUEUE_ENV, timeout=60).stdout
    pairs = (line.strip().partition("|") for line in out.splitlines())
    return [(job_id, name) for job_id, _, name in pairs if name.startswith(prefix)]


def jobs_by_name(prefix: str, since: str, users: list[str]) -> dict[str, set[str]]:
    """Job ids per job name starting with `prefix`, of `users`, from squeue (slurmctld's
    memory, every state) and sacct (the accounting database)."""
    found: dict[str, set[str]] = collections.defaultdict(set)
    users = ",".join(users)
    commands = [["squeue", "-h", "-t", "all", "-u", users, "-o", "%i|%j"],
                ["sacct", "-n", "-X", "-P", "-u", users, "-S", since, "-o", "JobID,JobName"]]
    for command in commands:
        for job_id, name in _named(command, prefix):
            found[name].add(job_id)
    return found


def cancel_pending(prefix: str, users: list[str]) -> int:
    """Cancels the pending jobs of `users` whose name starts with `prefix`; returns how many. The load
    submits faster than the one node runs even `true` (~3 jobs a second here): what is still queued
    when the suite ends would hold back the next tests' jobs (seen: ~80 s of queue)."""
    ids = [job_id for job_id, _ in _named(["squeue", "-h", "-t", "PD", "-u", ",".join(users), "-o", "%i|%j"],
                                          prefix)]
    if ids:
        subprocess.run(["scancel", *ids], capture_output=True, env=SQUEUE_ENV, timeout=60)
    return len(ids)
