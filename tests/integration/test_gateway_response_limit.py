"""An answer larger than the gateway's response limit is a 413 that says so, not a 500.

The gateway buffers a unary answer to transcode it, up to `gateway.max_response_body_bytes` (by default
room for the largest view/download). Beyond that Envoy's transcoder gives up; its own reply was a 500
"Response not transcoded because the transcoder's internal buffer size exceeds the configured limit"
(seen for `allusers` job lists of tens of thousands of jobs). FirecREST v2 answers output over its
buffer limit with 413, so the gateway does too, with a message that says what to do.

A second real Envoy (tests/security/second_gateway.py) with a 64 KiB limit, in front of the same
services, lists a real directory whose answer is larger than that; the shared gateway, with its
default limit, lists the same directory (the refusal is the limit's, not the listing's).
"""

from __future__ import annotations

import os
import pwd

import httpx
import pytest

from gateway.render import response_too_large_message
from tests.security.second_gateway import second_gateway

LISTEN, ADMIN = "127.0.0.1:18094", "127.0.0.1:19915"
URL = f"http://{LISTEN}"
LIMIT = 64 * 1024
FILES = 1200  # ~150 bytes of gRPC answer each (names of 60 characters): well over LIMIT


@pytest.fixture(scope="module")
def small_gateway(config, gateway_url, tmp_path_factory):
    folder = tmp_path_factory.mktemp("gateway-response-limit")
    with second_gateway(config, folder, {"listen": LISTEN, "admin": ADMIN, "max_response_body_bytes": LIMIT},
                        f"{URL}/status/liveness/"):
        yield URL


def _many_files(folder: str, user: str = "alice") -> None:
    """FILES empty files in `folder` (made by the caller through the gateway), owned by `user`."""
    pw = pwd.getpwnam(user)
    for n in range(FILES):
        path = os.path.join(folder, f"{n:05d}-" + "x" * 54)
        with open(path, "w"):
            pass
        os.lchown(path, pw.pw_uid, pw.pw_gid)


def test_an_answer_over_the_response_limit_is_a_413_that_says_so(small_gateway, api, token, workdir, config):
    folder, small = workdir(), workdir()
    _many_files(folder)
    open(os.path.join(small, "one"), "w").close()
    ops = f"/filesystem/{config.systems[0].name}/ops"

    whole = api().get(f"{ops}/ls", params={"path": folder})
    assert whole.status_code == 200, whole.text
    assert len(whole.json()["output"]) == FILES

    with httpx.Client(base_url=small_gateway, timeout=60,
                      headers={"Authorization": f"Bearer {token()}"}) as client:
        refused = client.get(f"{ops}/ls", params={"path": folder})
        assert refused.status_code == 413, refused.text
        assert refused.json() == {"errorType": "error", "message": response_too_large_message(LIMIT),
                                  "causedBy": None, "data": None, "user": "alice"}
        assert "64 KiB" in refused.json()["message"]

        # A small answer through the same gateway is served as ever.
        few = client.get(f"{ops}/ls", params={"path": small})
        assert few.status_code == 200, few.text
        assert [entry["name"] for entry in few.json()["output"]] == ["one"]
