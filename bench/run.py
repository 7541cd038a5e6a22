"""Runs every benchmark script in bench/ (compute, status, utilities, soak, zero_trust) one after the other.

soak (10 minutes of 32 pyfirecrest clients; `--quick` makes it 1) comes after the short ones, whose
figures its queued jobs would disturb. zero_trust comes last: it stops the mesh's services and Envoy,
runs the baseline ref's, and leaves this working tree's mesh running again (about 3 minutes).
"""

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
LAST = ("soak.py", "zero_trust.py")
LIBRARIES = ("run.py", "harness.py", "wrk_load.py", "mesh_variants.py")  # imported by the benchmarks, not run
SCRIPTS = sorted((p for p in HERE.glob("*.py") if p.name not in LIBRARIES),
                 key=lambda p: (LAST.index(p.name) if p.name in LAST else -1, p.name))

failed = 0
for script in SCRIPTS:
    print(f"== {script.name}", flush=True)
    failed += subprocess.run([sys.executable, str(script), *sys.argv[1:]]).returncode != 0
sys.exit(1 if failed else 0)
