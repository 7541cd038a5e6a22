"""Keeps the mesh's processes running on one machine: restarts one that exits by itself, with backoff.

Started by the launcher (`scripts/mesh.py up`) as a daemon, one per state folder:

    python scripts/process_supervisor.py STATE_RUN_DIR LOG_DIR

The launcher says what should run in `STATE_RUN_DIR/supervisor/programs.json` (name → argv and
whether it is wanted up; written atomically, then SIGHUP). The supervisor starts each wanted program
in its own session with its output appended to `LOG_DIR/<name>.log`, writes its pid to
`STATE_RUN_DIR/<name>.pid`, and reports every program's state, pid, start time and restart count in
`STATE_RUN_DIR/supervisor/status.json`. A program that exits while wanted up is started again after
`backoff_delay()` (0.5 s, doubling while it keeps dying within `STABLE_AFTER` s, at most 30 s; never
given up). A program wanted down (`mesh.py stop NAME`) is sent SIGTERM (its process group), SIGKILL
after `STOP_TIMEOUT` s, and is not restarted. SIGTERM to the supervisor stops every program and then
the supervisor itself (`mesh.py down`).
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

FIRST_DELAY = 0.5     # s before the first restart of a program that died
MAX_DELAY = 30.0      # s, cap of the doubling delay
STABLE_AFTER = 30.0   # s: a program that ran this long is healthy again; its next death restarts fast
STOP_TIMEOUT = 10.0   # s between SIGTERM and SIGKILL
TICK = 0.5            # s between checks when no signal arrives


def backoff_delay(failures: int) -> float:
    """Delay before restarting a program that died `failures` times in a row (1 = first death)."""
    return min(MAX_DELAY, FIRST_DELAY * 2 ** max(0, failures - 1))


@dataclass
class Program:
    """One supervised program's wanted and actual state; decisions only, no process handling.
    States: stopped, running, backoff (died, waiting to be restarted), stopping (SIGTERM sent)."""
    name: str
    argv: list[str]
    want_up: bool = False
    state: str = "stopped"
    pid: int | None = None
    started: float = 0.0        # monotonic time of the last start
    started_at: float = 0.0     # wall-clock time of the last start (reported)
    restarts: int = 0           # starts after the program exited by itself
    failures: int = 0           # deaths in a row, each within STABLE_AFTER of its start
    next_start: float = 0.0     # monotonic time of the next restart (backoff)
    kill_at: float = 0.0        # monotonic time to send SIGKILL (stopping)
    last_exit: int | None = None

    def action(self, now: float) -> str | None:
        """What the supervisor should do now: "start", "term", "kill" or nothing."""
        if self.want_up:
            if self.state == "stopped" or (self.state == "backoff" and now >= self.next_start):
                return "start"
            return None
        if self.state == "running":
            return "term"
        if self.state == "backoff":
            self.state = "stopped"
        if self.state == "stopping" and now >= self.kill_at:
            return "kill"
        return None

    def on_start(self, pid: int, now: float, wall: float) -> None:
        if self.state == "backoff":
            self.restarts += 1
        else:
            self.failures = 0  # a start asked for: its earlier deaths no longer count
        self.state, self.pid, self.started, self.started_at = "running", pid, now, wall

    def on_term(self, now: float) -> None:
        self.state, self.kill_at = "stopping", now + STOP_TIMEOUT

    def on_kill(self, now: float) -> None:
        self.kill_at = now + STOP_TIMEOUT  # once more later if it is still there

    def on_exit(self, code: int | None, now: float) -> None:
        self.pid, self.last_exit = None, code
        if self.state == "stopping" or not self.want_up:
            self.state = "stopped"
            return
        self.failures = self.failures + 1 if now - self.started < STABLE_AFTER else 1
        self.state, self.next_start = "backoff", now + backoff_delay(self.failures)

    def report(self, now: float) -> dict:
        return {"state": self.state, "want": "up" if self.want_up else "down", "pid": self.pid,
                "started_at": self.started_at if self.pid else None, "restarts": self.restarts,
                "failures": self.failures,
                "last_exit": self.last_exit,
                "restart_in": round(max(0.0, self.next_start - now), 1) if self.state == "backoff" else None}


def write_json(path: Path, value: dict) -> None:
    """Atomic replace: a reader sees the old or the new file, never half of one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(value, indent=1))
    os.replace(tmp, path)


def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


