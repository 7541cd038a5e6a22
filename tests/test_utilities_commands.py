"""Unit tests of the utilities service's command modules, path validation, error mapping and
multipart parser. Parsers are fed real output captured on the local cluster (see the constants)."""

from __future__ import annotations

import hashlib
import shlex
import subprocess

import pytest

from services.common import paths
from services.common.config import load_config
from services.common.errors import BadRequest, InternalError, PayloadTooLarge
from services.common.ssh.command import CommandResult, shell_join
from services.utilities import multipart, remote
from services.utilities.commands import (archive, change, checksum, file_type, head_tail, listing, rm,
                                         stat, transfer, view)

HOSTILE = ["$(touch /tmp/x);x", "-rf", "new\nline", "quote'\"s", "`id`;|&>", "a b", "*", "~", "--help"]

# Captured on the local cluster (GNU findutils 4.9.0, coreutils 9.1) from a folder with hostile
# names, as alice, by the exact commands the modules build.
LISTING = b'0\x00drwxr-xr-x\x00alice\x00alice\x001001\x001001\x004096\x002026-11-26T11:04:28.9015221400\x00\x00\x001\x00lrwxrwxrwx\x00alice\x00alice\x001001\x001001\x0019\x002026-11-26T11:04:28.9015221400\x00/nonexistent target\x00broken\x001\x00drwxr-xr-x\x00alice\x00alice\x001001\x001001\x004096\x002026-11-26T11:04:28.9013558020\x00\x00sub dir\x001\x00-rw-r--r--\x00alice\x00alice\x001001\x001001\x006\x002026-11-26T11:04:28.9010494550\x00\x00quote\'"s\x001\x00-rw-r--r--\x00alice\x00alice\x001001\x001001\x006\x002026-11-26T11:04:28.9010724290\x00\x00\xff\xfebad\x001\x00-rw-r--r--\x00alice\x00alice\x001001\x001001\x006\x002026-11-26T11:04:28.9010002120\x00\x00with space\x001\x00-rw-r--r--\x00alice\x00alice\x001001\x001001\x006\x002026-11-26T11:04:28.9013015010\x00\x00$(touch x);x\x001\x00lrwxrwxrwx\x00alice\x00alice\x001001\x001001\x0032\x002026-11-26T11:04:28.9015221400\x00/scratch/alice/capture/plain.txt\x00link\x001\x00-rw-r--r--\x00alice\x00alice\x001001\x001001\x006\x002026-11-26T11:04:28.9012231740\x00\x00-rf\x001\x00-rw-r--r--\x00alice\x00alice\x001001\x001001\x006\x002026-11-26T11:04:28.9013233840\x00\x00`id`;|&>\x001\x00-rw-r--r--\x00alice\x00alice\x001001\x001001\x006\x002026-11-26T11:04:28.9010263010\x00\x00new\nline\x001\x00-rwsr-xr-x\x00alice\x00alice\x001001\x001001\x0018\x002026-11-26T11:04:28.9009019550\x00\x00plain.txt\x001\x00-rw-r--r--\x00alice\x00alice\x001001\x001001\x006\x002026-11-26T11:04:28.9013558020\x00\x00caf\xc3\xa9\x00'
LISTING_RECURSIVE_HIDDEN = b'0\x00drwxr-xr-x\x00alice\x00alice\x001001\x001001\x004096\x002026-11-26T11:04:28.9015221400\x00\x00\x001\x00lrwxrwxrwx\x00alice\x00alice\x001001\x001001\x0019\x002026-11-26T11:04:28.9015221400\x00/nonexistent target\x00broken\x001\x00-rw-r--r--\x00alice\x00alice\x001001\x001001\x006\x002026-11-26T11:04:28.9013397880\x00\x00.hidden\x001\x00drwxr-xr-x\x00alice\x00alice\x001001\x001001\x004096\x002026-11-26T11:04:28.9013558020\x00\x00sub dir\x002\x00drwxr-xr-x\x00alice\x00alice\x001001\x001001\x004096\x002026-11-26T11:04:28.9013558020\x00\x00sub dir/nested\x003\x00-rw-r--r--\x00alice\x00alice\x001001\x001001\x004\x002026-11-26T11:04:28.9014725360\x00\x00sub dir/nested/deep.txt\x001\x00-rw-r--r--\x00alice\x00alice\x001001\x001001\x006\x002026-11-26T11:04:28.9010494550\x00\x00quote\'"s\x001\x00-rw-r--r--\x00alice\x00alice\x001001\x001001\x006\x002026-11-26T11:04:28.9010724290\x00\x00\xff\xfebad\x001\x00-rw-r--r--\x00alice\x00alice\x001001\x001001\x006\x002026-11-26T11:04:28.9010002120\x00\x00with space\x001\x00-rw-r--r--\x00alice\x00alice\x001001\x001001\x006\x002026-11-26T11:04:28.9013015010\x00\x00$(touch x);x\x001\x00lrwxrwxrwx\x00alice\x00alice\x001001\x001001\x0032\x002026-11-26T11:04:28.9015221400\x00/scratch/alice/capture/plain.txt\x00link\x001\x00-rw-r--r--\x00alice\x00alice\x001001\x001001\x006\x002026-11-26T11:04:28.9012231740\x00\x00-rf\x001\x00-rw-r--r--\x00alice\x00alice\x001001\x001001\x006\x002026-11-26T11:04:28.9013233840\x00\x00`id`;|&>\x001\x00-rw-r--r--\x00alice\x00alice\x001001\x001001\x006\x002026-11-26T11:04:28.9010263010\x00\x00new\nline\x001\x00drwxr-xr-x\x00alice\x00alice\x001001\x001001\x004096\x002026-11-26T11:04:28.9014725360\x00\x00.hiddendir\x002\x00-rw-r--r--\x00alice\x00alice\x001001\x001001\x001\x002026-11-26T11:04:28.9015221400\x00\x00.hiddendir/inner\x001\x00-rwsr-xr-x\x00alice\x00alice\x001001\x001001\x0018\x002026-11-26T11:04:28.9009019550\x00\x00plain.txt\x001\x00-rw-r--r--\x00alice\x00alice\x001001\x001001\x006\x002026-11-26T11:04:28.9013558020\x00\x00caf\xc3\xa9\x00'
LISTING_FILE = b'0\x00-rw-r--r--\x00alice\x00alice\x001001\x001001\x006\x002026-11-26T11:04:28.9010263010\x00\x00\x00'
LISTING_LINK = b'0\x00lrwxrwxrwx\x00alice\x00alice\x001001\x001001\x0032\x002026-11-26T11:04:28.9015221400\x00/scratch/alice/capture/plain.txt\x00\x00'
LISTING_LINK_DEREF = b'0\x00-rwsr-xr-x\x00alice\x00alice\x001001\x001001\x0018\x002026-11-26T11:04:28.9009019550\x00\x00\x00'
STAT_RF = b'81a4\x0014155788\x0065024\x001\x001001\x001001\x006\x001795691143\x001795691068\x001795691068\x00'
SHA256_NEWLINE = b'5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03  /scratch/alice/capture/new\nline\x00'


