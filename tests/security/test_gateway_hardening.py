"""Gateway hardening (issue 7, part 3), on the wire: real Envoy, real tokens.

- a token without `exp` never expires: refused (401); Envoy's cache of verified tokens (issue 8) checks
  `exp` on every hit and is keyed by the whole token;
- the `Bearer` scheme is case-insensitive (RFC 7235); other schemes and `?access_token=` stay refused;
- an over-long URL answers 414 with the FirecREST error object, whether the Lua filter (URL over
  16 KiB) or Envoy's codec (request line + headers over 96 KiB) refuses it;
- a wrong method on a REST route of the API answers 405 with `Allow` (OPTIONS answers 204 with
  `Allow`; HEAD is not served: 405). Decided before authentication, as FirecREST v2 (FastAPI) does;
- error messages never name proto types, proto field names or TYPE_* enums;
- error bodies: the gateway writes the FirecREST error object from the service's gRPC status (code and
  percent-encoded message), and HTTP/2 (h2c) clients get the same answers as HTTP/1.1 ones.

The routes and methods are read from the descriptor set (the same google.api.http rules the gateway's
table is generated from), plus a few expectations written out by hand.
"""

from __future__ import annotations

import http.client
import json
import re
import time
import uuid

import grpc
import httpx
import pytest
from jose import jwt

from google.protobuf import json_format

from firecrest_mesh.common.v1 import errors_pb2
from firecrest_mesh.status.v1 import status_pb2, status_pb2_grpc
from firecrest_mesh.utilities.v1 import utilities_pb2, utilities_pb2_grpc
from gateway import api_descriptor
from services.idp.signing_key import key_path

ERROR_KEYS = {"errorType", "message", "causedBy", "data", "user"}
# What no error message may contain: proto types, the protobuf runtime's type names, proto field names.
LEAKS = re.compile(r"firecrest_mesh\.|type\.googleapis\.com|TYPE_[A-Z]|in the type|\bnum_lines\b|\bnum_bytes\b"
                   r"|Proto field|oneof")


def firecrest_error(response, status: int, user=None) -> dict:
    assert response.status_code == status, (response.status_code, response.headers, response.text[:500])
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == ERROR_KEYS, body
    assert body["errorType"] in ("error", "validation")
    assert body["causedBy"] is None and body["data"] is None
    assert body["user"] == user
    assert response.headers["F7T-AppVersion"] == "2.x.x"
    return body


@pytest.fixture(scope="module")
def sign(config, token):
    """sign(drop=(), **claims) -> alice's token re-signed with the identity provider's own key."""
    alice = token("alice")
    claims = jwt.get_unverified_claims(alice)
    kid = jwt.get_unverified_header(alice)["kid"]
    private_key = key_path(config).read_bytes()

    def make(drop: tuple[str, ...] = (), **overrides) -> str:
        payload = {k: v for k, v in {**claims, **overrides}.items() if k not in drop}
        return jwt.encode(payload, private_key, algorithm="RS256", headers={"kid": kid})
    return make


# --- tokens -------------------------------------------------------------------------------------------

def test_token_without_exp_is_401(anonymous, sign):
    # The same claims with `exp` are accepted: the signature is right, only the missing `exp` matters.
    assert anonymous.get("/status/systems", headers={"Authorization": f"Bearer {sign()}"}).status_code == 200
    no_exp = sign(drop=("exp",))
    assert "exp" not in jwt.get_unverified_claims(no_exp)
    # Envoy gives no reason of its own for this one: its generic verification failure.
    body = firecrest_error(anonymous.get("/status/systems", headers={"Authorization": f"Bearer {no_exp}"}), 401)
    assert body["message"] == "Jwt verification fails", body


def _jwt_cache_hits(config) -> int:
    stats = httpx.get(f"http://{config.gateway.admin}/stats", params={"filter": "jwt_authn.jwt_cache_hit$"}).text
    return sum(int(line.rsplit(":", 1)[1]) for line in stats.splitlines() if line.strip())


