"""Unit tests of the utilities service's command modules (`services/utilities/commands/`): every
`command()` builds an argument list that reaches the remote shell unchanged, and every `parse()` reads
real output, captured on the local cluster (GNU coreutils 9.1, findutils 4.9.0, file 5.44) as alice by
the exact command lines the modules build (`runuser -u alice -- sh -c <CommandRunner's line>` in a
folder of hostile names). No processes.

Here: the quoting of every `command()` and ls; the other commands in test_utilities_change_commands.py
and test_utilities_content_commands.py, the failure mapping in test_utilities_errors.py."""

from __future__ import annotations

import ctypes
import shlex
import subprocess
from pathlib import Path

import pytest

from services.common.config import load_config
from services.common.errors import BadRequest
from services.common.ssh.command import CommandResult, shell_join
from services.common.ssh.runner import MAX_COMMAND_LINE, command_line
from services.utilities.commands import (checksum, chmod, chown, compress, download, entries, extract, file,
                                         head_tail, ls, mkdir, rm, stat, symlink, upload, view)
from tests.unit.coreutils_captured import CAPTURE, CAPTURE_TIME, CONTENT, NEWLINE, captured

HOSTILE = ["$(touch /tmp/x);x", "-rf", "new\nline", "quote'\"s", "`id`;|&>", "a b", "*", "~", "--help"]


@pytest.fixture(scope="module")
def system():
    return load_config().system("local")


def shell_receives(line: str) -> list[str]:
    """The argv a real POSIX shell builds from `line` when its command is replaced by printf."""
    out = subprocess.run(["sh", "-c", "printf '%s\\0' " + line], capture_output=True, check=True).stdout
    return out.decode().split("\0")[:-1]


# --- every command(): quoting, operands, the runner's line ---------------------------------------------

@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_names_reach_the_shell_as_one_literal_argument(name):
    path = "/scratch/alice/" + name
    argvs = [*ls.command(path, recursive=True), head_tail.command("head", path, None, 3, False),
             head_tail.command("tail", path, 3, None, True), view.command(path, 10, 0, 100), checksum.command(path),
             file.command(path), stat.command(path), *chmod.command(path, "u+x"),
             *chown.command(path, name if name.isprintable() else "alice", ""), *mkdir.command(path, True),
             *symlink.command(path, path), rm.command(path), download.command(path, 10),
             upload.command(path, b"x", 10), compress.command(path, path, match_pattern=name),
             compress.command(path, path), extract.command(path, path)]
    for argv in argvs:
        assert shell_receives(shell_join(argv)) == argv


def test_operands_follow_double_dash():
    for argv in (checksum.command("/x"), file.command("/x"), stat.command("/x"), rm.command("/x"),
                 head_tail.command("head", "/x", 1, None, False), head_tail.command("tail", "/x", 1, None, False),
                 download.command("/x", 10), mkdir.command("/x", False)[0]):
        assert argv[-2:] == ["--", "/x"]
    assert chmod.command("/x", "-w")[0] == ["chmod", "--", "-w", "/x"]
    assert symlink.command("/t", "/l")[0] == ["ln", "-s", "--", "/t", "/l"]


def test_the_runners_line_wraps_each_part_in_timeout_and_chains_with_and(system):
    line = command_line(system.ssh.timeouts.command_execution, [["echo", "a;b"], ["echo", "$(c)"]])
    assert shlex.split(line) == ["timeout", "10", "echo", "a;b", "&&", "timeout", "10", "echo", "$(c)"]
    assert line.count(" && ") == 1


def test_command_lines_longer_than_the_limit_are_400():
    assert command_line(10, [["echo", "x" * 60000]])
    with pytest.raises(BadRequest, match="too long"):
        command_line(10, [["echo", "x" * (MAX_COMMAND_LINE + 1)]])


# --- ls -------------------------------------------------------------------------------------------------

def test_ls_command_is_one_find_of_the_path_and_below_it():
    [argv] = ls.command("/d", recursive=True)
    assert argv == ["find", "-P", "/d", "(", "-name", ".*", "!", "-path", "/d", "-prune", ")", "-o",
                    "-printf", entries.PRINTF]
    [argv] = ls.command("/d", show_hidden=True, dereference=True)
    assert argv == ["find", "-L", "/d", "-maxdepth", "1", "-printf", entries.PRINTF]
    [argv] = ls.command("/d/.h*", dereference=False)
    assert argv[3:5] == ["-maxdepth", "1"] and argv[argv.index("-path") + 1] == "/d/.h\\*"


def _fnmatch(pattern: str, name: str) -> bool:
    """glibc's fnmatch(3) without flags: how GNU find's -path matches a name."""
    libc = ctypes.CDLL(None)
    return libc.fnmatch(pattern.encode(), name.encode(), 0) == 0


@pytest.mark.parametrize("path", ["/a/b", "/a/*", "/a/[ab]", "/a/x?", "/a/back\\slash", "/a/new\nline",
                                  "/a/.h*[!x]", "/a/d/"])
def test_ls_exempts_only_the_path_itself_from_the_hidden_test(path):
    pattern = ls.literal_pattern(path)
    assert _fnmatch(pattern, path)
    for other in (path + "/x", path + "x", path[:-1], "/a/ab", "/a/xy", "/a/.hx", "/a/\\b"):
        assert other == path or not _fnmatch(pattern, other), (pattern, other)


