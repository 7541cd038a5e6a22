"""`scontrol -a -o show reservations`: the reservations, times as epoch seconds.

SLURM_TIME_FORMAT=%s makes Slurm print times as seconds since the epoch, so the login node's time
zone does not matter.
"""

from __future__ import annotations

from firecrest_mesh.status.v1 import status_pb2
from services.slurm import scontrol_records
from services.slurm.numbers import number


def command() -> list[str]:
    return ["env", "SLURM_TIME_FORMAT=%s", "scontrol", "-a", "-o", "show", "reservations"]


def parse(stdout: str) -> list[status_pb2.Reservation]:
    reservations = []
    for r in scontrol_records.records(stdout):
        if "ReservationName" not in r:
            continue  # "No reservations in the system"
        reservation = status_pb2.Reservation(
            name=r["ReservationName"], node_list=r.get("Nodes", ""),
            start_time=number(r.get("StartTime")) or 0, end_time=number(r.get("EndTime")) or 0,
            state=r.get("State", "").lower())
        features = scontrol_records.optional(r.get("Features"))
        if features is not None:
            reservation.features = features
        reservations.append(reservation)
    return reservations
