"""The utilities service's failure mapping (`services.utilities.errors.error_for`): FirecREST v2's table
of remote errors, and the failures captured on the local cluster. No processes."""

from __future__ import annotations

import stat as stat_module
import subprocess

import pytest

from services.common.ssh.command import CommandResult
from services.utilities import errors
from services.utilities.commands import stat, upload
from tests.unit.coreutils_captured import failure

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
