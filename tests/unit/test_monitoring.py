"""Metrics and monitoring without the stack: the `metrics:` configuration, the Prometheus
configuration and rules (promtool), the SSH pool gauges, the RPC status codes counted, and the
access log's route table."""

from __future__ import annotations

import asyncio
import shutil
import subprocess

import pytest
import yaml
from prometheus_client import REGISTRY

from gateway import api_descriptor
from monitoring import prometheus
from services.common import metrics, server
from services.common.config import DEFAULT_CONFIG, ConfigError, parse_config
from services.common.errors import BadRequest, NotFound


@pytest.fixture
def raw():
    return yaml.safe_load(DEFAULT_CONFIG.read_text())


def test_shipped_metrics_config(raw):
    config = parse_config(raw, DEFAULT_CONFIG)
    assert set(config.metrics.exporters) <= {*config.services, "idp"}
    assert {"status", "compute", "utilities", "certificator", "idp"} <= set(config.metrics.exporters)
    assert config.metrics.prometheus.host == "127.0.0.1"


@pytest.mark.parametrize("mutate, message", [
    (lambda m: m["exporters"].update(status="0.0.0.0:9452"), "metrics.exporters.status: metrics are served on loopback"),
    (lambda m: m["exporters"].update(nosuch="127.0.0.1:9499"), "metrics.exporters.nosuch: not a configured service"),
    (lambda m: m["exporters"].update(compute="127.0.0.1:9452"), "port 9452 is already"),
    (lambda m: m["exporters"].update(compute="127.0.0.1:50051"), "services.status"),
    (lambda m: m["exporters"].update(compute="127.0.0.1:51051"), "health listener"),
    (lambda m: m.update(prometheus="127.0.0.1:9901"), "gateway.admin"),
    (lambda m: m.update(prometheus="10.0.0.1:9090"), "metrics.prometheus"),
    (lambda m: m.update(scrape_interval_seconds=0), "metrics.scrape_interval_seconds"),
])
def test_bad_metrics_config_is_refused(raw, mutate, message):
    mutate(raw["metrics"])
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        parse_config(raw, DEFAULT_CONFIG)


def test_no_metrics_section_means_no_exporters(raw):
    raw.pop("metrics")
    config = parse_config(raw, DEFAULT_CONFIG)
    assert config.metrics.exporters == {} and config.metrics.prometheus is None


def test_prometheus_scrapes_every_exporter_and_envoy(raw):
    config = parse_config(raw, DEFAULT_CONFIG)
    document = prometheus.config_document(config)
    jobs = {job["job_name"]: job for job in document["scrape_configs"]}
    for name, address in config.metrics.exporters.items():
        assert jobs[name]["static_configs"][0]["targets"] == [str(address)]
    assert jobs["envoy"]["metrics_path"] == "/stats/prometheus"
    assert jobs["envoy"]["static_configs"][0]["targets"] == [str(config.gateway.admin)]
    assert document["rule_files"] == [str(prometheus.RULES)]
    argv = prometheus.argv(config)
    assert f"--web.listen-address={config.metrics.prometheus}" in argv


def promtool() -> str:
    tool = shutil.which("promtool")
    assert tool, "promtool missing: Debian's prometheus package (cluster/install-packages.sh)"
    return tool


def test_rendered_prometheus_config_and_rules_pass_promtool(raw, tmp_path):
    config = parse_config(raw, DEFAULT_CONFIG)
    out = prometheus.render(config, tmp_path / "prometheus.yml")
    checked = subprocess.run([promtool(), "check", "config", str(out)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_rules_unit_tests_pass_promtool():
    """monitoring/rules_test.yml: the error-ratio, p99-latency and failing-health-check alerts fire
    when they should and not before."""
    result = subprocess.run([promtool(), "test", "rules", str(prometheus.RULES.with_name("rules_test.yml"))],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


class FakePool:
    def __init__(self, stats):
        self._stats = stats

    def stats(self):
        return self._stats


def test_pool_gauges_sum_the_pools_of_a_process():
    collector = metrics.PoolCollector(lambda: [
        FakePool({"local": {"connections": 2, "channels_in_use": 5, "channel_capacity": 16, "queued": 3}}),
        FakePool({"local": {"connections": 1, "channels_in_use": 1, "channel_capacity": 8, "connecting": 1},
                  "other": {"connections": 1}})])
    values = {(family.name, sample.labels["system"]): sample.value
              for family in collector.collect() for sample in family.samples}
    assert values[("firecrest_ssh_connections", "local")] == 3
    assert values[("firecrest_ssh_channels_in_use", "local")] == 6
    assert values[("firecrest_ssh_channel_capacity", "local")] == 24
    assert values[("firecrest_ssh_queued", "local")] == 3
    assert values[("firecrest_ssh_connecting", "local")] == 1
    assert values[("firecrest_ssh_connections", "other")] == 1


@pytest.mark.parametrize("exc, code", [
    (None, "OK"), (NotFound("x"), "NOT_FOUND"), (BadRequest("x"), "INVALID_ARGUMENT"),
    (RuntimeError("bug"), "INTERNAL"), (asyncio.CancelledError(), "CANCELLED"),
])
def test_rpc_status_codes_counted(exc, code):
    assert server._status_code(exc) == code


def count(outcome: str) -> float:
    return REGISTRY.get_sample_value("firecrest_scheduler_command_duration_seconds_count",
                                     {"system": "sys", "command": "squeue", "outcome": outcome}) or 0.0


def test_scheduler_command_outcome():
    before = {o: count(o) for o in ("ok", "timeout", "error")}
    with metrics.scheduler_command("sys", "squeue"):
        pass
    with pytest.raises(RuntimeError):
        with metrics.scheduler_command("sys", "squeue") as outcome:
            outcome("timeout")  # named before it raised: kept
            raise RuntimeError
    with pytest.raises(RuntimeError):
        with metrics.scheduler_command("sys", "squeue"):
            raise RuntimeError
    assert {o: count(o) - before[o] for o in before} == {"ok": 1, "timeout": 1, "error": 1}


def test_access_log_routes_prefer_literal_segments_and_capture_the_system():
    routes = api_descriptor.log_routes(api_descriptor.DESCRIPTOR_SET)
    templates = [template for _pattern, template, _system, _methods in routes]
    assert templates.index("/compute/{system_name}/jobs/async") < templates.index("/compute/{system_name}/jobs/{job_id}")
    by_template = {template: (pattern, names_system, methods) for pattern, template, names_system, methods in routes}
    pattern, names_system, methods = by_template["/status/{system_name}/partitions"]
    assert pattern == "^/status/([^/]+)/partitions/?$" and names_system and methods == ["GET"]
    assert by_template["/status/services"][1] is False
