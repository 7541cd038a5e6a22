"""Captures the real outputs that tests/unit/test_utilities_commands.py feeds the utilities parsers.

Run as root on the machine of the local cluster (Debian 12: GNU coreutils 9.1, findutils 4.9.0,
file 5.44, tar 1.34), from the repository root: `.venv/bin/python tests/data/coreutils-9.1/capture.py`.
It builds a folder of hostile names in /scratch/alice/capture as alice, runs each command module's
`command()` as alice by the exact line `CommandRunner` sends (`runuser -u alice -- sh -c <line>`,
like sshd's `sh -c`), and writes each successful stdout to `<name>.out` here, and the failures
(exit status, stdout, stderr) to `failures.json`. Re-run it when a command line or a tool changes, then
update the values the tests expect (times, inodes).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
sys.path[:0] = [str(ROOT), str(ROOT / "gen" / "python")]

from services.common.ssh.runner import command_line  # noqa: E402
from services.utilities.commands import (checksum, chmod, chown, compress, download, extract, file,  # noqa: E402
                                         head_tail, ls, mkdir, rm, stat, symlink, upload, view)

HERE = Path(__file__).parent
D = "/scratch/alice/capture"
NEWLINE = f"{D}/new\nline"
# The content of NEWLINE: invalid UTF-8 and shell syntax, four lines.
CONTENT = (HERE / "content.bin").read_bytes()
HOSTILE = ["-rf", "$(touch x);x", "`id`;|&>", "quote'\"s", "with space", "caf\u00e9", "*", "--help"]


def run(*argvs, stdin: bytes | None = None) -> tuple[int, bytes, bytes]:
    line = command_line(10, argvs).encode("utf-8", errors="surrogateescape")
    p = subprocess.run([b"runuser", b"-u", b"alice", b"--", b"sh", b"-c", line], cwd="/", input=stdin,
                       capture_output=True)
    return p.returncode, p.stdout, p.stderr


def ok(*argvs, stdin: bytes | None = None) -> bytes:
    rc, out, err = run(*argvs, stdin=stdin)
    if rc:
        raise SystemExit(f"{argvs}: exit {rc}: {err!r}")
    return out


def write(name: str, *argvs) -> None:
    (HERE / f"{name}.out").write_bytes(ok(*argvs))


def tree() -> None:
    """The folder: hostile names, a setuid file, links (one broken), hidden entries, a sub-tree."""
    if os.path.exists(D):
        shutil.rmtree(D)
    ok(*mkdir.command(f"{D}/sub dir/nested", True))
    ok(*mkdir.command(f"{D}/.hiddendir"))
    for path, data in ((f"{D}/plain.txt", b"eighteen bytes...\n"), (f"{D}/sub dir/nested/deep.txt", b"deep"),
                       (f"{D}/.hidden", b"hello\n"), (f"{D}/.hiddendir/inner", b"i"), (NEWLINE, CONTENT),
                       *((f"{D}/{name}", b"hello\n") for name in HOSTILE)):
        ok(upload.command(path, data, len(data)), stdin=data)
    invalid_utf8 = os.fsdecode(b"\xff\xfebad")  # surrogate escapes, encoded back by run()
    ok(upload.command(f"{D}/{invalid_utf8}", b"hello\n", 6), stdin=b"hello\n")
    ok(*chmod.command(f"{D}/plain.txt", "4755"))
    ok(*symlink.command(f"{D}/plain.txt", f"{D}/link"))
    ok(*symlink.command("/nonexistent target", f"{D}/broken"))


def main() -> None:
    tree()
    write("ls_dir", *ls.command(D))
    write("ls_dir_recursive_hidden", *ls.command(D, show_hidden=True, recursive=True))
    write("ls_hidden_dir", *ls.command(f"{D}/.hiddendir"))
    write("ls_file", *ls.command(NEWLINE))
    write("ls_link", *ls.command(f"{D}/link"))
    write("ls_link_dereference", *ls.command(f"{D}/link", dereference=True))
    write("stat_rf", stat.command(f"{D}/-rf"))
    write("stat_link_dereference", stat.command(f"{D}/link", True))
    write("checksum_newline", checksum.command(NEWLINE))
    write("file_newline", file.command(NEWLINE))
    write("file_directory", file.command(D))
    write("head_2_lines", head_tail.command("head", NEWLINE, None, 2, False))
    write("head_all_but_5_bytes", head_tail.command("head", NEWLINE, 5, None, True))
    write("tail_1_line", head_tail.command("tail", NEWLINE, None, 1, False))
    write("tail_from_line_3", head_tail.command("tail", NEWLINE, None, 3, True))
    write("view_20_at_5", view.command(NEWLINE, 20, 5, 100))
    write("download_max_10", download.command(NEWLINE, 10))
    write("chmod_rf", *chmod.command(f"{D}/-rf", "u+x,go-r"))
    write("chown_quotes", *chown.command(f"{D}/quote'\"s", "alice", "alice"))
    write("mkdir_substitution", *mkdir.command(f"{D}/$(touch y);y/sub dir", True))
    write("symlink_to_newline", *symlink.command(NEWLINE, f"{D}/`id`;|&> link"))
    for silent in (compress.command(f"{D}/sub dir", f"{D}/a.tar.gz"), extract.command(f"{D}/a.tar.gz", f"{D}/.hiddendir"),
                   rm.command(f"{D}/*")):
        assert ok(silent) == b"", silent
    failures = {
        "file_missing": run(file.command(f"{D}/missing $(id)")),
        "rm_missing": run(rm.command(f"{D}/*")),
        "chmod_not_owner": run(*chmod.command("/scratch", "u+x")),
        "chown_to_bob": run(*chown.command(f"{D}/-rf", "bob", "")),
        "mkdir_existing": run(*mkdir.command(f"{D}/--help")),
        "head_directory": run(head_tail.command("head", D, None, 1, False)),
        "extract_into_file": run(extract.command(f"{D}/a.tar.gz", f"{D}/--help")),
    }
    (HERE / "failures.json").write_text(json.dumps(
        {name: {"exit_status": rc, "stdout": out.decode(), "stderr": err.decode()}
         for name, (rc, out, err) in failures.items()}, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