@pytest.fixture(scope="module")
def system():
    return load_config().system("local")


def shell_receives(line: str) -> list[str]:
    """The argv a real POSIX shell builds from `line` when its command is replaced by printf."""
    out = subprocess.run(["sh", "-c", "printf '%s\\0' " + line], capture_output=True, check=True).stdout
    return out.decode().split("\0")[:-1]


# --- quoting: every builder's argv reaches the remote shell unchanged --------------------------------

@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_names_reach_the_shell_as_one_literal_argument(name):
    path = "/scratch/alice/" + name
    argvs = [*listing.list_argvs(path, recursive=True), head_tail.head_argv(path, None, 3, False)[0],
             view.argv(path, 10, 0, 100), checksum.argv(path), file_type.argv(path), stat.argv(path),
             *change.chmod_argvs(path, "u+x"), *change.chown_argvs(path, name if name.isprintable() else "alice", ""),
             *change.mkdir_argvs(path, True),
             *change.symlink_argvs(path, path), rm.argv(path), transfer.upload_argv(path),
             archive.compress_argv(path, path, match_pattern=name), archive.extract_argv(path, path)]
    for argv in argvs:
        assert shell_receives(shell_join(argv)) == argv


def test_command_line_wraps_each_part_in_timeout_and_chains_with_and(system):
    line = remote.command_line(system, ["echo", "a;b"], ["echo", "$(c)"])
    assert shlex.split(line) == ["timeout", "10", "echo", "a;b", "&&", "timeout", "10", "echo", "$(c)"]
    assert line.count(" && ") == 1