def test_a_cached_token_still_expires(anonymous, sign, config):
    """Envoy caches verified tokens (issue 8), and checks `exp` again on every hit: a token it verified
    and cached is refused by Envoy itself once it has expired. Envoy allows 60 s of clock skew
    (clock_skew_seconds' default); the services allow none, so the token is first refused by the status
    service ("Access token expired": Envoy accepted it, and cached it), then by Envoy ("Jwt is expired")."""
    now = int(time.time())
    # Expired 57 s ago: inside Envoy's skew for ~3 s more. A unique jti: no other test's cached token.
    expiring = sign(exp=now - 57, iat=now - 120, jti=uuid.uuid4().hex)
    headers = {"Authorization": f"Bearer {expiring}"}
    first = firecrest_error(anonymous.get("/status/systems", headers=headers), 401, user="alice")
    assert first["message"] == "Access token expired", first  # the service's refusal: Envoy let it through
    hits = _jwt_cache_hits(config)
    again = anonymous.get("/status/systems", headers=headers)
    if time.time() < now + 2:  # still inside the skew: served from Envoy's cache, refused by the service
        assert firecrest_error(again, 401, user="alice")["message"] == "Access token expired"
        assert _jwt_cache_hits(config) > hits
    time.sleep(max(0.0, now + 4.5 - time.time()))
    body = firecrest_error(anonymous.get("/status/systems", headers=headers), 401)
    assert body["message"] == "Jwt is expired", body


def test_a_cached_token_serves_only_its_own_user(anonymous, sign):
    """The cache is keyed by the whole token: a verified token of alice never answers for another token."""
    alice = sign(jti=uuid.uuid4().hex)
    assert anonymous.get("/status/systems", headers={"Authorization": f"Bearer {alice}"}).status_code == 200
    tampered = alice[:-4] + ("AAAA" if not alice.endswith("AAAA") else "BBBB")  # same claims, bad signature
    body = firecrest_error(anonymous.get("/status/systems", headers={"Authorization": f"Bearer {tampered}"}), 401)
    assert body["message"] == "Jwt verification fails", body


@pytest.mark.parametrize("scheme", ["bearer", "BEARER", "bEaReR", "Bearer  "])
def test_bearer_scheme_is_case_insensitive(anonymous, token, scheme):
    response = anonymous.get("/status/local/userinfo", headers={"Authorization": f"{scheme} {token('bob')}"})
    assert response.status_code == 200, response.text
    assert response.json()["user"]["name"] == "bob"


def test_native_grpc_accepts_lowercase_bearer(grpc_channel, token):
    stub = status_pb2_grpc.StatusServiceStub(grpc_channel)
    reply = stub.ListSystems(status_pb2.ListSystemsRequest(), metadata=(("authorization", f"bearer {token()}"),),
                             timeout=30)
    assert [s.name for s in reply.systems] == ["local"]


@pytest.mark.parametrize("authorization", ["Bearer{token}", "Bearerx {token}", "Basic {token}", "{token}",
                                           "bear {token}"])
def test_other_schemes_are_401(anonymous, token, authorization):
    response = anonymous.get("/status/systems", headers={"Authorization": authorization.format(token=token())})
    firecrest_error(response, 401)


def test_token_in_query_string_is_still_refused(anonymous, token):
    for name in ("access_token", "ACCESS_TOKEN"):
        firecrest_error(anonymous.get("/status/systems", params={name: token()}), 401)


# --- over-long URLs -----------------------------------------------------------------------------------

@pytest.mark.parametrize("length", [16_500, 40_000, 65_000])  # Lua's limit; just below and above the codec's
def test_over_long_url_is_414(api, length):
    url = "/status/systems?x=" + "a" * (length - len("/status/systems?x="))
    body = firecrest_error(api().get(url), 414)
    assert body["message"].startswith("URI Too Long"), body


def test_url_beyond_the_codec_limit_is_414(config, token):
    # 100 KB: more than Envoy's codec takes (request line + headers over 96 KiB: its 431, which
    # local_reply_config turns into 414) and more than httpx sends, hence http.client.
    connection = http.client.HTTPConnection(config.gateway.listen.host, config.gateway.listen.port, timeout=30)
    try:
        connection.request("GET", "/status/systems?x=" + "a" * 100_000, headers={"Authorization": f"Bearer {token()}"})
        response = connection.getresponse()
        status, headers, raw = response.status, response.headers, response.read()
    finally:
        connection.close()
    assert status == 414, (status, raw[:300])
    assert headers["content-type"].startswith("application/json")
    body = json.loads(raw)
    assert set(body) == ERROR_KEYS and body["user"] is None, body
    assert body["message"].startswith("URI Too Long"), body


