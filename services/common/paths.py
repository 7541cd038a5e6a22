"""Validation of the paths a request names, before anything reaches the cluster; shared by the
utilities service (every file operation) and the compute service (a job's working directory).

A path must be absolute, free of `..` components and NUL bytes, no longer than the system's PATH_MAX,
and lie inside one of the system's configured filesystems (FirecREST v2's `file_systems`); anything
else is a 400. This is a policy check on the text of the path only: symbolic links are resolved by
the remote commands, which run as the caller, so Unix permissions on the system decide what a link
can reach.
"""

from __future__ import annotations

from services.common.config import SystemConfig
from services.common.errors import BadRequest

MISSING_PATH = ("Unable to decode request and retreive the required path or source_path parameter.")
# Linux's PATH_MAX (bytes, including the terminating NUL): longer paths fail with ENAMETOOLONG on the
# system anyway; refusing them here keeps them out of command lines.
MAX_PATH_BYTES = 4095


def first_path(*spellings: str) -> str:
    """The first non-empty of the accepted spellings of a path (`path`, `sourcePath`, ...)."""
    for value in spellings:
        if value:
            return value
    raise BadRequest(MISSING_PATH)


def in_filesystem(path: str, root: str) -> bool:
    return root == "/" or path == root or path.startswith(root + "/")


def _shown(path: str, limit: int = 200) -> str:
    return path if len(path) <= limit else path[:limit] + "…"


def validate(system: SystemConfig, path: str, *, name: str = "path") -> str:
    """`path` unchanged when it is an acceptable absolute path on `system`; BadRequest otherwise.

    `name` is the request field that carried the path; error messages about `path` itself keep
    FirecREST v2's wording, the other fields are named in the message."""
    subject = "path" if name == "path" else f"`{name}` path"
    if not path:
        raise BadRequest(MISSING_PATH if name == "path" else f"The `{name}` parameter is required.")
    if "\x00" in path:
        raise BadRequest(f"The provided {subject} contains a NUL byte.")
    if len(path.encode("utf-8", errors="surrogatepass")) > MAX_PATH_BYTES:
        raise BadRequest(f"The provided {subject} is longer than {MAX_PATH_BYTES} bytes.")
    if not path.startswith("/"):
        raise BadRequest(f"The provided {subject} ({_shown(path)}) is not an absolute path.")
    if ".." in path.split("/"):
        raise BadRequest(f"The provided {subject} ({_shown(path)}) contains a '..' component.")
    if not any(in_filesystem(path, fs.path) for fs in system.file_systems):
        roots = ", ".join(fs.path for fs in system.file_systems)
        raise BadRequest(f"The provided {subject} ({_shown(path)}) does not match any of the defined "
                         f"filesystem paths for system {system.name} ({roots}).")
    return path