class Supervisor:
    """The daemon: applies programs.json, starts, restarts and stops programs, writes status.json."""

    def __init__(self, run_dir: Path, log_dir: Path, cwd: Path):
        self.run_dir, self.log_dir, self.cwd = run_dir, log_dir, cwd
        self.folder = run_dir / "supervisor"
        self.programs: dict[str, Program] = {}
        self.children: dict[str, subprocess.Popen] = {}
        self.reload, self.stopping = True, False

    def log(self, message: str) -> None:
        print(time.strftime("%Y-%m-%dT%H:%M:%S"), message, flush=True)

    def apply_programs(self) -> None:
        wanted = read_json(self.folder / "programs.json").get("programs", {})
        for name, spec in wanted.items():
            program = self.programs.setdefault(name, Program(name, spec["argv"]))
            program.argv, program.want_up = list(spec["argv"]), spec.get("want") == "up" and not self.stopping
        for name, program in self.programs.items():
            if name not in wanted or self.stopping:
                program.want_up = False

    def start(self, program: Program, now: float) -> None:
        with open(self.log_dir / f"{program.name}.log", "ab") as log:
            try:
                child = subprocess.Popen(program.argv, cwd=self.cwd, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
            except OSError as exc:
                self.log(f"{program.name}: cannot start: {exc}")
                program.on_start(-1, now, time.time())
                program.on_exit(None, now)
                return
        restarting = program.state == "backoff"
        program.on_start(child.pid, now, time.time())
        self.children[program.name] = child
        (self.run_dir / f"{program.name}.pid").write_text(str(child.pid))
        self.log(f"{program.name}: {'restarted' if restarting else 'started'} (pid {child.pid}"
                 + (f", restart {program.restarts})" if restarting else ")"))

    def signal_group(self, program: Program, sig: int) -> None:
        try:
            os.killpg(program.pid, sig)
        except (ProcessLookupError, PermissionError, TypeError):
            pass

    def reap(self, now: float) -> None:
        for name, child in list(self.children.items()):
            # Seen exited but not reaped yet: its process group cannot be reused while it is a zombie.
            if os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
                continue
            program = self.programs[name]
            self.signal_group(program, signal.SIGKILL)  # whatever it left in its process group
            code = child.wait()
            del self.children[name]
            program.on_exit(code, now)
            (self.run_dir / f"{name}.pid").unlink(missing_ok=True)
            if program.state == "backoff":
                self.log(f"{name}: exited ({code}); restarting in {program.next_start - now:.1f} s")
            else:
                self.log(f"{name}: stopped ({code})")

    def step(self, now: float) -> None:
        if self.reload:
            self.reload = False
            self.apply_programs()
        self.reap(now)
        for program in self.programs.values():
            action = program.action(now)
            if action == "start":
                self.start(program, now)
            elif action == "term":
                self.signal_group(program, signal.SIGTERM)
                program.on_term(now)
            elif action == "kill":
                self.log(f"{program.name}: still running {STOP_TIMEOUT:.0f} s after SIGTERM; SIGKILL")
                self.signal_group(program, signal.SIGKILL)
                program.on_kill(now)
        write_json(self.folder / "status.json", {
            "supervisor_pid": os.getpid(), "updated": time.time(),
            "programs": {name: p.report(now) for name, p in self.programs.items()}})

    def run(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_r, False)
        os.set_blocking(wake_w, False)
        signal.set_wakeup_fd(wake_w)

        def on_signal(signum, _frame):
            if signum == signal.SIGHUP:
                self.reload = True
            elif signum in (signal.SIGTERM, signal.SIGINT):
                self.stopping = self.reload = True
        for sig in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
            signal.signal(sig, on_signal)
        (self.run_dir / "supervisor.pid").write_text(str(os.getpid()))
        self.log(f"supervisor started (pid {os.getpid()})")
        while True:
            self.step(time.monotonic())
            if self.stopping and not self.children:
                break
            select.select([wake_r], [], [], TICK)
            try:
                os.read(wake_r, 512)
            except BlockingIOError:
                pass
        (self.run_dir / "supervisor.pid").unlink(missing_ok=True)
        self.log("supervisor stopped")


if __name__ == "__main__":
    run_dir, log_dir = Path(sys.argv[1]), Path(sys.argv[2])
    Supervisor(run_dir, log_dir, cwd=Path(__file__).resolve().parents[1]).run()