def test_ls_lists_a_directory_whose_entry_vanished_meanwhile(tmp_path):
    """find exits 1 naming an entry below the path that was renamed away between readdir and lstat
    (the kill-anything suite's uploads beside a listing): the listing stands; any other error fails."""
    def find_error(path: Path, locale: str = "C") -> str:  # GNU find's own message and quoting
        return subprocess.run(["find", str(path)], capture_output=True, text=True,
                              env={"PATH": "/usr/bin:/bin", "LC_ALL": locale}).stderr

    directory = tmp_path / "d"
    directory.mkdir()
    listing = subprocess.run(ls.command(str(directory))[0], capture_output=True).stdout
    for gone in (".firecrest-upload.KEzot7XV", "quote'\"s", "new\nline", "sub dir"):
        vanished = CommandResult(1, listing, find_error(directory / gone).encode())
        assert not ls.failed(str(directory))(vanished), vanished.error_text()
        assert not ls.failed(str(directory) + "/")(vanished)
        vanished_utf8 = CommandResult(1, listing, find_error(directory / gone, "C.UTF-8").encode())
        assert not ls.failed(str(directory))(vanished_utf8), vanished_utf8.error_text()
    assert ls.failed(str(directory))(CommandResult(1, b"", find_error(directory).encode()))  # the path itself
    assert ls.failed(str(directory))(CommandResult(1, b"", find_error(directory / "x").encode()))  # nothing listed
    denied = f"find: '{directory}/x': Permission denied".encode()
    assert ls.failed(str(directory))(CommandResult(1, listing, denied))
    assert ls.failed(str(directory))(CommandResult(1, listing, find_error(tmp_path / "elsewhere").encode()))
    assert ls.failed(str(directory))(CommandResult(124, listing, find_error(directory / "x").encode()))
    assert not ls.failed(str(directory))(CommandResult(0, listing, b""))


def test_ls_parses_hostile_names_exactly():
    files = ls.parse(captured("ls_dir"), CAPTURE)
    names = [f.name for f in files]
    assert names == sorted(names, key=lambda n: n.encode())
    assert set(names) == {"$(touch x);x", "-rf", "`id`;|&>", "new\nline", "quote'\"s", "with space", "café", "*",
                          "--help", "\ufffd\ufffdbad", "sub dir", "plain.txt", "link", "broken"}
    plain = next(f for f in files if f.name == "plain.txt")
    assert (plain.type, plain.permissions, plain.user, plain.group, plain.size) == \
        ("-", "rwsr-xr-x", "alice", "alice", "18")
    assert plain.last_modified == CAPTURE_TIME and not plain.HasField("link_target")
    link = next(f for f in files if f.name == "link")
    assert (link.type, link.link_target, link.size) == ("l", f"{CAPTURE}/plain.txt", "32")
    broken = next(f for f in files if f.name == "broken")
    assert broken.link_target == "/nonexistent target"
    assert next(f for f in files if f.name == "sub dir").type == "d"
    assert next(f for f in files if f.name == "new\nline").size == str(len(CONTENT))


def test_ls_recursive_hidden_prefixes_sub_directories():
    names = {f.name for f in ls.parse(captured("ls_dir_recursive_hidden"), CAPTURE)}
    assert names - {f.name for f in ls.parse(captured("ls_dir"), CAPTURE)} == \
        {".hidden", ".hiddendir", ".hiddendir/inner", "sub dir/nested", "sub dir/nested/deep.txt"}


def test_ls_numeric_uid_uses_ids():
    assert {(f.user, f.group) for f in ls.parse(captured("ls_dir"), CAPTURE, numeric_uid=True)} == {("1001", "1001")}


def test_ls_of_a_hidden_folder_lists_it():
    """The hidden test exempts the path named by the request: its entries are listed."""
    files = ls.parse(captured("ls_hidden_dir"), f"{CAPTURE}/.hiddendir")
    assert [(f.name, f.type, f.size) for f in files] == [("inner", "-", "1")]


def test_ls_of_a_single_file_names_it_as_given():
    [f] = ls.parse(captured("ls_file"), NEWLINE)
    assert (f.name, f.type, f.size) == (NEWLINE, "-", str(len(CONTENT)))


def test_ls_describes_a_symlink_and_follows_it_only_when_dereferenced():
    [f] = ls.parse(captured("ls_link"), f"{CAPTURE}/link")
    assert (f.name, f.type, f.link_target) == (f"{CAPTURE}/link", "l", f"{CAPTURE}/plain.txt")
    [g] = ls.parse(captured("ls_link_dereference"), f"{CAPTURE}/link")
    assert (g.type, g.permissions, g.size, g.HasField("link_target")) == ("-", "rwsr-xr-x", "18", False)


def test_ls_rejects_truncated_find_output():
    listing = captured("ls_dir")
    for truncated in (listing[:-3], listing[:-1]):
        with pytest.raises(ValueError):
            ls.parse(truncated, CAPTURE)
    assert ls.parse(b"", CAPTURE) == []


def test_ls_of_ten_thousand_entries_parses_in_order():
    top = captured("ls_dir").split(b"\0\x31\0", 1)[0] + b"\0"
    record = captured("ls_file").split(b"\0")[:10]
    body = b"".join(b"\0".join([b"1", *record[1:9], b"f%05d" % i]) + b"\0" for i in range(10000))
    files = ls.parse(top + body, "/d")
    assert len(files) == 10000 and files[0].name == "f00000" and files[-1].name == "f09999"
