"""The gateway's routes for the tasks service: the watch stream's REST path gets its own transcoder
settings (server-sent events) and no timeout, on both its REST and gRPC paths; the internal
TaskRecordsService is neither transcoded nor routed (404)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from gateway import api_descriptor
from services.common.config import REPO_ROOT

CONFIG = REPO_ROOT / "config" / "local.yaml"
WATCH = "/firecrest_mesh.tasks.v1.TasksService/WatchTask"


@pytest.fixture(scope="module")
def routes(tmp_path_factory) -> tuple[dict, list[dict]]:
    out = tmp_path_factory.mktemp("envoy") / "envoy.yaml"
    subprocess.run([sys.executable, "-m", "gateway.render", "--config", str(CONFIG), "--out", str(out)],
                   cwd=REPO_ROOT, check=True, capture_output=True)
    bootstrap = yaml.safe_load(out.read_text())
    hcm = bootstrap["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    transcoder = next(f["typed_config"] for f in hcm["http_filters"]
                      if f["name"] == "envoy.filters.http.grpc_json_transcoder")
    return transcoder, hcm["route_config"]["virtual_hosts"][0]["routes"]


def test_template_regex():
    assert api_descriptor.template_regex("/tasks/{task_id}/events") == "/tasks/[^/]+/events/?"
    assert api_descriptor.template_regex("/a/{x=**}") == "/a/.*/?"


def test_watch_is_server_sent_events_without_timeout(routes):
    transcoder, table = routes
    assert "stream_sse_style_delimited" not in transcoder["print_options"]  # unary JSON unchanged
    rest = next(r for r in table if r["match"].get("safe_regex", {}).get("regex") == "/tasks/[^/]+/events/?")
    override = rest["typed_per_filter_config"]["envoy.filters.http.grpc_json_transcoder"]
    assert override["print_options"]["stream_sse_style_delimited"] is True
    assert {k: v for k, v in override.items() if k != "print_options"} == \
           {k: v for k, v in transcoder.items() if k != "print_options"}
    grpc_route = next(r for r in table if r["match"].get("path") == WATCH)
    for route in (rest, grpc_route):
        assert route["route"] == {"cluster": "tasks", "timeout": "0s", "idle_timeout": "0s"}
    # both come before the tasks package's prefix route (first match wins)
    prefix = next(i for i, r in enumerate(table) if r["match"].get("prefix") == "/firecrest_mesh.tasks.v1.")
    assert table.index(rest) < prefix and table.index(grpc_route) < prefix


def test_task_records_are_internal(routes):
    transcoder, table = routes
    assert "firecrest_mesh.tasks.v1.TaskRecordsService" not in transcoder["services"]
    assert "firecrest_mesh.tasks.v1.TasksService" in transcoder["services"]
    internal = next(r for r in table if r["match"].get("prefix") == "/firecrest_mesh.tasks.v1.TaskRecordsService/")
    assert internal["direct_response"]["status"] == 404
