"""Runs a command as a child and stays alive as its parent, forwarding SIGTERM/SIGINT to it.

Envoy terminates itself when its parent process exits (observed here: it logs "caught
ENVOY_SIGTERM" as soon as the launcher that started it returns). The launcher therefore starts
Envoy under this small parent, which lives as long as Envoy does.
"""

import signal
import subprocess
import sys

child = subprocess.Popen(sys.argv[1:])
for sig in (signal.SIGTERM, signal.SIGINT):
    signal.signal(sig, lambda signum, _frame: child.send_signal(signum))
sys.exit(child.wait())
