"""Unit tests of what a utilities request carries before any command is built: the paths it names
(`services.common.paths`) and the upload's multipart/form-data body (`services.utilities.multipart`).
No processes."""

from __future__ import annotations

import httpx
import pytest

from services.common import paths
from services.common.config import load_config
from services.common.errors import BadRequest
from services.utilities import multipart


@pytest.fixture(scope="module")
def system():
    return load_config().system("local")


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