def test_operands_follow_double_dash():
    for argv in (checksum.argv("/x"), file_type.argv("/x"), stat.argv("/x"), rm.argv("/x"),
                 head_tail.head_argv("/x", 1, None, False)[0], head_tail.tail_argv("/x", 1, None, False)[0],
                 transfer.download_argv("/x", 10), *change.mkdir_argvs("/x", False)[:1]):
        assert argv[-2:] == ["--", "/x"]
    assert change.chmod_argvs("/x", "-w")[0] == ["chmod", "--", "-w", "/x"]
    assert change.symlink_argvs("/t", "/l")[0] == ["ln", "-s", "--", "/t", "/l"]


def test_upload_script_takes_the_target_as_a_positional_parameter_only():
    argv = transfer.upload_argv("/home/alice/$(id)")
    assert argv[:3] == ["sh", "-c", 'cat > "$1"'] and argv[4] == "/home/alice/$(id)"


# --- listing -------------------------------------------------------------------------------------------

def test_listing_parses_hostile_names_exactly():
    files = listing.parse_listing(LISTING, "/scratch/alice/capture")
    names = [f.name for f in files]
    assert names == sorted(names, key=lambda n: n.encode())
    for expected in ("$(touch x);x", "-rf", "`id`;|&>", "new\nline", "quote'\"s", "with space", "café",
                     "\ufffd\ufffdbad", "sub dir"):
        assert expected in names
    assert not [n for n in names if n.startswith(".")]
    plain = next(f for f in files if f.name == "plain.txt")
    assert (plain.type, plain.permissions, plain.user, plain.group, plain.size) == \
        ("-", "rwsr-xr-x", "alice", "alice", "18")
    assert plain.last_modified == "2026-11-26T11:04:28" and not plain.HasField("link_target")
    link = next(f for f in files if f.name == "link")
    assert (link.type, link.link_target, link.size) == ("l", "/scratch/alice/capture/plain.txt", "32")
    broken = next(f for f in files if f.name == "broken")
    assert broken.link_target == "/nonexistent target"
    assert next(f for f in files if f.name == "sub dir").type == "d"


def test_recursive_hidden_listing_prefixes_sub_directories():
    names = [f.name for f in listing.parse_listing(LISTING_RECURSIVE_HIDDEN, "/scratch/alice/capture")]
    assert {".hidden", ".hiddendir/inner", "sub dir/nested/deep.txt", "new\nline"} <= set(names)


def test_numeric_uid_uses_ids():
    files = listing.parse_listing(LISTING, "/scratch/alice/capture", numeric_uid=True)
    assert {(f.user, f.group) for f in files} == {("1001", "1001")}


def test_a_single_file_is_named_as_given():
    [f] = listing.parse_listing(LISTING_FILE, "/scratch/alice/capture/new\nline")
    assert (f.name, f.type, f.size) == ("/scratch/alice/capture/new\nline", "-", "6")


def test_a_symlink_is_described_not_followed_unless_dereferenced():
    [f] = listing.parse_listing(LISTING_LINK, "/scratch/alice/capture/link")
    assert (f.type, f.link_target) == ("l", "/scratch/alice/capture/plain.txt")
    [g] = listing.parse_listing(LISTING_LINK_DEREF, "/scratch/alice/capture/link")
    assert (g.type, g.permissions, g.size, g.HasField("link_target")) == ("-", "rwsr-xr-x", "18", False)


def test_listing_hides_dot_entries_by_pruning_and_keeps_depth_zero():
    children = listing.children_argv("/d", show_hidden=False, recursive=True, dereference=False)
    assert children[:5] == ["find", "-P", "/d", "-mindepth", "1"] and "-maxdepth" not in children
    assert ["(", "-name", ".*", "-prune", "-o"] == children[5:10]
    assert listing.describe_argv("/d", True)[:3] == ["find", "-L", "/d"]


def test_truncated_find_output_is_rejected():
    with pytest.raises(ValueError):
        listing.records(LISTING[:-3])


