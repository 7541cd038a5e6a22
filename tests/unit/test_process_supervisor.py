"""The supervisor's decisions (scripts/process_supervisor.py): backoff, restart counting, stopping on
purpose; and one real supervisor run on throw-away programs (sleep, sh) in a temporary folder."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from scripts import process_supervisor as sv
from scripts.process_supervisor import Program, backoff_delay

ROOT = Path(__file__).resolve().parents[2]


def test_backoff_doubles_from_half_a_second_and_is_capped():
    assert [backoff_delay(n) for n in range(1, 8)] == [0.5, 1, 2, 4, 8, 16, 30]
    assert backoff_delay(100) == sv.MAX_DELAY


def test_a_wanted_program_starts_and_is_restarted_with_growing_delay_after_dying():
    p = Program("utilities", ["x"], want_up=True)
    assert p.action(0) == "start"
    p.on_start(10, now=0, wall=1000)
    assert p.action(1) is None
    p.on_exit(-9, now=1)                       # died 1 s after its start
    assert (p.state, p.failures, p.next_start) == ("backoff", 1, 1.5)
    assert p.action(1.2) is None
    assert p.action(1.5) == "start"
    p.on_start(11, now=1.5, wall=1001.5)
    assert p.restarts == 1
    p.on_exit(1, now=2)                        # dies again soon: the delay doubles
    assert (p.failures, p.next_start) == (2, 3.0)


def test_a_program_that_ran_long_enough_is_restarted_fast_again():
    p = Program("compute", ["x"], want_up=True, failures=5)
    p.on_start(10, now=0, wall=0)
    p.on_exit(-9, now=sv.STABLE_AFTER + 1)
    assert p.failures == 1 and p.next_start == sv.STABLE_AFTER + 1 + sv.FIRST_DELAY


def test_a_program_stopped_on_purpose_is_not_restarted_and_is_killed_if_it_lingers():
    p = Program("status", ["x"], want_up=True)
    p.on_start(10, now=0, wall=0)
    p.want_up = False
    assert p.action(1) == "term"
    p.on_term(now=1)
    assert p.action(2) is None
    assert p.action(1 + sv.STOP_TIMEOUT) == "kill"
    p.on_kill(now=1 + sv.STOP_TIMEOUT)
    p.on_exit(-9, now=12)
    assert (p.state, p.restarts) == ("stopped", 0)
    assert p.action(100) is None


def test_a_program_waiting_for_its_restart_is_dropped_when_stopped_and_started_again_by_up():
    p = Program("envoy", ["x"], want_up=True)
    p.on_start(10, now=0, wall=0)
    p.on_exit(-9, now=1)
    p.want_up = False
    assert p.action(1.1) is None and p.state == "stopped"
    p.want_up = True
    assert p.action(1.2) == "start"
    p.on_start(11, now=1.2, wall=0)
    assert (p.restarts, p.failures) == (0, 0), "a start asked for is not a restart"


def _status(run: Path) -> dict:
    return sv.read_json(run / "supervisor" / "status.json").get("programs", {})


def _until(check, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not (value := check()) and time.monotonic() < deadline:
        time.sleep(0.1)
    return value


def test_the_daemon_restarts_a_killed_program_and_stops_it_on_sigterm(tmp_path):
    run, logs = tmp_path / "run", tmp_path / "logs"
    (run / "supervisor").mkdir(parents=True)
    logs.mkdir()
    sv.write_json(run / "supervisor" / "programs.json",
                  {"programs": {"sleeper": {"argv": ["sleep", "600"], "want": "up"}}})
    daemon = subprocess.Popen([sys.executable, str(ROOT / "scripts" / "process_supervisor.py"), str(run), str(logs)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        first = _until(lambda: _status(run).get("sleeper", {}).get("pid"))
        assert first and int((run / "sleeper.pid").read_text()) == first
        os.kill(first, signal.SIGKILL)
        second = _until(lambda: (pid := _status(run)["sleeper"]["pid"]) not in (None, first) and pid)
        assert second, _status(run)
        assert _status(run)["sleeper"]["restarts"] == 1
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=20) == 0
        assert not (run / "supervisor.pid").exists() and not (run / "sleeper.pid").exists()
        assert _until(lambda: not Path(f"/proc/{second}").exists()), "SIGTERM stops the programs too"
    finally:
        if daemon.poll() is None:
            daemon.kill()
        for name in ("sleeper",):
            if (pid := _status(run).get(name, {}).get("pid")):
                try:
                    os.killpg(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
    assert json.loads((run / "supervisor" / "status.json").read_text())["programs"]["sleeper"]["pid"] is None
