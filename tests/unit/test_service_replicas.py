"""A service run as several replicas (`services.<name>` a list of addresses): validation of the list and
of the replicas' metrics exporters, which replica a process is (FIRECREST_MESH_REPLICA), the mesh's
gRPC target for it (round-robin over every replica), the gateway's cluster (one endpoint per replica,
each with its health port; `envoy --mode validate`) and Prometheus' targets. The single-address form
keeps working unchanged."""

from __future__ import annotations

import subprocess

import pytest
import yaml

from gateway import render
from monitoring.prometheus import config_document
from services.common import mesh_tls
from services.common.config import DEFAULT_CONFIG, REPLICA_ENV, REPO_ROOT, Address, ConfigError, parse_config

ENVOY = REPO_ROOT / ".venv" / "bin" / "envoy"
TASKS = ["127.0.0.1:50154", "127.0.0.1:50155"]


@pytest.fixture
def raw():
    return yaml.safe_load(DEFAULT_CONFIG.read_text())


@pytest.fixture
def replicated(raw):
    raw["services"]["tasks"] = list(TASKS)
    raw["metrics"]["exporters"]["tasks"] = ["127.0.0.1:9555", "127.0.0.1:9556"]
    return parse_config(raw, DEFAULT_CONFIG)


def test_single_address_is_one_replica(raw):
    config = parse_config(raw, DEFAULT_CONFIG)
    assert config.addresses("tasks") == (Address("127.0.0.1", 50054),)
    assert config.services["tasks"] == Address("127.0.0.1", 50054)
    assert config.metrics.exporter("tasks") == Address("127.0.0.1", 9455)
    assert config.metrics.exporter("tasks", 1) is None and not config.metrics.replica_exporters
    assert mesh_tls.target(config, "tasks") == ("127.0.0.1:50054", [])


def test_a_list_is_the_replicas(replicated, monkeypatch):
    assert [str(a) for a in replicated.addresses("tasks")] == TASKS
    assert str(replicated.services["tasks"]) == TASKS[0]  # the first, for what names one address
    monkeypatch.delenv(REPLICA_ENV, raising=False)
    assert replicated.replica("tasks") == 0 and str(replicated.listen_address("tasks")) == TASKS[0]
    monkeypatch.setenv(REPLICA_ENV, "1")
    assert str(replicated.listen_address("tasks")) == TASKS[1]
    assert str(replicated.metrics.exporter("tasks", 1)) == "127.0.0.1:9556"
    with pytest.raises(ConfigError, match="services.compute has 1 replica"):
        replicated.listen_address("compute")  # a replica number its service does not have
    for bad in ("2", "-1", "x"):
        monkeypatch.setenv(REPLICA_ENV, bad)
        with pytest.raises(ConfigError, match=REPLICA_ENV):
            replicated.listen_address("tasks")


def test_mesh_clients_balance_over_ip_replicas(replicated, raw):
    assert mesh_tls.target(replicated, "tasks") == (
        "ipv4:127.0.0.1:50154,127.0.0.1:50155", [("grpc.lb_policy_name", "round_robin")])
    raw["services"]["tasks"] = ["tasks-0.mesh:50054", "tasks-1.mesh:50054"]
    raw["metrics"]["exporters"].pop("tasks")
    assert mesh_tls.target(parse_config(raw, DEFAULT_CONFIG), "tasks") == ("tasks-0.mesh:50054", [])


@pytest.mark.parametrize("value, exporters, key", [
    ([], None, "services.tasks: expected host:port or a non-empty list"),
    (["127.0.0.1:50154", "nope"], None, r"services.tasks\[1\]: expected host:port"),
    (["127.0.0.1:50154", "127.0.0.1:50154"], None, r"services.tasks\[1\]: port 50154"),
    (["127.0.0.1:50154", "127.0.0.1:50052"], None, "already services.compute's"),
    (["127.0.0.1:50154", "127.0.0.1:51154"], None, "health listener of services.tasks"),
    (TASKS, "127.0.0.1:9555", "metrics.exporters.tasks: services.tasks has 2 replicas"),
    (TASKS, ["127.0.0.1:9555"], "one address per replica"),
    (TASKS, ["127.0.0.1:9555", "127.0.0.1:9452"], r"metrics.exporters.status"),
    (TASKS, ["127.0.0.1:9555", "10.0.0.1:9556"], "loopback only"),
])
def test_bad_replicas_are_refused(raw, value, exporters, key):
    raw["services"]["tasks"] = value
    if exporters is not None:
        raw["metrics"]["exporters"]["tasks"] = exporters
    with pytest.raises(ConfigError, match=key):
        parse_config(raw, DEFAULT_CONFIG)


def test_gateway_cluster_has_one_endpoint_per_replica(replicated, tmp_path):
    out = render.render(replicated, tmp_path / "envoy.yaml")
    clusters = {c["name"]: c for c in yaml.safe_load(out.read_text())["static_resources"]["clusters"]}
    tasks = clusters["tasks"]
    assert tasks["type"] == "STATIC" and tasks["lb_policy"] == "ROUND_ROBIN"
    (group,) = tasks["load_assignment"]["endpoints"]
    assert [(e["endpoint"]["address"]["socket_address"]["port_value"], e["endpoint"]["health_check_config"]["port_value"])
            for e in group["lb_endpoints"]] == [(50154, 51154), (50155, 51155)]
    (compute,) = clusters["compute"]["load_assignment"]["endpoints"][0]["lb_endpoints"]
    assert compute["endpoint"]["address"]["socket_address"]["port_value"] == 50052
    result = subprocess.run([str(ENVOY), "--mode", "validate", "-c", str(out), "--base-id", "934", "-l", "error"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_prometheus_scrapes_every_replica(replicated):
    (job,) = [j for j in config_document(replicated)["scrape_configs"] if j["job_name"] == "tasks"]
    assert job["static_configs"][0]["targets"] == ["127.0.0.1:9555", "127.0.0.1:9556"]
