"""`sacctmgr show user <name> withassoc`: the caller's Slurm accounts, the default one marked.

One query gives both the default account and every associated account (`default|account` lines).
"""

from __future__ import annotations

from firecrest_mesh.status.v1 import status_pb2


def command(username: str) -> list[str]:
    return ["sacctmgr", "-n", "-P", "show", "user", username, "withassoc", "format=defaultaccount,account"]


def parse(stdout: str) -> list[status_pb2.SchedulerAccount]:
    """The accounts by name, once each, the default one marked."""
    default, names = "", []
    for line in stdout.splitlines():
        fields = line.strip().split("|")
        if len(fields) != 2:
            continue
        default = default or fields[0]
        if fields[1] and fields[1] not in names:
            names.append(fields[1])
    return [status_pb2.SchedulerAccount(name=n, default=(n == default)) for n in sorted(names)]
