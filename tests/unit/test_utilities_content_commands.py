"""Unit tests of the utilities commands that read or write a file's content (head, tail, view,
download, upload) and of rm, compress and extract, on real captured output and real trees in a
temporary folder. No processes on the cluster."""

from __future__ import annotations

import subprocess

import pytest

from services.common.errors import BadRequest, PayloadTooLarge
from services.common.ssh.command import CommandResult, shell_join
from services.utilities.commands import compress, download, extract, head_tail, rm, upload, view
from tests.unit.coreutils_captured import CONTENT, captured

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
