"""Operations through the real stack: the services' Prometheus metrics and the real Prometheus that
scrapes them, Envoy's JSON access log and the request id that reaches the services' logs and the
client, and `GET /status/services`. Waits poll until a deadline; nothing asserts on elapsed time."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
import uuid

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.polling import eventually

LIST_SYSTEMS = "/firecrest_mesh.status.v1.StatusService/ListSystems"


def scrape(address) -> dict[tuple, float]:
    """(sample name, sorted labels) → value, from an exporter's /metrics."""
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def rpc_count(samples, method: str, code: str = "OK") -> float:
    return samples.get(("firecrest_rpc_requests_total", (("code", code), ("method", method))), 0.0)


def prometheus_query(config, query: str) -> list[dict]:
    url = f"http://{config.metrics.prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": query})
    with urllib.request.urlopen(url, timeout=5) as response:
        body = json.load(response)
    assert body["status"] == "success", body
    return body["data"]["result"]


def log_lines(path, start: int) -> list[dict]:
    """The JSON lines written to `path` after byte `start` (other lines skipped)."""
    with open(path, "rb") as f:
        f.seek(start)
        lines = f.read().decode(errors="replace").splitlines()
    parsed = []
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict):
            parsed.append(entry)
    return parsed


def test_counters_rise_in_the_service_and_in_prometheus(api, config):
    status = config.metrics.exporters["status"]
    before = rpc_count(scrape(status), LIST_SYSTEMS)
    client = api("alice")
    for _ in range(3):
        assert client.get("/status/systems").status_code == 200
    after = scrape(status)
    assert rpc_count(after, LIST_SYSTEMS) >= before + 3
    assert after[("firecrest_rpc_duration_seconds_count", (("method", LIST_SYSTEMS),))] >= before + 3
    # The status code of a refused call is counted too: an unknown system is NOT_FOUND.
    assert client.get("/status/nosuchsystem/nodes").status_code == 404
    assert rpc_count(scrape(status), "/firecrest_mesh.status.v1.StatusService/ListNodes", "NOT_FOUND") >= 1

    # Prometheus returns the same counter from a scrape of its own (at least the count seen here).
    query = f'firecrest_rpc_requests_total{{job="status", method="{LIST_SYSTEMS}", code="OK"}}'
    result = eventually(lambda: [r for r in prometheus_query(config, query)
                                 if float(r["value"][1]) >= rpc_count(after, LIST_SYSTEMS)])
    assert result, f"Prometheus never scraped the count {rpc_count(after, LIST_SYSTEMS)}: {prometheus_query(config, query)}"


def test_every_exporter_and_envoy_are_scraped(config):
    def targets():
        with urllib.request.urlopen(f"http://{config.metrics.prometheus}/api/v1/targets", timeout=5) as r:
            active = json.load(r)["data"]["activeTargets"]
        return {t["labels"]["job"]: t["health"] for t in active}
    expected = {*config.metrics.exporters, "envoy", "prometheus"}
    seen = eventually(lambda: (t := targets()) and all(t.get(job) == "up" for job in expected) and t)
    assert seen, f"targets not all up: {targets()}"
    # Envoy's stats per route, through Prometheus.
    assert eventually(lambda: prometheus_query(config, 'envoy_vhost_route_upstream_rq{envoy_route="status"}'))
    # The recording rules are loaded.
    with urllib.request.urlopen(f"http://{config.metrics.prometheus}/api/v1/rules", timeout=5) as r:
        rules = {rule["name"] for group in json.load(r)["data"]["groups"] for rule in group["rules"]}
    assert {"job:firecrest_rpc_errors:ratio_rate5m", "FirecrestHealthCheckFailing"} <= rules


def test_ssh_pool_certificates_and_scheduler_metrics(api, config):
    assert api("alice").get("/status/local/partitions").status_code == 200
    status = scrape(config.metrics.exporters["status"])
    partitions = [v for (name, labels), v in status.items()
                  if name == "firecrest_scheduler_command_duration_seconds_count"
                  and ("command", "scontrol") in labels and ("outcome", "ok") in labels]
    assert partitions and partitions[0] >= 1
    assert status.get(("firecrest_ssh_connections", (("system", "local"),)), 0) >= 1
    assert ("firecrest_ssh_queued", (("system", "local"),)) in status
    certificator = scrape(config.metrics.exporters["certificator"])
    assert certificator.get(("firecrest_certificates_total", (("mode", "session"), ("outcome", "signed"))), 0) >= 1


def test_access_log_line_names_the_user_and_a_request_id_the_service_logged(api, config):
    envoy_log, status_log = config.state("logs", "envoy.log"), config.state("logs", "status.log")
    envoy_start, status_start = envoy_log.stat().st_size, status_log.stat().st_size
    response = api("alice").get("/status/local/partitions")
    assert response.status_code == 200
    request_id = response.headers["x-request-id"]
    uuid.UUID(request_id)  # Envoy's own id, returned to the client

    def access_line():
        return next((e for e in log_lines(envoy_log, envoy_start) if e.get("request_id") == request_id), None)
    line = eventually(access_line, timeout=30)  # Envoy flushes its log every second
    assert line, f"no access-log line with request id {request_id}"
    assert line["user"] == "alice"
    assert line["system"] == "local"
    assert line["route"] == "/status/{system_name}/partitions"
    assert line["path"] == "/status/local/partitions"
    assert line["status"] == 200 and line["upstream_cluster"] == "status"
    for key in ("duration_ms", "upstream_duration_ms", "bytes_sent", "bytes_received"):
        assert isinstance(line[key], int), (key, line)
    assert "authorization" not in json.dumps(line).lower()

    service_lines = [e for e in log_lines(status_log, status_start) if e.get("request_id") == request_id]
    assert service_lines, f"request id {request_id} not in the status service's log"
    assert all(e["user"] == "alice" for e in service_lines if e["user"] != "-")
    assert any(e["message"].startswith("/firecrest_mesh.status.v1.StatusService/ListPartitions")
               for e in service_lines)


def test_a_client_cannot_choose_the_request_id(api):
    """The gateway is the edge: it replaces a client's x-request-id with its own (no forged ids in
    the logs) and returns that one."""
    response = api("alice").get("/status/systems", headers={"x-request-id": "client-chosen"})
    assert response.status_code == 200
    uuid.UUID(response.headers["x-request-id"])


def test_status_services_lists_every_component_healthy(api, config):
    def listing():
        body = api("alice").get("/status/services").json()
        return body if all(s["healthy"] for s in body["services"]) else None
    body = eventually(listing, timeout=config.health.components_interval_seconds * 3)
    assert body, api("alice").get("/status/services").json()
    names = {s["name"]: s for s in body["services"]}
    assert {"gateway", "identity_provider", *config.services} <= set(names)
    assert names["certificator"]["kind"] == "certificator"
    assert names["gateway"]["kind"] == "gateway"
    assert all(s["lastChecked"].endswith("Z") and "message" not in s for s in body["services"])
    assert body["intervalCheck"] == config.health.components_interval_seconds


def test_status_services_needs_a_token(anonymous):
    assert anonymous.get("/status/services").status_code == 401


@pytest.mark.parametrize("component", ["status", "certificator"])
def test_component_health_is_exported(config, component):
    samples = scrape(config.metrics.exporters["status"])
    assert samples.get(("firecrest_component_healthy", (("component", component),))) == 1.0
