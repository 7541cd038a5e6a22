"""Compute nodes from `sinfo --json` (machine-readable; no column positions)."""

from __future__ import annotations

import json

from firecrest_mesh.status.v1 import status_pb2

ARGV = ["sinfo", "--all", "--json"]
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


def _number(value) -> float:
    """sinfo JSON numbers are plain in 22.05 and {"set","number"} objects in later releases."""
    if isinstance(value, dict):
        return value.get("number", 0) if value.get("set", True) else 0
    return value or 0


def parse(stdout: str) -> list[status_pb2.Node]:
    data = json.loads(stdout)
    nodes = []
    for n in data.get("nodes", []):
        features = n.get("features", "")
        nodes.append(status_pb2.Node(
            sockets=int(_number(n.get("sockets"))), cores=int(_number(n.get("cores"))),
            threads=int(_number(n.get("threads"))), cpus=int(_number(n.get("cpus"))),
            cpu_load=_number(n.get("cpu_load")) / 100.0,  # Slurm reports load × 100
            free_memory=int(_number(n.get("free_memory"))),
            features=",".join(features) if isinstance(features, list) else str(features or ""),
            name=n.get("name", ""), address=n.get("address", ""), hostname=n.get("hostname", ""),
            state=_states(n), partitions=list(n.get("partitions", []) or []),
            weight=int(_number(n.get("weight"))), alloc_memory=int(_number(n.get("alloc_memory"))),
            alloc_cpus=int(_number(n.get("alloc_cpus"))), idle_cpus=int(_number(n.get("idle_cpus"))),
        ))
    return nodes
