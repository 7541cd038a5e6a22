"""Real output of the utilities service's commands, captured on the local cluster as alice in a folder
of hostile names (tests/data/coreutils-9.1, made by its capture.py): what the unit tests of the command
modules parse (test_utilities_*commands.py, test_utilities_errors.py)."""

from __future__ import annotations

import json
from pathlib import Path

from services.common.ssh.command import CommandResult

CAPTURED = Path(__file__).parents[1] / "data" / "coreutils-9.1"  # made by its capture.py
CAPTURE = "/scratch/alice/capture"  # the folder of hostile names the outputs were captured in
NEWLINE = f"{CAPTURE}/new\nline"  # holds CONTENT
CONTENT = (CAPTURED / "content.bin").read_bytes()
FAILURES = json.loads((CAPTURED / "failures.json").read_text())
CAPTURE_TIME = "2026-11-27T16:44:50"


def captured(name: str) -> bytes:
    """The stdout of a successful command, as captured (`<name>.out`)."""
    return (CAPTURED / f"{name}.out").read_bytes()


def failure(name: str) -> CommandResult:
    """A failed command's result, as captured (failures.json)."""
    f = FAILURES[name]
    return CommandResult(f["exit_status"], f["stdout"].encode(), f["stderr"].encode())