def test_ten_thousand_entries_parse_in_order():
    record = LISTING_FILE.split(b"\0")[:10]
    body = b"".join(b"\0".join([b"1", *record[1:9], b"f%05d" % i]) + b"\0" for i in range(10000))
    files = listing.parse_listing(LISTING.split(b"\0\x31\0", 1)[0] + b"\0" + body, "/d")
    assert len(files) == 10000 and files[0].name == "f00000" and files[-1].name == "f09999"


# --- stat, checksum, file, head/tail, view --------------------------------------------------------------

def test_stat_parses_numbers():
    s = stat.parse(STAT_RF)
    assert (s.mode, s.ino, s.nlink, s.uid, s.gid, s.size, s.mtime) == \
        (0o100644, 14155788, 1, 1001, 1001, 6, 1795691068)
    assert stat.argv("/x", True)[:2] == ["stat", "-L"]
    with pytest.raises(ValueError):
        stat.parse(STAT_RF[:-1])


def test_checksum_of_a_name_with_a_newline():
    assert checksum.parse(SHA256_NEWLINE) == hashlib.sha256(b"hello\n").hexdigest()
    assert checksum.parse(b"\\" + SHA256_NEWLINE) == hashlib.sha256(b"hello\n").hexdigest()
    with pytest.raises(ValueError):
        checksum.parse(b"sha256sum: x: Is a directory")


def test_file_type_strips_the_newline():
    assert file_type.parse(b"ASCII text\n") == "ASCII text"


def test_head_and_tail_frames():
    argv, frame = head_tail.head_argv("/f", None, None, False)
    assert argv == ["head", "-n", "10", "--", "/f"] and (frame.start_position, frame.end_position) == (0, 10)
    argv, frame = head_tail.head_argv("/f", 5, None, True)
    assert argv == ["head", "-c", "-5", "--", "/f"] and frame.end_position == -5
    argv, frame = head_tail.tail_argv("/f", None, 3, True)
    assert argv == ["tail", "-n", "+3", "--", "/f"] and (frame.start_position, frame.end_position) == (3, -1)
    argv, frame = head_tail.tail_argv("/f", None, None, False)
    assert frame.content_type == "lines" and frame.start_position == -10
    assert head_tail.parse(b"a\xffb", frame).content == "a\ufffdb"
    with pytest.raises(BadRequest, match="Only one of `bytes` or `lines`"):
        head_tail.head_argv("/f", 1, 1, False)


@pytest.mark.parametrize("build", [head_tail.head_argv, head_tail.tail_argv])
@pytest.mark.parametrize("skip", [False, True])
def test_head_and_tail_counts_up_to_int32_fit_the_frame(build, skip):
    for n in (0, 1, 2**31 - 1):
        for num_bytes, num_lines in ((n, None), (None, n)):
            argv, frame = build("/f", num_bytes, num_lines, skip)
            frame.SerializeToString()  # positions are int32: this raised ValueError for 10**12
            assert str(n) in argv[2]


@pytest.mark.parametrize("build", [head_tail.head_argv, head_tail.tail_argv])
@pytest.mark.parametrize("n", [2**31, 10**12, 2**63 - 1, -1, -(2**63)])
def test_head_and_tail_counts_out_of_range_are_400_naming_the_parameter(build, n):
    for num_bytes, num_lines, unit in ((n, None, "bytes"), (None, n, "lines")):
        for skip in (False, True):
            with pytest.raises(BadRequest, match=f"`{unit}` must"):
                build("/f", num_bytes, num_lines, skip)


def test_view_limits():
    assert view.argv("/f", None, None, 100)[3:5] == ["skip=0", "count=100"]
    for size, offset in ((0, 0), (101, 0), (10, -1)):
        with pytest.raises(BadRequest):
            view.argv("/f", size, offset, 100)


def test_view_offset_dd_cannot_reach_is_400_naming_offset():
    # What dd says (as alice, coreutils 9.1) for skip=9223372036854775807 on ext4.
    err = remote.error_for(CommandResult(1, b"", b"dd: /home/alice/f: cannot skip: Invalid argument"))
    assert err.http_status == 500
    refined = view.refine_error(err)
    assert refined.http_status == 400 and "`offset`" in refined.message
    other = remote.error_for(CommandResult(1, b"", b"dd: error reading '/x': Input/output error"))
    assert view.refine_error(other) is other
    assert view.refine_error(InternalError("cannot skip")).http_status == 400


