"""Commands that change a file and answer with its new `ls -ld` entry: chmod, chown, mkdir, symlink
(ops/chmod, ops/chown, ops/mkdir, ops/symlink). Each returns the argv lists to chain with `&&`:
the change, then `find` describing the resulting entry (see `listing`)."""

from __future__ import annotations

import re

from services.common.errors import BadRequest
from services.utilities.commands import listing

# GNU chmod's MODE: one octal number (at most 07777, optionally after one of `-+=`), or a
# comma-separated list of symbolic clauses such as `u+x`, `go=r`, `a-wX`, `g=u`, `+t`.
_SYMBOLIC = r"[ugoa]*(?:[-+=](?:[rwxXst]*|[ugo]))+"
MODE_RE = re.compile(rf"[-+=]?0*[0-7]{{1,4}}|{_SYMBOLIC}(?:,{_SYMBOLIC})*")
MAX_MODE_LENGTH = 256
# A user or group: a name of printable characters without `:` (the system decides whether it
# exists; `chown` answers "invalid user"/"invalid group", a 400), or a numeric id.
MAX_OWNER_LENGTH = 256


def valid_mode(mode: str) -> str:
    """`mode` when GNU chmod accepts it as a mode, else 400 (chmod itself would fail with a 500)."""
    if not mode:
        raise BadRequest("The `mode` parameter is required.")
    if len(mode) > MAX_MODE_LENGTH or not MODE_RE.fullmatch(mode):
        raise BadRequest(f"Invalid `mode` {mode[:MAX_MODE_LENGTH]!r}: expected an octal mode such as 755 "
                         f"or symbolic modes such as u+x,go-w.")
    return mode


def chmod_argvs(path: str, mode: str) -> list[list[str]]:
    return [["chmod", "--", valid_mode(mode), path], listing.describe_argv(path)]


def _owner(value: str, field: str) -> str:
    if len(value) > MAX_OWNER_LENGTH or not value.isprintable() or ":" in value:
        raise BadRequest(f"invalid user or group in `{field}`: {value[:MAX_OWNER_LENGTH]!r}")
    return value


def chown_argvs(path: str, owner: str, group: str) -> list[list[str]]:
    if not owner and not group:
        raise BadRequest("Either `owner` or `group` must be specified.")
    owner, group = _owner(owner, "owner"), _owner(group, "group")
    spec = f"{owner}:{group}" if group else owner
    return [["chown", "--", spec, path], listing.describe_argv(path)]


def mkdir_argvs(path: str, parent: bool) -> list[list[str]]:
    return [["mkdir", *(["-p"] if parent else []), "--", path], listing.describe_argv(path)]


def symlink_argvs(target: str, link_path: str) -> list[list[str]]:
    return [["ln", "-s", "--", target, link_path], listing.describe_argv(link_path)]
