"""Commands that change a file and answer with its new `ls -ld` entry: chmod, chown, mkdir, symlink
(ops/chmod, ops/chown, ops/mkdir, ops/symlink). Each returns the argv lists to chain with `&&`:
the change, then `find` describing the resulting entry (see `listing`)."""

from __future__ import annotations

from services.common.errors import BadRequest
from services.utilities.commands import listing


def chmod_argvs(path: str, mode: str) -> list[list[str]]:
    if not mode:
        raise BadRequest("The `mode` parameter is required.")
    return [["chmod", "--", mode, path], listing.describe_argv(path)]


def chown_argvs(path: str, owner: str, group: str) -> list[list[str]]:
    if not owner and not group:
        raise BadRequest("Either `owner` or `group` must be specified.")
    for value in (owner, group):
        if ":" in value:
            raise BadRequest(f"invalid user or group: {value!r}")
    spec = f"{owner}:{group}" if group else owner
    return [["chown", "--", spec, path], listing.describe_argv(path)]


def mkdir_argvs(path: str, parent: bool) -> list[list[str]]:
    return [["mkdir", *(["-p"] if parent else []), "--", path], listing.describe_argv(path)]


def symlink_argvs(target: str, link_path: str) -> list[list[str]]:
    return [["ln", "-s", "--", target, link_path], listing.describe_argv(link_path)]