def test_view_offset_past_what_the_filesystem_supports_makes_dd_say_cannot_skip(tmp_path):
    f = tmp_path / "f"
    f.write_text("abc")
    argv = view.argv(str(f), 10, 2**63 - 1, 100)
    run = subprocess.run(shell_join(argv), shell=True, capture_output=True)
    assert run.returncode != 0 and b"cannot skip" in run.stderr
    assert view.refine_error(remote.error_for(CommandResult(run.returncode, run.stdout, run.stderr))).http_status == 400


# --- chmod and chown arguments --------------------------------------------------------------------------

MODES = ["755", "0755", "000755", "7777", "0", "-0", "=755", "+0644", "u+x", "u=rw,go=r", "a+X", "g=u", "+t",
         "-w", "=", "+", "a=,u+r", "u-", "go=u-w", "+rwx+t", "u=X", "aa+r", "u+x-w", "u+x=g", "+-",
         "17777", "u+x,", ",u+x", "u+xg", "ugo", "u", "", "--reference=/etc/passwd", "u=rg", "755,u+x",
         "u+x,755", "u=755", "u=gu", " 755", "755 ", "0x1ed", "\uff18", "u+x\n", "777\x00", "7" * 300,
         "$(touch /tmp/x)", "-R", "--", "8", "1e3"]


@pytest.mark.parametrize("mode", MODES)
def test_modes_accepted_are_exactly_those_gnu_chmod_accepts(mode, tmp_path):
    f = tmp_path / "f"
    f.write_text("")
    chmod_ok = "\x00" not in mode and subprocess.run(["chmod", "--", mode, str(f)], capture_output=True).returncode == 0
    try:
        argvs = change.chmod_argvs(str(f), mode)
    except BadRequest as exc:
        assert not chmod_ok and "mode" in exc.message
    else:
        assert chmod_ok and argvs[0] == ["chmod", "--", mode, str(f)]


@pytest.mark.parametrize("owner, group", [("a\nb", ""), ("", "g\tx"), ("x" * 300, ""), ("a:b", ""), ("", "a:b"),
                                          ("a\x00", "")])
def test_chown_refuses_unprintable_colon_and_long_names(owner, group):
    with pytest.raises(BadRequest, match="invalid user or group"):
        change.chown_argvs("/f", owner, group)


def test_chown_spec():
    assert change.chown_argvs("/f", "alice", "proj-a")[0] == ["chown", "--", "alice:proj-a", "/f"]
    assert change.chown_argvs("/f", "", "proj-a")[0] == ["chown", "--", ":proj-a", "/f"]
    assert change.chown_argvs("/f", "1001", "")[0] == ["chown", "--", "1001", "/f"]


def test_match_pattern_refuses_nul_and_huge_patterns():
    for pattern in ("a\x00b", "x" * 5000):
        with pytest.raises(BadRequest, match="matchPattern"):
            archive.compress_argv("/a", "/b.tgz", match_pattern=pattern)


def test_command_lines_longer_than_the_limit_are_400(system):
    assert remote.command_line(system, ["echo", "x" * 60000])
    with pytest.raises(BadRequest, match="too long"):
        remote.command_line(system, ["echo", "x" * (remote.MAX_COMMAND_LINE + 1)])


# --- transfers and archives ---------------------------------------------------------------------------

def test_download_reads_one_byte_more_than_the_limit():
    assert transfer.download_argv("/f", 10) == ["head", "-c", "11", "--", "/f"]
    assert transfer.check_download(b"x" * 10, 10) == b"x" * 10
    with pytest.raises(PayloadTooLarge, match="File to download is too large."):
        transfer.check_download(b"x" * 11, 10)
    with pytest.raises(PayloadTooLarge, match="File to upload is too large."):
        transfer.check_upload(b"x" * 11, 10)


def test_archive_commands():
    assert archive.compress_argv("/a/dir/", "/a/d.tar.gz") == \
        ["tar", "-c", "-z", "-f", "/a/d.tar.gz", "-C", "/a", "--", "dir"]
    assert archive.compress_argv("/a/-rf", "/a/x.tar", compression="none", dereference=True) == \
        ["tar", "-c", "--dereference", "-f", "/a/x.tar", "-C", "/a", "--", "-rf"]
    assert archive.extract_argv("/a/x.tar.xz", "/b", "xz") == ["tar", "-x", "-J", "-f", "/a/x.tar.xz", "-C", "/b"]
    with pytest.raises(BadRequest):
        archive.compress_argv("/a", "/b", compression="zip")


