"""Private files in the state folder: created once (mode 600, in a mode-700 folder), then reused.

Creation is race-free: the content is written to a temporary file which is then hard-linked to its
final name, so concurrent creators (e.g. two provider processes) agree on one value.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path
from typing import Callable

log = logging.getLogger(__name__)


def private_dir(path: Path) -> Path:
    """Creates `path` (and parents) if needed and makes it accessible to the owner only."""
    path.mkdir(parents=True, exist_ok=True)
    if stat.S_IMODE(path.stat().st_mode) != 0o700:
        path.chmod(0o700)
    return path


def _read(path: Path) -> bytes:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        log.warning("%s had mode %o; restricting it to 600", path, mode)
        path.chmod(0o600)
    return path.read_bytes()


def read_or_create(path: Path, make: Callable[[], bytes], private_parent: bool = True) -> bytes:
    """The content of `path`; if it does not exist, writes `make()` there first (mode 600).

    `private_parent`: make the parent folder mode 700 (folders of the state folder). When False (a
    file the operator placed elsewhere), a missing parent is created mode 700 and an existing one is
    left as it is.
    """
    if private_parent:
        private_dir(path.parent)
    else:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        return _read(path)
    except FileNotFoundError:
        pass
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(make())
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)  # atomic; fails if another process created it first
            log.info("created %s", path)
        except FileExistsError:
            pass
    finally:
        tmp.unlink(missing_ok=True)
    return _read(path)
