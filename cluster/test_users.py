"""Prints the configured test users (`test_users` in the project configuration) for cluster/up.sh.

One line per user: the name, then its Slurm accounts, the default first, separated by spaces
(`alice proj-a shared`). Reads the file load_config() reads (FIRECREST_MESH_CONFIG, else
config/local.yaml); needs only PyYAML, so the system python3 serves as well as the venv's.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from services.common.config import ConfigError, load_config  # noqa: E402


def main() -> int:
    try:
        users = load_config().test_users
    except ConfigError as exc:
        print(f"test_users.py: {exc}", file=sys.stderr)
        return 1
    for user in users:
        print(" ".join((user.name, *user.accounts)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
