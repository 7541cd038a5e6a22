"""Unit tests of the utilities service's command modules (`services/utilities/commands/`): every
`command()` builds an argument list that reaches the remote shell unchanged, and every `parse()` reads
real output, captured on the local cluster (GNU coreutils 9.1, findutils 4.9.0, file 5.44) as alice by
the exact command lines the modules build (`runuser -u alice -- sh -c <CommandRunner's line>` in a
folder of hostile names), plus the failure mapping of `services.utilities.errors`. No processes."""

from __future__ import annotations

import ctypes
import hashlib
import json
import shlex
import stat as stat_module
import subprocess
from pathlib import Path

import pytest

from services.common.config import load_config
from services.common.errors import BadRequest, PayloadTooLarge
from services.common.ssh.command import CommandResult, shell_join
from services.common.ssh.runner import MAX_COMMAND_LINE, command_line
from services.utilities import errors
from services.utilities.commands import (checksum, chmod, chown, compress, download, entries, extract, file,
                                         head_tail, ls, mkdir, rm, stat, symlink, upload, view)

HOSTILE = ["$(touch /tmp/x);x", "-rf", "new\nline", "quote'\"s", "`id`;|&>", "a b", "*", "~", "--help"]
CAPTURED = Path(__file__).parents[1] / "data" / "coreutils-9.1"  # made by its capture.py
CAPTURE = "/scratch/alice/capture"  # the folder of hostile names the outputs were captured in
NEWLINE = f"{CAPTURE}/new\nline"  # holds CONTENT
CONTENT = (CAPTURED / "content.bin").read_bytes()
FAILURES = json.loads((CAPTURED / "failures.json").read_text())
CAPTURE_TIME = "2026-11-27T16:44:50"


def captured(name: str) -> bytes:
    """The stdout of a successful command, as captured (`<name>.out`)."""
    return (CAPTURED / f"{name}.out").read_bytes()


def failure(name: str) -> CommandResult:
    """A failed command's result, as captured (failures.json)."""
    f = FAILURES[name]
    return CommandResult(f["exit_status"], f["stdout"].encode(), f["stderr"].encode())


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


# --- chmod, chown, mkdir, symlink: the change, then the changed file's entry ----------------------------

def test_chmod_chown_mkdir_symlink_answer_the_entry_named_as_requested():
    changed = [(chmod, f"{CAPTURE}/-rf", "chmod_rf", ("-", "rwx------", "")),
               (chown, f"{CAPTURE}/quote'\"s", "chown_quotes", ("-", "rw-r--r--", "")),
               (mkdir, f"{CAPTURE}/$(touch y);y/sub dir", "mkdir_substitution", ("d", "rwxr-xr-x", "")),
               (symlink, f"{CAPTURE}/`id`;|&> link", "symlink_to_newline", ("l", "rwxrwxrwx", NEWLINE))]
    for module, path, output, (kind, permissions, target) in changed:
        f = module.parse(captured(output), path)
        assert (f.name, f.type, f.permissions, f.link_target, f.user) == (path, kind, permissions, target, "alice")
        assert f.last_modified == CAPTURE_TIME
    for module in (chmod, chown, mkdir, symlink):
        with pytest.raises(ValueError, match="expected one find record"):
            module.parse(captured("chmod_rf") + captured("chown_quotes"), "/x")


def test_change_commands_chain_the_change_and_find():
    assert chmod.command("/f", "750") == [["chmod", "--", "750", "/f"], entries.describe("/f")]
    assert mkdir.command("/d", True) == [["mkdir", "-p", "--", "/d"], entries.describe("/d")]
    assert mkdir.command("/d")[0] == ["mkdir", "--", "/d"]
    assert symlink.command("/t", "/l") == [["ln", "-s", "--", "/t", "/l"], entries.describe("/l")]
    assert chown.command("/f", "alice", "proj-a") == [["chown", "--", "alice:proj-a", "/f"], entries.describe("/f")]
    assert chown.command("/f", "", "proj-a")[0] == ["chown", "--", ":proj-a", "/f"]
    assert chown.command("/f", "1001", "")[0] == ["chown", "--", "1001", "/f"]
    with pytest.raises(BadRequest, match="Either `owner` or `group`"):
        chown.command("/f", "", "")


MODES = ["755", "0755", "000755", "7777", "0", "-0", "=755", "+0644", "u+x", "u=rw,go=r", "a+X", "g=u", "+t",
         "-w", "=", "+", "a=,u+r", "u-", "go=u-w", "+rwx+t", "u=X", "aa+r", "u+x-w", "u+x=g", "+-",
         "17777", "u+x,", ",u+x", "u+xg", "ugo", "u", "", "--reference=/etc/passwd", "u=rg", "755,u+x",
         "u+x,755", "u=755", "u=gu", " 755", "755 ", "0x1ed", "\uff18", "u+x\n", "777\x00", "7" * 300,
         "$(touch /tmp/x)", "-R", "--", "8", "1e3"]


