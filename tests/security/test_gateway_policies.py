"""The gateway's policies on the real stack: rate limits, IP filtering and access control lists.

A second real Envoy (own ports and base id: tests/security/second_gateway.py) with strict policies is
rendered from a copy of the configuration, in front of the same services and identity provider, so
that the shared gateway keeps its permissive defaults for every other test. Clients bind other loopback addresses (127.0.0.2, ...: Linux
answers on all of 127/8) to be another client address. Nothing here depends on timing: a burst goes on
until the limit answers, bounded by a number of requests far above the budget.
"""

from __future__ import annotations


import grpc
import httpx
import pytest

from firecrest_mesh.status.v1 import status_pb2, status_pb2_grpc
from tests.security.second_gateway import second_gateway

LISTEN, ADMIN = "127.0.0.1:18092", "127.0.0.1:19913"
URL = f"http://{LISTEN}"
DENIED = "127.0.0.2"  # in the global deny list
DENIED_ON_LOCAL = "127.0.0.4"  # in the deny list of the system `local` only
ADDRESS_LIMITED = "127.0.0.3"  # runs out of its address budget
POLICIES = {
    "rate_limits": {
        "expensive": {"per_user": {"per_second": 1, "burst": 3}, "per_address": {"per_second": 1, "burst": 100}},
        "default": {"per_address": {"per_second": 1, "burst": 50}},
    },
    "ip_filter": {"deny": [f"{DENIED}/32"], "systems": {"local": {"deny": [f"{DENIED_ON_LOCAL}/32"]}}},
    # Everywhere: `shared` (alice and bob have it; the public liveness route needs no token all the same);
    # the status area on `local`: `proj-a` (alice only).
    "access_control": [{"claim": "groups", "contains": "shared"},
                       {"claim": "groups", "contains": "proj-a", "areas": ["status"], "systems": ["local"]}],
}
BURST_BOUND = 400  # far above any budget above: the answer must change before this many requests


@pytest.fixture(scope="module")
def policy_gateway(config, gateway_url, tmp_path_factory):
    folder = tmp_path_factory.mktemp("gateway-policies")
    with second_gateway(config, folder, {"listen": LISTEN, "admin": ADMIN, **POLICIES}, f"{URL}/status/liveness/"):
        yield URL


def _client(token: str, source: str = "127.0.0.1") -> httpx.Client:
    return httpx.Client(base_url=URL, timeout=30, headers={"Authorization": f"Bearer {token}"},
                        transport=httpx.HTTPTransport(local_address=source))


def _assert_error_body(response: httpx.Response, user: str | None) -> None:
    body = response.json()
    assert set(body) == {"errorType", "message", "causedBy", "data", "user"}, body
    assert body["errorType"] == "error" and body["user"] == user


def _burst_until(client: httpx.Client, send, status: int) -> httpx.Response:
    """Sends until the answer is `status` (at most BURST_BOUND requests); returns that answer."""
    for _ in range(BURST_BOUND):
        response = send(client)
        if response.status_code == status:
            return response
    pytest.fail(f"no {status} after {BURST_BOUND} requests")


def _submit(client: httpx.Client) -> httpx.Response:
    # Refused by the compute service (empty script) before any SSH: the request costs a token only.
    return client.post("/compute/local/jobs", json={"job": {"workingDirectory": "/tmp", "script": ""}})


def test_a_user_over_the_submission_budget_gets_429_and_others_do_not(policy_gateway, token):
    with _client(token("alice")) as alice, _client(token("bob")) as bob:
        limited = _burst_until(alice, _submit, 429)
        assert limited.headers["retry-after"] == "1"
        _assert_error_body(limited, "alice")
        assert "rate limit" in limited.json()["message"]
        # bob has a bucket of his own: his submission reaches the service (its 400 for the empty script).
        answer = _submit(bob)
        assert answer.status_code == 400, answer.text
        assert "script" in answer.json()["message"]
        # Reads are another class (no per-user budget): alice still reads.
        assert alice.get("/status/systems").status_code == 200


def test_an_address_over_its_budget_gets_429_and_other_addresses_do_not(policy_gateway, token):
    with _client(token("alice"), ADDRESS_LIMITED) as limited, _client(token("alice")) as other:
        response = _burst_until(limited, lambda c: c.get("/status/systems"), 429)
        assert response.headers["retry-after"] == "1"
        assert other.get("/status/systems").status_code == 200


def test_a_denied_address_gets_403(policy_gateway, token):
    with _client(token("alice"), DENIED) as denied:
        response = denied.get("/status/systems")
        assert response.status_code == 403, response.text
        _assert_error_body(response, None)  # refused before the token is looked at
        assert denied.get("/status/liveness/").status_code == 403
    with _client(token("alice")) as allowed:
        assert allowed.get("/status/systems").status_code == 200


def test_a_per_system_deny_list_applies_to_that_system_only(policy_gateway, token):
    with _client(token("alice"), DENIED_ON_LOCAL) as client:
        assert client.get("/status/systems").status_code == 200
        response = client.get("/status/local/userinfo")
        assert response.status_code == 403, response.text
        assert client.get("/status/LOCAL/userinfo").status_code == 403  # systems are case-insensitive


def test_an_acl_on_a_claim_admits_alice_and_refuses_bob(policy_gateway, token):
    with _client(token("alice")) as alice, _client(token("bob")) as bob:
        ok = alice.get("/status/local/userinfo")
        assert ok.status_code == 200, ok.text
        refused = bob.get("/status/local/userinfo")
        assert refused.status_code == 403, refused.text
        _assert_error_body(refused, "bob")
        assert refused.headers["f7t-authusername"] == "bob"
        # Outside the rule's area and system: any valid token.
        assert bob.get("/status/systems").status_code == 200
        other_area = bob.get("/compute/local/jobs/not-a-job-id")  # the service's 400, without SSH
        assert other_area.status_code == 400, other_area.text


def test_a_query_parameter_cannot_move_a_call_to_another_system(policy_gateway, token):
    with _client(token("bob")) as bob:
        for name in ("systemName", "system_name", "system%5Fname"):
            response = bob.get(f"/status/elsewhere/userinfo?{name}=local")
            assert response.status_code == 400, (name, response.text)


def test_native_grpc_calls_of_a_system_method_meet_every_systems_rules(policy_gateway, token):
    with grpc.insecure_channel(LISTEN) as channel:
        stub = status_pb2_grpc.StatusServiceStub(channel)
        reply = stub.GetUserInfo(status_pb2.GetUserInfoRequest(system_name="local"),
                                 metadata=[("authorization", f"Bearer {token('alice')}")], timeout=20)
        assert reply.user.name == "alice"
        with pytest.raises(grpc.RpcError) as refused:
            stub.GetUserInfo(status_pb2.GetUserInfoRequest(system_name="local"),
                             metadata=[("authorization", f"Bearer {token('bob')}")], timeout=20)
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
        # A method without a system: the area's rule is for `local` only.
        stub.ListSystems(status_pb2.ListSystemsRequest(),
                         metadata=[("authorization", f"Bearer {token('bob')}")], timeout=20)
