"""Unit tests of the utilities commands that change a file and answer its entry (chmod, chown, mkdir,
symlink) and of stat, checksum and file, on real captured output (tests/unit/coreutils_captured.py).
No processes."""

from __future__ import annotations

import hashlib
import subprocess

import pytest

from services.common.errors import BadRequest
from services.utilities import errors
from services.utilities.commands import checksum, chmod, chown, entries, file, mkdir, stat, symlink
from tests.unit.coreutils_captured import CAPTURE, CAPTURE_TIME, CONTENT, NEWLINE, captured, failure

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