@pytest.mark.parametrize("mode", MODES)
def test_chmod_accepts_exactly_the_modes_gnu_chmod_accepts(mode, tmp_path):
    f = tmp_path / "f"
    f.write_text("")
    chmod_ok = "\x00" not in mode and subprocess.run(["chmod", "--", mode, str(f)], capture_output=True).returncode == 0
    try:
        argvs = chmod.command(str(f), mode)
    except BadRequest as exc:
        assert not chmod_ok and "mode" in exc.message
    else:
        assert chmod_ok and argvs[0] == ["chmod", "--", mode, str(f)]


@pytest.mark.parametrize("owner, group", [("a\nb", ""), ("", "g\tx"), ("x" * 300, ""), ("a:b", ""), ("", "a:b"),
                                          ("a\x00", "")])
def test_chown_refuses_unprintable_colon_and_long_names(owner, group):
    with pytest.raises(BadRequest, match="invalid user or group"):
        chown.command("/f", owner, group)


# --- stat, checksum, file -------------------------------------------------------------------------------

def test_stat():
    s = stat.parse(captured("stat_rf"))
    assert (s.mode, s.ino, s.nlink, s.uid, s.gid, s.size, s.mtime) == \
        (0o100644, 14155878, 1, 1001, 1001, 6, 1795797890)
    assert stat.parse(captured("stat_link_dereference")).mode == 0o104755  # plain.txt, setuid
    assert stat.command("/x") == ["stat", f"--printf={stat.PRINTF}", "--", "/x"]
    assert stat.command("/x", True)[:2] == ["stat", "-L"]
    with pytest.raises(ValueError):
        stat.parse(captured("stat_rf")[:-1])


def test_checksum_of_a_name_with_a_newline():
    assert checksum.command("/x") == ["sha256sum", "--zero", "--", "/x"]
    answer = checksum.parse(captured("checksum_newline"))
    assert (answer.algorithm, answer.checksum) == ("SHA256", hashlib.sha256(CONTENT).hexdigest())
    assert checksum.parse(b"\\" + captured("checksum_newline")) == answer  # sha256sum's escaped-name marker
    with pytest.raises(ValueError):
        checksum.parse(b"sha256sum: x: Is a directory")


def test_file_type_and_its_errors_on_stdout():
    assert file.command("/x") == ["file", "-b", "-E", "--", "/x"]
    assert file.parse(captured("file_newline")) == "ISO-8859 text"
    assert file.parse(captured("file_directory")) == "directory"
    missing = failure("file_missing")
    err = file.error_for(missing)
    assert err.http_status == 404 and err.message == (
        "Remote process failed with exit status:1 and error message:" + missing.stdout.decode().strip())
    assert errors.error_for(missing).http_status == 500  # why `file` needs its own


# --- head, tail, view, download, upload -----------------------------------------------------------------

def test_head_and_tail_of_captured_output():
    assert head_tail.command("head", "/f", None, None, False) == ["head", "-n", "10", "--", "/f"]
    assert head_tail.command("head", "/f", 5, None, True) == ["head", "-c", "-5", "--", "/f"]
    assert head_tail.command("tail", "/f", None, 3, True) == ["tail", "-n", "+3", "--", "/f"]
    assert head_tail.command("tail", "/f", 7, None, False) == ["tail", "-c", "7", "--", "/f"]
    answers = [(head_tail.parse("head", captured("head_2_lines"), None, 2, False), "lines", 0, 2),
               (head_tail.parse("head", captured("head_all_but_5_bytes"), 5, None, True), "bytes", 0, -5),
               (head_tail.parse("tail", captured("tail_1_line"), None, 1, False), "lines", -1, -1),
               (head_tail.parse("tail", captured("tail_from_line_3"), None, 3, True), "lines", 3, -1),
               (head_tail.parse("tail", b"", None, None, False), "lines", -10, -1)]
    for content, unit, start, end in answers:
        assert (content.content_type, content.start_position, content.end_position) == (unit, start, end)
    lines = CONTENT.decode(errors="replace").splitlines(keepends=True)
    assert [a[0].content for a in answers] == ["".join(lines[:2]), CONTENT[:-5].decode(errors="replace"),
                                               lines[-1], "".join(lines[2:]), ""]
    with pytest.raises(BadRequest, match="Only one of `bytes` or `lines`"):
        head_tail.command("head", "/f", 1, 1, False)


