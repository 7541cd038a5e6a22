"""The protos are the source of truth: they lint clean and gen/ is what they generate."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


def test_buf_lint_passes():
    result = subprocess.run([str(VENV_BIN / "buf"), "lint"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_generated_code_is_fresh():
    result = subprocess.run(["bash", "scripts/gen.sh", "--check"], cwd=ROOT, capture_output=True, text=True,
                            env={"PYTHON": sys.executable, "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stdout + result.stderr


def test_route_table_is_fresh():
    """docs/api-routes.md is generated from the protos (`make gen`); stale means someone edited a rule."""
    result = subprocess.run([sys.executable, "scripts/routes.py", "--check"], cwd=ROOT, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