def test_over_long_path_is_414(api):
    body = firecrest_error(api().get("/filesystem/local/ops/ls/" + "p" * 20_000), 414)
    assert body["message"].startswith("URI Too Long"), body


def test_long_url_below_the_limit_is_served(api):
    url = "/status/systems?x=" + "a" * 16_000
    assert len(url) <= 16_384
    # Not refused for its length: the transcoder sees it (and refuses the unknown parameter).
    body = firecrest_error(api().get(url), 400, user="alice")
    assert body["message"] == "Unknown query parameter 'x'"


# --- methods ------------------------------------------------------------------------------------------

def _example_path(template: str) -> str:
    """A concrete path for a google.api.http template: each variable becomes a plausible segment."""
    return re.sub(r"\{([^}=]*)(=[^}]*)?\}", lambda m: "123" if m.group(1).endswith("_id") else "local", template)


def _routes() -> dict[str, set[str]]:
    """Example path -> the methods the API's rules allow on it: of every rule whose template matches the
    path (`/compute/local/jobs/async` is also a `/compute/{system_name}/jobs/{job_id}`)."""
    rules = api_descriptor.http_rules(api_descriptor.DESCRIPTOR_SET)
    patterns = [(re.compile(api_descriptor.template_regex(template) + "$"), method) for method, template in rules]
    return {path: {method for pattern, method in patterns if pattern.match(path)}
            for path in {_example_path(template) for _, template in rules}}


ROUTES = _routes()


def test_the_descriptor_has_the_expected_routes():
    # Guards the derivation below: a broken descriptor reading would make every route test vacuous.
    assert ROUTES["/compute/local/jobs"] == {"GET", "POST"}
    assert ROUTES["/compute/local/jobs/123"] == {"GET", "DELETE"}
    assert ROUTES["/filesystem/local/ops/rm"] == {"DELETE"}
    assert ROUTES["/compute/local/jobs/async"] == {"POST", "GET", "DELETE"}  # also .../jobs/{job_id}
    assert len(ROUTES) >= 25


@pytest.mark.parametrize("path", sorted(ROUTES))
def test_every_route_answers_405_to_a_wrong_method(anonymous, path):
    allowed = ROUTES[path]
    wrong = next(m for m in ("PATCH", "PUT", "DELETE", "POST", "GET") if m not in allowed)
    response = anonymous.request(wrong, path)
    body = firecrest_error(response, 405)
    assert body["message"] == "Method Not Allowed"
    assert response.headers["Allow"] == ", ".join(sorted(allowed | {"OPTIONS"}))


@pytest.mark.parametrize("method, path, allow", [
    ("DELETE", "/status/systems", "GET, OPTIONS"),
    ("POST", "/status/liveness/", "GET, OPTIONS"),
    ("PUT", "/compute/local/jobs/4242/", "DELETE, GET, OPTIONS"),
    ("PATCH", "/compute/local/jobs", "GET, OPTIONS, POST"),
    ("GET", "/compute/local/jobs/4242/attach", "OPTIONS, PUT"),
    ("GET", "/filesystem/local/ops/rm", "DELETE, OPTIONS"),
    ("PUT", "/filesystem/local/ops/upload?path=/home/alice/x", "OPTIONS, POST"),
])
def test_wrong_method_is_405_with_allow(api, anonymous, method, path, allow):
    # Before authentication (as FirecREST v2): the same answer with and without a token.
    for client in (anonymous, api("alice")):
        response = client.request(method, path)
        body = firecrest_error(response, 405)
        assert body["message"] == "Method Not Allowed"
        assert response.headers["Allow"] == allow


def test_head_is_405(api, anonymous):
    for client in (anonymous, api()):
        response = client.head("/status/systems")
        assert response.status_code == 405
        assert response.headers["Allow"] == "GET, OPTIONS"
        assert response.content == b""