@pytest.mark.parametrize("tool", ["head", "tail"])
@pytest.mark.parametrize("skip", [False, True])
def test_head_and_tail_counts_up_to_int32_fit_the_frame(tool, skip):
    for n in (0, 1, 2**31 - 1):
        for num_bytes, num_lines in ((n, None), (None, n)):
            assert str(n) in head_tail.command(tool, "/f", num_bytes, num_lines, skip)[2]
            head_tail.parse(tool, b"", num_bytes, num_lines, skip).SerializeToString()  # int32: raised for 10**12


@pytest.mark.parametrize("tool", ["head", "tail"])
@pytest.mark.parametrize("n", [2**31, 10**12, 2**63 - 1, -1, -(2**63)])
def test_head_and_tail_counts_out_of_range_are_400_naming_the_parameter(tool, n):
    for num_bytes, num_lines, unit in ((n, None, "bytes"), (None, n, "lines")):
        for skip in (False, True):
            with pytest.raises(BadRequest, match=f"`{unit}` must"):
                head_tail.command(tool, "/f", num_bytes, num_lines, skip)


def test_view():
    assert view.command("/f", 20, 5, 100) == ["dd", "if=/f", "iflag=skip_bytes,count_bytes,fullblock", "skip=5",
                                              "count=20", "bs=20", "status=none"]
    assert view.command("/f", None, None, 100)[3:5] == ["skip=0", "count=100"]
    for size, offset in ((0, 0), (101, 0), (10, -1)):
        with pytest.raises(BadRequest):
            view.command("/f", size, offset, 100)
    assert view.parse(captured("view_20_at_5")) == CONTENT[5:25].decode(errors="replace")


def test_view_offset_dd_cannot_reach_is_400_naming_offset(tmp_path):
    # What dd says (as alice, coreutils 9.1) for skip=9223372036854775807 on ext4.
    err = view.error_for(CommandResult(1, b"", b"dd: /home/alice/f: cannot skip: Invalid argument"))
    assert err.http_status == 400 and "`offset`" in err.message
    assert view.error_for(CommandResult(1, b"", b"dd: error reading '/x': Input/output error")).http_status == 500
    assert view.error_for(CommandResult(124, b"", b"")).http_status == 408
    f = tmp_path / "f"
    f.write_text("abc")
    run = subprocess.run(shell_join(view.command(str(f), 10, 2**63 - 1, 100)), shell=True, capture_output=True)
    assert run.returncode != 0 and b"cannot skip" in run.stderr
    assert view.error_for(CommandResult(run.returncode, run.stdout, run.stderr)).http_status == 400


def test_download_reads_one_byte_more_than_the_limit():
    assert download.command("/f", 10) == ["head", "-c", "11", "--", "/f"]
    assert captured("download_max_10") == CONTENT[:11]
    assert download.parse(CONTENT[:10], 10) == CONTENT[:10]
    with pytest.raises(PayloadTooLarge, match="File to download is too large."):
        download.parse(captured("download_max_10"), 10)


def test_upload_script_takes_the_target_as_a_positional_parameter_only():
    argv = upload.command("/home/alice/$(id)", b"x" * 10, 10)
    assert argv[:2] == ["sh", "-c"] and argv[3:] == ["sh", "/home/alice/$(id)", "10"]
    assert "/home/alice" not in argv[2] and "$(id)" not in argv[2]
    with pytest.raises(PayloadTooLarge, match="File to upload is too large."):
        upload.command("/f", b"x" * 11, 10)


# --- rm, compress, extract ------------------------------------------------------------------------------

def test_rm():
    assert rm.command("/a/-rf") == ["rm", "-r", "--interactive=never", "--", "/a/-rf"]


def test_archive_commands():
    assert compress.command("/a/dir/", "/a/d.tar.gz") == \
        ["tar", "-c", "-z", "-f", "/a/d.tar.gz", "-C", "/a", "--", "dir"]
    assert compress.command("/a/-rf", "/a/x.tar", compression="none", dereference=True) == \
        ["tar", "-c", "--dereference", "-f", "/a/x.tar", "-C", "/a", "--", "-rf"]
    assert extract.command("/a/x.tar.xz", "/b", "xz") == ["tar", "-x", "-J", "-f", "/a/x.tar.xz", "-C", "/b"]
    for build in (lambda: compress.command("/a", "/b", compression="zip"), lambda: extract.command("/a", "/b", "zip"),
                  lambda: compress.command("/", "/b")):
        with pytest.raises(BadRequest):
            build()
    for pattern in ("a\x00b", "x" * 5000):
        with pytest.raises(BadRequest, match="matchPattern"):
            compress.command("/a", "/b.tgz", match_pattern=pattern)


