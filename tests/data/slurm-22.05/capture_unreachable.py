"""Captures tests/data/slurm-22.05/scheduler_unreachable.txt: what each Slurm command the services run
prints when it cannot talk to slurmctld or slurmdbd, from the local Slurm's own binaries, as user01.

    sudo .venv/bin/python tests/data/slurm-22.05/capture_unreachable.py

Nothing running is disturbed: each command reads a copy of slurm.conf whose controller (or slurmdbd)
port is one where nothing listens (refused), or a fake daemon that resets the connection after the
request (as a slurmctld killed -9 mid-RPC), hangs up without answering, or never answers
(MessageTimeout=3 instead of 10, the same text sooner).
"""

import socket
import struct
import subprocess
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CONF = HERE.parents[2] / "state/cluster/etc/slurm.conf"
WORK = Path("/tmp/capture-unreachable")
MODES = {"refused": 47101, "reset": 47102, "hangup": 47103, "silent": 47104}
COMMANDS = [  # (name, talks to, argv): the services' commands, in their plain form
    ("sbatch", "ctld", ["sbatch", "--parsable", str(WORK / "job.sh")]),
    ("squeue", "ctld", ["squeue", "--user=user01", "--noheader"]),
    ("squeue --steps", "ctld", ["squeue", "--user=user01", "--noheader", "--steps"]),
    ("scontrol show job", "ctld", ["scontrol", "-o", "show", "job", "1"]),
    ("scontrol write batch_script", "ctld", ["scontrol", "write", "batch_script", "1", "-"]),
    ("scancel", "ctld", ["scancel", "1"]),
    ("sinfo", "ctld", ["sinfo", "-h"]),
    ("sacct", "dbd", ["sacct", "--user=user01", "-X", "--parsable2", "--noheader"]),
    ("sacctmgr", "dbd", ["sacctmgr", "-n", "-P", "show", "associations", "user=user01"]),
]


def fake_daemon(mode: str, port: int) -> None:
    server = socket.create_server(("127.0.0.1", port))

    def serve(conn: socket.socket) -> None:
        conn.settimeout(2)
        try:
            conn.recv(65536)
        except OSError:
            pass
        if mode == "reset":
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        elif mode == "silent":
            time.sleep(30)
        conn.close()

    while True:
        conn, _ = server.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


def conf(which: str, port: int) -> Path:
    key = "SlurmctldPort" if which == "ctld" else "AccountingStoragePort"
    lines = [f"{key}={port}" if line.startswith(key + "=") else line for line in CONF.read_text().splitlines()]
    path = WORK / f"slurm-{which}-{port}.conf"
    path.write_text("\n".join(lines + ["MessageTimeout=3", ""]))
    path.chmod(0o644)
    return path


def main() -> None:
    WORK.mkdir(exist_ok=True)
    WORK.chmod(0o755)
    (WORK / "job.sh").write_text("#!/bin/bash\n#SBATCH --output=/dev/null\ntrue\n")
    for mode, port in MODES.items():
        if mode != "refused":
            threading.Thread(target=fake_daemon, args=(mode, port), daemon=True).start()
    time.sleep(0.5)
    entries = []
    for mode, port in MODES.items():
        for name, which, argv in COMMANDS:
            done = subprocess.run(["runuser", "-u", "user01", "--", "env", f"SLURM_CONF={conf(which, port)}", *argv],
                                  capture_output=True, cwd="/tmp", stdin=subprocess.DEVNULL, timeout=120)
            entries.append(f"## {name} | {mode} | exit {done.returncode}\n{done.stderr.decode().rstrip()}\n")
            print(name, mode, done.returncode)
    (HERE / "scheduler_unreachable.txt").write_text("".join(entries))


if __name__ == "__main__":
    main()
