"""The caller's identity: `id` for user and groups, `sacctmgr` for scheduler accounts."""

from __future__ import annotations

import re

from firecrest_mesh.status.v1 import status_pb2

ID_ARGV = ["id"]
_ID_ENTRY = re.compile(r"(\d+)\(([^)]*)\)")


def accounts_argv(username: str) -> list[str]:
    """One sacctmgr query for both the default account and every associated account."""
    return ["sacctmgr", "-n", "-P", "show", "user", username, "withassoc",
            "format=defaultaccount,account"]


def parse_id(stdout: str) -> tuple[status_pb2.PosixIdentity, status_pb2.PosixIdentity,
                                   list[status_pb2.PosixIdentity]]:
    """Parses `uid=1001(alice) gid=1001(alice) groups=1001(alice),100(users)` (names may hold spaces)."""
    text = stdout.strip()
    def ident(key: str) -> status_pb2.PosixIdentity:
        m = re.search(rf"(?:^|\s){key}=(\d+)\(([^)]*)\)", text)
        return status_pb2.PosixIdentity(id=m.group(1), name=m.group(2)) if m else status_pb2.PosixIdentity()
    groups_text = text.split(" groups=", 1)[1] if " groups=" in text else ""
    groups = [status_pb2.PosixIdentity(id=i, name=n) for i, n in _ID_ENTRY.findall(groups_text)]
    return ident("uid"), ident("gid"), groups


def parse_accounts(stdout: str) -> list[status_pb2.SchedulerAccount]:
    """Parses `default|account` lines (one per association) of `accounts_argv`."""
    default, names = "", []
    for line in stdout.splitlines():
        fields = line.strip().split("|")
        if len(fields) != 2:
            continue
        default = default or fields[0]
        if fields[1] and fields[1] not in names:
            names.append(fields[1])
    return [status_pb2.SchedulerAccount(name=n, default=(n == default)) for n in sorted(names)]
