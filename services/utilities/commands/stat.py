"""ops/stat: `stat` of a file as numbers, read with `stat --printf` and NUL-terminated fields."""

from __future__ import annotations

from firecrest_mesh.utilities.v1 import utilities_pb2

# raw mode (hex), inode, device, links, uid, gid, size, atime, ctime, mtime (seconds since the epoch)
FIELDS = ("%f", "%i", "%d", "%h", "%u", "%g", "%s", "%X", "%Z", "%Y")
PRINTF = "".join(f + "\\0" for f in FIELDS)


def command(path: str, dereference: bool = False) -> list[str]:
    return ["stat", *(["-L"] if dereference else []), f"--printf={PRINTF}", "--", path]


def parse(stdout: bytes) -> utilities_pb2.FileStat:
    parts = stdout.split(b"\0")
    if len(parts) != len(FIELDS) + 1 or parts[-1] != b"":
        raise ValueError(f"unexpected stat output: {stdout[:200]!r}")
    mode, ino, dev, nlink, uid, gid, size, atime, ctime, mtime = parts[:-1]
    return utilities_pb2.FileStat(
        mode=int(mode, 16), ino=int(ino), dev=int(dev), nlink=int(nlink), uid=int(uid), gid=int(gid),
        size=int(size), atime=int(atime), ctime=int(ctime), mtime=int(mtime))
