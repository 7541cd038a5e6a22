"""`getent passwd <uid>...`: user names of uids (sacct gives the user who cancelled a job as a uid).

Only uids the sacct output itself does not pair with a name are looked up (e.g. 0 when root
cancelled a job); `getent` exits 2 when some key is unknown and still prints the others.
"""

from __future__ import annotations

ANSWERED = (0, 2)  # every key found / some keys unknown (their absence is the answer)


def command(uids: set[int]) -> list[str]:
    return ["getent", "passwd", *(str(uid) for uid in sorted(uids))]


def parse(stdout: str) -> dict[int, str]:
    """uid → name from passwd lines `name:x:uid:gid:...`."""
    names = {}
    for line in stdout.splitlines():
        parts = line.split(":")
        if len(parts) >= 3 and parts[2].isdigit():
            names.setdefault(int(parts[2]), parts[0])
    return names
