"""Small converters shared by the Slurm parsers: JSON numbers of any Slurm release, nullable values.

Slurm 22.05 (openapi v0.0.38) prints plain numbers and null; 23.02+ prints
`{"set": bool, "infinite": bool, "number": n}`. `number()` reads both.
"""

from __future__ import annotations

from google.protobuf import struct_pb2

INFINITE32 = 0xFFFFFFFF  # Slurm's INFINITE / NO_VAL sentinels in 32-bit fields
NO_VAL32 = 0xFFFFFFFE


def number(value) -> int | None:
    """An integer from a Slurm JSON number (plain or {"set","infinite","number"}), or None."""
    if isinstance(value, dict):
        if not value.get("set", True) or value.get("infinite"):
            return None
        value = value.get("number")
    if value is None or isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def null() -> struct_pb2.Value:
    return struct_pb2.Value(null_value=struct_pb2.NULL_VALUE)


def num(value: int | float | None) -> struct_pb2.Value:
    """A JSON number, or null for None."""
    return null() if value is None else struct_pb2.Value(number_value=value)


def text(value: str | None) -> struct_pb2.Value:
    """A JSON string, or null for None."""
    return null() if value is None else struct_pb2.Value(string_value=str(value))


def epoch(value) -> int | None:
    """Epoch seconds; Slurm's 0 ("not yet") becomes None."""
    n = number(value)
    return n if n else None


def limit_seconds(minutes) -> int | None:
    """A Slurm time limit in minutes as seconds; None when unlimited or unset."""
    n = number(minutes)
    if n is None or n >= NO_VAL32:
        return None
    return n * 60


def wait_status(raw: int | None) -> tuple[int | None, int | None]:
    """(exit code, signal) from squeue's raw wait status, as sacct's ExitCode `code:signal` does."""
    if raw is None:
        return None, None
    if raw & 0x7F:
        return 0, raw & 0x7F
    return (raw >> 8) & 0xFF, 0


def exit_pair(text_value: str) -> tuple[int | None, int | None]:
    """(exit code, signal) from sacct's `ExitCode` text `3:0`."""
    code, sep, signal = text_value.partition(":")
    try:
        return int(code), int(signal) if sep else 0
    except ValueError:
        return None, None
