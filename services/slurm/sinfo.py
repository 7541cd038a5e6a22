"""`sinfo --all --json`: the compute nodes (machine-readable; no column positions)."""

from __future__ import annotations

import json

from firecrest_mesh.status.v1 import status_pb2
from services.slurm.numbers import number

_STATE_SUFFIXES = "*+~#%$@!^-"
_STATE_NAMES = {
    "idle": "IDLE", "alloc": "ALLOCATED", "allocated": "ALLOCATED", "mix": "MIXED", "mixed": "MIXED",
    "down": "DOWN", "drain": "DRAIN", "drng": "DRAIN", "draining": "DRAIN", "drained": "DRAIN",
    "planned": "RESERVED", "resv": "RESERVED", "reserved": "RESERVED", "comp": "COMPLETING",
    "completing": "COMPLETING", "unk": "UNKNOWN", "unknown": "UNKNOWN", "future": "UNKNOWN",
    "pow_dn": "POWERING_DOWN", "powering_down": "POWERING_DOWN", "pow_up": "POWERING_UP",
    "powering_up": "POWERING_UP", "boot": "POWERING_UP", "fail": "DOWN", "maint": "RESERVED",
    "npc": "BUSY", "inval": "UNKNOWN",
}


def command() -> list[str]:
    return ["sinfo", "--all", "--json"]


def normalize_state(state: str) -> str:
    """FirecREST's state name for one sinfo state word (suffix flags such as `*` stripped)."""
    word = state.strip().rstrip(_STATE_SUFFIXES).lower()
    return _STATE_NAMES.get(word, word.upper() or "UNKNOWN")


def _states(node: dict) -> list[str]:
    raw = node.get("state", [])
    words = raw if isinstance(raw, list) else [raw]
    words += node.get("state_flags", []) or []
    seen: list[str] = []
    for w in words:
        s = normalize_state(str(w))
        if s not in seen:
            seen.append(s)
    return seen


def parse(stdout: str) -> list[status_pb2.Node]:
    nodes = []
    for n in json.loads(stdout).get("nodes", []):
        count = {key: number(n.get(key)) or 0 for key in (
            "sockets", "cores", "threads", "cpus", "cpu_load", "free_memory", "weight", "alloc_memory",
            "alloc_cpus", "idle_cpus")}
        features = n.get("features", "")
        nodes.append(status_pb2.Node(
            sockets=count["sockets"], cores=count["cores"], threads=count["threads"], cpus=count["cpus"],
            cpu_load=count["cpu_load"] / 100.0,  # Slurm reports load × 100
            free_memory=count["free_memory"],
            features=",".join(features) if isinstance(features, list) else str(features or ""),
            name=n.get("name", ""), address=n.get("address", ""), hostname=n.get("hostname", ""),
            state=_states(n), partitions=list(n.get("partitions", []) or []), weight=count["weight"],
            alloc_memory=count["alloc_memory"], alloc_cpus=count["alloc_cpus"], idle_cpus=count["idle_cpus"],
        ))
    return nodes
