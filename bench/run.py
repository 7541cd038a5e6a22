"""Runs every benchmark script in bench/ (compute, status, utilities, zero_trust) one after the other.

zero_trust comes last: it stops the mesh's services and Envoy, runs the baseline ref's, and leaves
this working tree's mesh running again (about 3 minutes).
"""

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