def test_options_lists_the_methods(anonymous, api):
    for client in (anonymous, api()):
        response = client.options("/compute/local/jobs")
        assert response.status_code == 204, response.text
        assert response.headers["Allow"] == "GET, OPTIONS, POST"
        assert response.content == b""
        assert response.headers.get("content-length") in (None, "0")
        assert response.headers["F7T-AppVersion"] == "2.x.x"


def test_right_method_still_reaches_the_service(api):
    response = api().get("/compute/local/jobs/")
    assert response.status_code == 200, response.text
    assert "jobs" in response.json()


def test_unknown_paths_stay_behind_authentication(anonymous, api):
    for method in ("GET", "DELETE", "OPTIONS"):
        firecrest_error(anonymous.request(method, "/compute/local/nothing/here"), 401)
        firecrest_error(api().request(method, "/compute/local/nothing/here"), 404, user="alice")


# --- error messages -----------------------------------------------------------------------------------

@pytest.mark.parametrize("method, url, body, message", [
    ("GET", "/status/systems?foo=1", None, "Unknown query parameter 'foo'"),
    ("GET", "/status/local/partitions?show_hidden=maybe", None,
     "Invalid value \"maybe\" for 'show_hidden': expected true or false"),
    ("GET", "/filesystem/local/ops/head?path=/home/alice/x&lines=abc", None,
     "Invalid value \"abc\" for 'lines': expected a 64-bit integer"),
    ("GET", "/filesystem/local/ops/head?path=/home/alice/x&lines=99999999999999999999", None,
     "Invalid value \"99999999999999999999\" for 'lines': expected a 64-bit integer"),
    ("GET", "/filesystem/local/ops/tail?path=/home/alice/x&bytes=1.5", None,
     "Invalid value \"1.5\" for 'bytes': expected a 64-bit integer"),
    ("GET", "/filesystem/local/ops/head?path=/home/alice/x&lines=1&lines=2", None, "'lines' is given more than once"),
    ("GET", "/filesystem/local/ops/head?path=/home/alice/x&lines.x=1", None,
     "Unknown query parameter: 'lines' has no sub-fields"),
    ("POST", "/compute/local/jobs", b'{"job": 5}', "Invalid value 5 for 'job': expected an object"),
    ("POST", "/compute/local/jobs", b'{"job": {"name": 5}}', "Invalid value 5 for 'job.name': expected a string"),
    ("POST", "/compute/local/jobs", b'{"job": {"name": ["a"]}}',
     "Invalid value for 'job': expected a single value, not a list"),
    ("POST", "/compute/local/jobs", b"[]", "The request body must be a JSON object"),
    ("POST", "/filesystem/local/ops/mkdir", b'{"path": {"a": 1}}',
     "Invalid value for 'path': expected a single value, not an object"),
    ("POST", "/filesystem/local/ops/mkdir", b'{"path": "/home/alice/x", "parent": 3}',
     "Invalid value 3 for 'parent': expected true or false"),
])
def test_validation_messages_name_no_proto_types(api, method, url, body, message):
    response = api().request(method, url, content=body,
                             headers={"Content-Type": "application/json"} if body is not None else {})
    got = firecrest_error(response, 400, user="alice")
    assert got["errorType"] == "validation"
    assert got["message"] == message
    assert not LEAKS.search(got["message"]), got["message"]


def test_unknown_query_parameter_is_named_as_sent(api):
    # The name as it is in the URL (percent-encoded); quotes and backslashes survive the rewording.
    got = firecrest_error(api().get("/status/systems", params={'we"ird\\name': "1"}), 400, user="alice")
    assert got["message"] == "Unknown query parameter 'we%22ird%5Cname'"


def test_service_messages_pass_unchanged(api):
    # A service's own message (not the transcoder's) is left as the service wrote it.
    got = firecrest_error(api().get("/filesystem/local/ops/head?path=/home/alice/x&lines=-1"), 400, user="alice")
    assert got["message"] == "`lines` must not be negative."


# --- error bodies, HTTP/1.1 and HTTP/2 ----------------------------------------------------------------

@pytest.fixture(scope="module")
def h2(gateway_url, token):
    """An HTTP/2 client of the gateway (h2c, prior knowledge) sending alice's token."""
    with httpx.Client(base_url=gateway_url, http1=False, http2=True, timeout=60,
                      headers={"Authorization": f"Bearer {token('alice')}"}) as client:
        yield client


