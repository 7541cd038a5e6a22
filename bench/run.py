"""Runs every benchmark script in bench/ (status, compute, utilities, ...) one after the other."""

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = [p for p in sorted(HERE.glob("*.py")) if p.name not in ("run.py", "harness.py")]

failed = 0
for script in SCRIPTS:
    print(f"== {script.name}", flush=True)
    failed += subprocess.run([sys.executable, str(script), *sys.argv[1:]]).returncode != 0
sys.exit(1 if failed else 0)