def test_match_pattern_compress_runs_against_a_real_tree(tmp_path):
    (tmp_path / "src" / "sub").mkdir(parents=True)
    for name in ("keep.txt", "-rf.txt", "skip.log", "sub/deep.txt"):
        (tmp_path / "src" / name).write_text(name)
    target = tmp_path / "out.tar.gz"
    argv = archive.compress_argv(str(tmp_path / "src"), str(target), match_pattern=r".*\.txt")
    subprocess.run(shell_join(argv), shell=True, check=True)
    listed = subprocess.run(["tar", "-tzf", str(target)], capture_output=True, check=True).stdout.decode()
    assert sorted(listed.split()) == ["./-rf.txt", "./keep.txt", "./sub/deep.txt"]
    out = tmp_path / "out"
    out.mkdir()
    subprocess.run(shell_join(archive.extract_argv(str(target), str(out))), shell=True, check=True)
    assert (out / "sub" / "deep.txt").read_text() == "sub/deep.txt"


# --- remote errors --------------------------------------------------------------------------------------

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
    err = remote.error_for(CommandResult(rc, b"", stderr))
    assert err.http_status == status
    assert err.message.startswith(f"Remote process failed with exit status:{rc}")
    if stderr:
        assert err.message.endswith("and error message:" + stderr.decode())


# --- paths ----------------------------------------------------------------------------------------------

def test_paths(system):
    assert paths.validate(system, "/home/alice/x y") == "/home/alice/x y"
    assert paths.validate(system, "/scratch") == "/scratch"
    for bad, message in (("relative", "not an absolute path"), ("/etc/passwd", "does not match"),
                         ("/homework/x", "does not match"), ("/home/../etc", "'..'"), ("", "retreive"),
                         ("/home/a\x00b", "NUL"), ("/home/" + "x" * 4091, "longer than 4095 bytes"),
                         ("/home/" + "\u00e9" * 2046, "longer than 4095 bytes")):
        with pytest.raises(BadRequest, match=message):
            paths.validate(system, bad)
    assert paths.validate(system, "/home/" + "x" * 4089) == "/home/" + "x" * 4089  # 4095 bytes
    with pytest.raises(BadRequest, match="The provided `linkPath` path .* is not an absolute path"):
        paths.validate(system, "rel", name="linkPath")
    with pytest.raises(BadRequest, match="The `targetPath` parameter is required"):
        paths.validate(system, "", name="targetPath")
    assert paths.first_path("", "/home/a") == "/home/a"
    with pytest.raises(BadRequest):
        paths.first_path("", "")


# --- multipart ------------------------------------------------------------------------------------------

def _encoded(filename: str, data: bytes):
    import httpx
    request = httpx.Request("POST", "http://x/", files={"file": (filename, data)})
    return request.read(), request.headers["content-type"]


@pytest.mark.parametrize("filename", ["plain.bin", 'we"ird\nna\\me é.txt', "-rf", "$(touch x);x"])
def test_multipart_round_trips_httpx_bodies(filename):
    data = bytes(range(256)) * 4 + b"\r\n--not-the-boundary\r\n\r\n\n\r"
    body, content_type = _encoded(filename, data)
    form = multipart.form_file(body, content_type)
    assert form == multipart.FormFile(filename, data)


def test_multipart_rfc5987_filename_and_missing_field():
    body = (b"--B\r\nContent-Disposition: form-data; name=\"other\"\r\n\r\nx\r\n"
            b"--B\r\nContent-Disposition: form-data; name=\"file\"; filename*=UTF-8''caf%C3%A9\r\n\r\n"
            b"data\r\n--B--\r\n")
    assert multipart.form_file(body, "multipart/form-data; boundary=B") == multipart.FormFile("café", b"data")
    with pytest.raises(BadRequest, match="no field `file`"):
        multipart.form_file(body.replace(b'"file"', b'"nope"'), "multipart/form-data; boundary=B")
    with pytest.raises(BadRequest):
        multipart.form_file(body, "application/json")


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "../x"])
def test_unsafe_upload_filenames_are_refused(name):
    with pytest.raises(BadRequest):
        multipart.safe_filename(name)
