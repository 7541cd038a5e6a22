"""The jobs of cp, mv, rm, compress and extract: one command each (compress and extract build theirs
with the utilities service's tar modules), then FirecREST v2's success line, which pyfirecrest looks
for in the job's output ("Files were successfully ...")."""

from __future__ import annotations

from services.common.ssh.command import shell_join
from services.storage.jobs.header import step
from services.utilities.commands import compress as tar_compress
from services.utilities.commands import extract as tar_extract

COPIED = "Files were successfully copied."
MOVED = "Files were successfully moved."
DELETED = "Files were successfully deleted."
COMPRESSED = "Files were successfully compressed."
EXTRACTED = "Files were successfully extracted."


def _script(argv: list[str], what: str, success: str) -> str:
    return f"{step(argv, what)}\necho {shell_join([success])}\n"


def copy(source: str, target: str, dereference: bool) -> str:
    """`cp --force -R{L|d} --preserve=all -- source target`."""
    return _script(["cp", "--force", "-RL" if dereference else "-Rd", "--preserve=all", "--", source, target],
                   "copy files", COPIED)


def move(source: str, target: str) -> str:
    return _script(["mv", "--", source, target], "move files", MOVED)


def delete(path: str) -> str:
    return _script(["rm", "-R", "--", path], "delete files", DELETED)


def compress(source: str, target: str, match_pattern: str, dereference: bool, compression: str) -> str:
    argv = tar_compress.command(source, target, match_pattern, dereference, compression)
    return _script(argv, "compress files", COMPRESSED)


def extract(source: str, target: str, compression: str) -> str:
    return _script(tar_extract.command(source, target, compression), "extract files", EXTRACTED)
