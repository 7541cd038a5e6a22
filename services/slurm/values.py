"""Nullable JSON values of the API (`google.protobuf.Value`) for the fields of jobs read from Slurm:
a number or a string where Slurm has one, JSON null where it has none. Used by `sacct` and `squeue`."""

from __future__ import annotations

from google.protobuf import struct_pb2


# In-place setters: filling a message's fields where they are is ~2× faster than building temporary
# Values that the constructor then copies (what lists of thousands of jobs spend their time on).

def set_num(target: struct_pb2.Value, value: int | float | None) -> None:
    """Sets `target` (a Value field of a message) to a JSON number, or null for None."""
    if value is None:
        target.null_value = struct_pb2.NULL_VALUE
    else:
        target.number_value = value


def set_text(target: struct_pb2.Value, value: str | None) -> None:
    """Sets `target` (a Value field of a message) to a JSON string, or null for None."""
    if value is None:
        target.null_value = struct_pb2.NULL_VALUE
    else:
        target.string_value = str(value)
