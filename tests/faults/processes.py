"""What the fault tests share: the launcher (`mesh`: stop and start the mesh's processes as an engineer
would) and `eventually` (poll a condition up to a bound; the bound is never what a test asserts)."""

from __future__ import annotations

import subprocess
import sys
import time

from services.common.config import REPO_ROOT


def mesh(*args: str, timeout: float = 300) -> None:
    """`scripts/mesh.py <args>` (e.g. "stop", "utilities" or "up"); raises if it fails."""
    subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "mesh.py"), *args], cwd=REPO_ROOT, check=True,
                   capture_output=True, timeout=timeout)


def eventually(check, timeout: float = 60.0, interval: float = 0.5):
    """Polls `check` until it returns a truthy value, or returns its last value once `timeout` passed."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)
