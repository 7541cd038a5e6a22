"""A file generated from the protos and committed (docs/openapi.json, docs/api-routes.md): written by
`make gen`, or compared with what would be written (`--check`, which the unit tests run). Called by
gateway/openapi.py and scripts/routes.py."""

from __future__ import annotations

import sys
from pathlib import Path

from services.common.config import REPO_ROOT


def write_or_check(path: Path, text: str, args: list[str]) -> int:
    """With `--check` in `args`: 1 (and a line on stderr) when `path` does not hold `text`, else 0.
    Without: writes `text` to `path` and prints the path; 0."""
    if "--check" in args:
        if not path.exists() or path.read_text() != text:
            print(f"{path.relative_to(REPO_ROOT)} is stale: run `make gen`", file=sys.stderr)
            return 1
        return 0
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
    print(path)
    return 0
