"""Validation of the paths a request names, before anything reaches the cluster.

A path must be absolute, free of `..` components and NUL bytes, and lie inside one of the system's
configured filesystems (FirecREST v2's `file_systems`); anything else is a 400. This is a policy
check on the text of the path only: symbolic links are resolved by the remote commands, which run as
the caller, so Unix permissions on the system decide what a link can reach.
"""

from __future__ import annotations

from services.common.config import SystemConfig
from services.common.errors import BadRequest

MISSING_PATH = ("Unable to decode request and retreive the required path or source_path parameter.")


def first_path(*spellings: str) -> str:
    """The first non-empty of the accepted spellings of a path (`path`, `sourcePath`, ...)."""
    for value in spellings:
        if value:
            return value
    raise BadRequest(MISSING_PATH)


def in_filesystem(path: str, root: str) -> bool:
    return root == "/" or path == root or path.startswith(root + "/")


def validate(system: SystemConfig, path: str, *, name: str = "path") -> str:
    """`path` unchanged when it is an acceptable absolute path on `system`; BadRequest otherwise."""
    if not path:
        raise BadRequest(MISSING_PATH if name == "path" else f"The `{name}` parameter is required.")
    if "\x00" in path:
        raise BadRequest(f"The provided path contains a NUL byte.")
    if not path.startswith("/"):
        raise BadRequest(f"The provided path ({path}) is not an absolute path.")
    if ".." in path.split("/"):
        raise BadRequest(f"The provided path ({path}) contains a '..' component.")
    if not any(in_filesystem(path, fs.path) for fs in system.file_systems):
        roots = ", ".join(fs.path for fs in system.file_systems)
        raise BadRequest(f"The provided path ({path}) does not match any of the defined filesystem "
                         f"paths for system {system.name} ({roots}).")
    return path
