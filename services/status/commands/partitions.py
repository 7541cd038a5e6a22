"""Partitions from `scontrol -a -o show partitions`."""

from __future__ import annotations

from firecrest_mesh.status.v1 import status_pb2
from services.status.commands.scontrol_records import parse_records

ARGV = ["scontrol", "-a", "-o", "show", "partitions"]


def _int(value: str | None) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0


def parse(stdout: str, show_hidden: bool) -> list[status_pb2.Partition]:
    partitions = []
    for r in parse_records(stdout):
        if r.get("Hidden") == "YES" and not show_hidden:
            continue
        partitions.append(status_pb2.Partition(
            name=r.get("PartitionName", ""), cpus=_int(r.get("TotalCPUs")),
            total_nodes=_int(r.get("TotalNodes")), partition=r.get("State", "UNKNOWN")))
    return partitions