def test_service_error_body_is_the_grpc_status_message(api, h2, grpc_channel, token):
    odd = '/etc/é ✓ "quoted" back\\slash 𝄞'
    with pytest.raises(grpc.RpcError) as raised:
        utilities_pb2_grpc.UtilitiesServiceStub(grpc_channel).ListFiles(
            utilities_pb2.ListFilesRequest(system_name="local", path=odd),
            metadata=(("authorization", f"Bearer {token()}"),), timeout=30)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    message = raised.value.details()
    # Guard: the message must carry what the gateway has to decode (percent-encoded UTF-8) and escape.
    assert "é ✓" in message and '"quoted"' in message and "\\" in message, message
    for client in (api(), h2):
        response = client.get("/filesystem/local/ops/ls", params={"path": odd})
        body = firecrest_error(response, 400, user="alice")
        assert body == {"errorType": "error", "message": message, "causedBy": None, "data": None, "user": "alice"}
        assert response.headers["F7T-AuthUsername"] == "alice"
        assert not {"grpc-status", "grpc-message", "x-http-code"} & set(response.headers), response.headers


@pytest.mark.parametrize("method, url", [
    ("GET", "/status/systems?foo=1"),                                   # the transcoder's 400, reworded
    ("GET", "/filesystem/local/ops/head?path=/home/alice/x&lines=-1"),  # a service's 400
    ("GET", "/compute/local/jobs/999999999"),                           # a service's 404
    ("GET", "/filesystem/local/ops/ls?path=/home/alice/no-such-dir"),   # a failed remote command
    ("PATCH", "/compute/local/jobs"),                                   # the Lua filter's 405
    ("OPTIONS", "/compute/local/jobs"),                                 # the Lua filter's 204
    ("GET", "/nothing/here"),                                           # Envoy's 404
    ("GET", "/status/systems"),                                         # a success
])
def test_http2_gets_the_answers_of_http11(api, h2, method, url):
    one, two = api().request(method, url), h2.request(method, url)
    assert (one.http_version, two.http_version) == ("HTTP/1.1", "HTTP/2")
    assert one.status_code == two.status_code, (one.text, two.text)
    if one.status_code >= 400:
        assert one.json() == two.json()
        assert set(two.json()) == ERROR_KEYS
    assert not two.content if one.status_code == 204 else two.content
    for name in ("content-type", "allow", "f7t-appversion", "f7t-authusername"):
        assert one.headers.get(name) == two.headers.get(name), name


def test_http2_created_and_no_content(h2):
    path = f"/home/alice/gateway-h2-{uuid.uuid4().hex}"
    created = h2.post("/filesystem/local/ops/mkdir", json={"path": path})
    assert (created.http_version, created.status_code) == ("HTTP/2", 201), created.text
    assert created.json()["output"]["name"].endswith(path.rsplit("/", 1)[1])
    deleted = h2.delete("/filesystem/local/ops/rm", params={"path": path})
    assert deleted.status_code == 204, deleted.text
    assert deleted.content == b""
    assert "content-type" not in deleted.headers and deleted.headers["F7T-AppVersion"] == "2.x.x"


@pytest.mark.parametrize("method, url, authenticated", [
    ("GET", "/status/systems", False),                                 # jwt_authn's 401
    ("GET", "/status/systems?foo=1", True),                            # the transcoder's 400 (validation)
    ("GET", "/filesystem/local/ops/head?path=/home/alice/x&lines=-1", True),  # a service's 400
    ("DELETE", "/status/systems", False),                              # the Lua filter's 405
    ("GET", "/nothing/here", True),                                    # Envoy's 404
])
def test_error_bodies_are_the_documented_error_response(api, anonymous, method, url, authenticated):
    response = (api() if authenticated else anonymous).request(method, url)
    body = response.json()
    # protos/firecrest_mesh/common/v1/errors.proto describes it: the strict parser knows every key.
    parsed = json_format.Parse(response.text, errors_pb2.ErrorResponse())
    assert parsed.error_type == body["errorType"] and parsed.message == body["message"]
    assert parsed.HasField("user") == authenticated
    assert set(body) == ERROR_KEYS
    assert json_format.MessageToDict(parsed) == {k: v for k, v in body.items() if k != "user" or v is not None}
