"""The status API through the real gateway against the real local cluster."""

from __future__ import annotations

import grpc
import pytest

from firecrest_mesh.status.v1 import status_pb2, status_pb2_grpc


def test_systems_document(api):
    response = api("alice").get("/status/systems")
    assert response.status_code == 200, response.text
    (system,) = response.json()["systems"]
    assert system["name"] == "local"
    assert system["ssh"]["port"] == 2222 and isinstance(system["ssh"]["port"], int)
    assert system["scheduler"]["type"] == "slurm"
    assert system["dataOperation"]["max_ops_file_size"] == 5242880, "snake_case keys inside dataOperation"
    assert {fs["path"] for fs in system["fileSystems"]} == {"/home", "/scratch"}
    health = {(h["serviceType"], h.get("path")) for h in system["servicesHealth"]}
    assert ("ssh", None) in health and ("scheduler", None) in health and ("filesystem", "/home") in health
    assert all(h["healthy"] for h in system["servicesHealth"]), system["servicesHealth"]
    assert system["lastHealthCheck"].endswith("Z")


def test_nodes(api):
    response = api("alice").get("/status/local/nodes")
    assert response.status_code == 200, response.text
    (node,) = response.json()["nodes"]
    assert node["name"] == "node01" and node["cpus"] == 8
    assert set(node["state"]) <= {"IDLE", "MIXED", "ALLOCATED"}


def test_partitions_and_hidden_ones(api):
    alice = api("alice")
    visible = alice.get("/status/local/partitions").json()["partitions"]
    assert {p["name"] for p in visible} == {"normal", "xfer"}
    assert all(p["partition"] == "UP" for p in visible)
    hidden = alice.get("/status/local/partitions", params={"show_hidden": "true"}).json()["partitions"]
    assert {p["name"] for p in hidden} == {"normal", "xfer", "debug"}


def test_reservations(api):
    response = api("alice").get("/status/local/reservations")
    assert response.status_code == 200, response.text
    assert isinstance(response.json().get("reservations", []), list)


@pytest.mark.parametrize("user, default_account, other", [("alice", "proj-a", "shared"), ("bob", "proj-b", "shared")])
def test_userinfo_names_the_caller(api, user, default_account, other):
    body = api(user).get("/status/local/userinfo").json()
    assert body["user"]["name"] == user and body["user"]["id"].isdigit()
    assert body["group"]["name"] == user
    assert {"id": body["group"]["id"], "name": user} in body["groups"]
    assert {"name": default_account, "default": True} in body["accounts"]
    assert {"name": other, "default": False} in body["accounts"]


def test_unknown_system_is_404(api):
    response = api("alice").get("/status/nosuch/partitions")
    assert response.status_code == 404
    assert response.json()["message"] == "System not found"


def test_system_names_are_case_insensitive(api):
    assert api("alice").get("/status/LOCAL/partitions").status_code == 200


def test_unknown_query_parameter_is_400(api):
    response = api("alice").get("/status/local/partitions", params={"showHiddn": "true"})
    assert response.status_code == 400
    assert response.json()["message"]


def test_bad_boolean_is_400(api):
    response = api("alice").get("/status/local/partitions", params={"show_hidden": "maybe"})
    assert response.status_code == 400


def test_unknown_route_is_404(api):
    response = api("alice").get("/status/local/nothing-here")
    assert response.status_code == 404
    assert response.json()["errorType"] == "error"


def test_pyfirecrest_v2_client(firecrest_client):
    client = firecrest_client("alice")
    assert client.server_version() == "2"
    assert [s["name"] for s in client.systems()] == ["local"]
    assert client.nodes("local")[0]["name"] == "node01"
    assert {p["name"] for p in client.partitions("local")} == {"normal", "xfer"}
    assert isinstance(client.reservations("local"), list)
    assert client.userinfo("local")["user"]["name"] == "alice"


def test_native_grpc_through_the_gateway(grpc_channel, grpc_metadata):
    stub = status_pb2_grpc.StatusServiceStub(grpc_channel)
    reply = stub.GetUserInfo(status_pb2.GetUserInfoRequest(system_name="local"),
                             metadata=grpc_metadata("bob"), timeout=30)
    assert reply.user.name == "bob"
    partitions = stub.ListPartitions(status_pb2.ListPartitionsRequest(system_name="local", show_hidden=True),
                                     metadata=grpc_metadata("alice"), timeout=30)
    assert "debug" in {p.name for p in partitions.partitions}


def test_native_grpc_without_token_is_refused(grpc_channel):
    stub = status_pb2_grpc.StatusServiceStub(grpc_channel)
    with pytest.raises(grpc.RpcError) as err:
        stub.ListSystems(status_pb2.ListSystemsRequest(), timeout=10)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_grpc_reflection_through_the_gateway(grpc_channel, grpc_metadata):
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
    stub = reflection_pb2_grpc.ServerReflectionStub(grpc_channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    replies = list(stub.ServerReflectionInfo(iter([request]), metadata=grpc_metadata("alice"), timeout=10))
    names = {s.name for s in replies[0].list_services_response.service}
    assert "firecrest_mesh.status.v1.StatusService" in names
    assert not any("certificator" in n for n in names), "the internal certificator is not advertised"


def test_a_burst_of_32_clients_all_succeed(gateway_url, token):
    """FirecREST v2 answers 424 "Unable to open a new SSH channel" to part of such a burst; the pool
    queues beyond sshd's MaxSessions instead."""
    import httpx
    from concurrent.futures import ThreadPoolExecutor
    headers = {"Authorization": f"Bearer {token('bob')}"}

    def call(_):
        with httpx.Client(base_url=gateway_url, headers=headers, timeout=120) as client:
            return [client.get("/status/local/partitions").status_code for _ in range(3)]

    with ThreadPoolExecutor(max_workers=32) as pool:
        codes = [c for batch in pool.map(call, range(32)) for c in batch]
    assert codes == [200] * 96
