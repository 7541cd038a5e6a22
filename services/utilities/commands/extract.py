"""ops/extract: unpack a tar archive into a directory. Prints nothing on success; the answer is 204."""

from __future__ import annotations

from services.utilities.commands.compress import compression_flags


def command(source: str, target: str, compression: str = "gzip") -> list[str]:
    """`tar -x` of archive `source` into directory `target` (compression as for `compress`)."""
    return ["tar", "-x", *compression_flags(compression), "-f", source, "-C", target]