def test_compress_with_a_match_pattern_and_extract_run_against_a_real_tree(tmp_path):
    (tmp_path / "src" / "sub").mkdir(parents=True)
    for name in ("keep.txt", "-rf.txt", "skip.log", "sub/deep.txt"):
        (tmp_path / "src" / name).write_text(name)
    target = tmp_path / "out.tar.gz"
    run = subprocess.run(shell_join(compress.command(str(tmp_path / "src"), str(target), match_pattern=r".*\.txt")),
                         shell=True, check=True, capture_output=True)
    assert run.stdout == b""
    listed = subprocess.run(["tar", "-tzf", str(target)], capture_output=True, check=True).stdout.decode()
    assert sorted(listed.split()) == ["./-rf.txt", "./keep.txt", "./sub/deep.txt"]
    out = tmp_path / "out"
    out.mkdir()
    subprocess.run(shell_join(extract.command(str(target), str(out))), shell=True, check=True)
    assert (out / "sub" / "deep.txt").read_text() == "sub/deep.txt"


# --- failures: FirecREST v2's table (errors.error_for) -------------------------------------------------

@pytest.mark.parametrize("rc, stderr, status", [
    (124, b"", 408), (1, b"find: '/x': No such file or directory", 404),
    (1, b"find: '/x': Permission denied", 403), (1, b"chown: changing ownership: Operation not permitted", 403),
    (1, b"mkdir: cannot create directory '/x': File exists", 400), (1, b"chown: invalid user: 'zz'", 400),
    (1, b"chmod: invalid mode: 'q'", 500),
    (1, b"chown: invalid group: ':nosuch'", 400), (1, b"find: '/home/a/f/x': Not a directory", 400),
    (1, b"sha256sum: /home/alice: Is a directory", 400), (1, b"find: '/home/aaa': File name too long", 400),
    (1, b"stat: cannot statx '/home/a/l': Too many levels of symbolic links", 400),
    (1, b"head: cannot open '/home/a/sock' for reading: No such device or address", 400),
    (1, b"rm: refusing to remove '.' or '..' directory: skipping '/home/a/d/.'", 400),
    (1, b"tar: Exiting with failure status due to previous errors", 500)])
def test_remote_errors_map_like_firecrest_v2(rc, stderr, status):
    err = errors.error_for(CommandResult(rc, b"", stderr))
    assert err.http_status == status
    assert err.message.startswith(f"Remote process failed with exit status:{rc}")
    if stderr:
        assert err.message.endswith("and error message:" + stderr.decode().strip())


@pytest.mark.parametrize("name, status", [("rm_missing", 404), ("chmod_not_owner", 403), ("chown_to_bob", 403),
                                          ("mkdir_existing", 400), ("head_directory", 400),
                                          ("extract_into_file", 400)])
def test_captured_failures_map_like_firecrest_v2(name, status):
    result = failure(name)
    err = errors.error_for(result)
    assert err.http_status == status
    assert err.message == f"Remote process failed with exit status:{result.exit_status} and error message:" + \
        result.stderr.decode().strip()


def _upload(target, sent: bytes, size: int | None = None) -> subprocess.CompletedProcess:
    """The upload script run by the local sh, `sent` on its stdin, as if `size` bytes were uploaded."""
    argv = upload.command(str(target), sent, 1 << 20)
    if size is not None:
        argv[-1] = str(size)
    return subprocess.run(argv, input=sent, capture_output=True)


def test_an_upload_cut_short_leaves_the_existing_file_and_no_partial_one(tmp_path):
    target = tmp_path / "data.bin"
    target.write_bytes(b"old contents\n")
    target.chmod(0o640)
    cut = _upload(target, b"new con", size=len(b"new contents\n"))
    assert cut.returncode != 0 and b"cut short" in cut.stderr
    assert target.read_bytes() == b"old contents\n" and sorted(p.name for p in tmp_path.iterdir()) == ["data.bin"]
    done = _upload(target, b"new contents\n")
    assert done.returncode == 0, done.stderr
    assert target.read_bytes() == b"new contents\n" and sorted(p.name for p in tmp_path.iterdir()) == ["data.bin"]
    assert stat_module.S_IMODE(target.stat().st_mode) == 0o640  # an existing file keeps its mode


def test_an_upload_writes_through_a_link_and_refuses_a_directory(tmp_path):
    real, link = tmp_path / "real", tmp_path / "link"
    real.write_bytes(b"x")
    link.symlink_to(real)
    assert _upload(link, b"through").returncode == 0
    assert link.is_symlink() and real.read_bytes() == b"through"
    (tmp_path / "dir").mkdir()
    refused = _upload(tmp_path / "dir", b"x")
    assert refused.returncode != 0 and b"Is a directory" in refused.stderr
    missing = _upload(tmp_path / "none" / "f", b"x")
    assert missing.returncode != 0 and b"No such file or directory" in missing.stderr
