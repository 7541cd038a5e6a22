"""`scontrol -a -o show partitions`: the partitions, hidden ones included (`-a`), one record a line."""

from __future__ import annotations

from firecrest_mesh.status.v1 import status_pb2
from services.slurm import scontrol_records
from services.slurm.numbers import number


def command() -> list[str]:
    return ["scontrol", "-a", "-o", "show", "partitions"]


def parse(stdout: str, show_hidden: bool) -> list[status_pb2.Partition]:
    """The partitions; `Hidden=YES` ones only when `show_hidden`."""
    partitions = []
    for r in scontrol_records.records(stdout):
        if r.get("Hidden") == "YES" and not show_hidden:
            continue
        partitions.append(status_pb2.Partition(
            name=r.get("PartitionName", ""), cpus=number(r.get("TotalCPUs")) or 0,
            total_nodes=number(r.get("TotalNodes")) or 0, partition=r.get("State", "UNKNOWN")))
    return partitions
