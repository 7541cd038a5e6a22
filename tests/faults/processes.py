"""What the fault tests share: the launcher (`mesh`: stop and start the mesh's processes as an engineer
would) and `eventually` (tests/polling.py: poll a condition up to a bound; the bound is never what a
test asserts)."""

from __future__ import annotations

import subprocess
import sys

from services.common.config import REPO_ROOT
from tests.polling import eventually

__all__ = ["eventually", "mesh"]


def mesh(*args: str, timeout: float = 300) -> None:
    """`scripts/mesh.py <args>` (e.g. "stop", "utilities" or "up"); raises if it fails."""
    subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "mesh.py"), *args], cwd=REPO_ROOT, check=True,
                   capture_output=True, timeout=timeout)
