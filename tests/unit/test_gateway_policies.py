"""The gateway's policies: their validation in the configuration, and the Envoy configuration rendered
from them (every policy on, accepted by `envoy --mode validate`; none, no filter at all)."""

from __future__ import annotations

import copy
import subprocess
import sys

import pytest
import yaml

from gateway import policies
from gateway.api_descriptor import DESCRIPTOR_SET, _api_files
from services.common.config import DEFAULT_CONFIG, REPO_ROOT, ConfigError, parse_config

ENVOY = REPO_ROOT / ".venv" / "bin" / "envoy"
EVERY_POLICY = {
    "trusted_proxy_hops": 1,
    "rate_limits": {"expensive": {"per_user": {"per_second": 10, "burst": 20},
                                  "per_address": {"per_second": 50, "burst": 100}},
                    "default": {"per_user": {"per_second": 100, "burst": 200}}},
    "ip_filter": {"allow": ["127.0.0.0/8", "::1/128"], "deny": ["127.0.0.2/32"],
                  "systems": {"local": {"deny": ["127.0.0.4"]}}},
    "access_control": [{"claim": "groups", "contains": "shared"},
                       {"claim": "scope", "contains": "hpc", "areas": ["compute"], "systems": ["local"]}],
}


@pytest.fixture
def raw():
    return yaml.safe_load(DEFAULT_CONFIG.read_text())


def _with(raw, **gateway):
    data = copy.deepcopy(raw)
    data["gateway"].update(gateway)
    return parse_config(data, DEFAULT_CONFIG)


def test_the_embedded_default_limits_submissions_only(raw):
    p = parse_config(raw, DEFAULT_CONFIG).gateway.policies
    assert p.rate_limits["expensive"].per_user.per_second == 10
    assert p.rate_limits["expensive"].per_user.burst == 20
    assert p.rate_limits["default"].per_user is None and p.rate_limits["default"].per_address is None
    assert not p.ip_filter and not p.system_ip_filters and not p.access_control and not p.per_system


@pytest.mark.parametrize("gateway, key", [
    ({"trusted_proxy_hops": -1}, "gateway.trusted_proxy_hops"),
    ({"rate_limits": {"reads": {}}}, "gateway.rate_limits"),
    ({"rate_limits": {"expensive": {"per_user": {"per_second": 0, "burst": 1}}}}, "per_user.per_second"),
    ({"rate_limits": {"expensive": {"per_user": {"per_second": 5, "burst": 2}}}}, "per_user.burst"),
    ({"ip_filter": {"deny": ["300.1.1.1/8"]}}, "gateway.ip_filter.deny"),
    ({"ip_filter": {"systems": {"nowhere": {"deny": ["10.0.0.0/8"]}}}}, "gateway.ip_filter.systems"),
    ({"access_control": [{"claim": "groups"}]}, "access_control[0].contains"),
    ({"access_control": [{"claim": "groups", "contains": "a b"}]}, "access_control[0].contains"),
    ({"access_control": [{"claim": "groups", "contains": "x", "areas": ["certificator"]}]}, "areas"),
    ({"access_control": [{"claim": "groups", "contains": "x", "systems": ["nowhere"]}]}, "systems"),
])
def test_bad_policies_are_refused(raw, gateway, key):
    with pytest.raises(ConfigError, match=key.replace("[", r"\[").replace("]", r"\]")):
        _with(raw, **gateway)


def test_extra_claims_of_clients(raw):
    cfg = parse_config(raw, DEFAULT_CONFIG)
    alice = next(c for c in cfg.identity.embedded_provider.clients if c.username == "alice")
    assert dict(alice.claims)["groups"] == ("proj-a", "shared")
    data = copy.deepcopy(raw)
    data["identity"]["embedded_provider"]["clients"][0]["claims"] = {"iss": "me"}
    with pytest.raises(ConfigError, match="claims.iss"):
        parse_config(data, DEFAULT_CONFIG)


def test_expensive_calls_are_submissions_and_transfers():
    methods = policies.api_methods(_api_files(DESCRIPTOR_SET))
    expensive = {m.grpc_path.rsplit("/", 1)[1] for m in methods if policies.is_expensive(m)}
    assert {"SubmitJob"} <= expensive
    assert not {"ListJobs", "GetJob", "CancelJob", "ListSystems", "UploadFile"} & expensive
    if any(m.service == "storage" for m in methods):
        assert {"CopyFiles", "CreateUpload", "CreateDownload"} <= expensive


def test_system_route_pattern():
    assert policies.system_route_pattern("/compute/{system_name}/jobs/{job_id}") == "^/compute/([^/]+)/jobs/[^/]+/?$"
    assert policies.system_route_pattern("/status/systems") is None


@pytest.fixture(scope="module")
def rendered_every_policy(tmp_path_factory):
    folder = tmp_path_factory.mktemp("policies")
    data = yaml.safe_load(DEFAULT_CONFIG.read_text())
    data["gateway"].update(EVERY_POLICY)
    (folder / "config.yaml").write_text(yaml.safe_dump(data))
    out = folder / "envoy.yaml"
    result = subprocess.run([sys.executable, "-m", "gateway.render", "--config", str(folder / "config.yaml"),
                             "--out", str(out)], cwd=REPO_ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return out


def test_envoy_accepts_every_policy(rendered_every_policy):
    result = subprocess.run([str(ENVOY), "--mode", "validate", "-c", str(rendered_every_policy), "--base-id", "927",
                             "-l", "error"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_filters_and_routes_of_every_policy(rendered_every_policy):
    bootstrap = yaml.safe_load(rendered_every_policy.read_text())
    hcm = bootstrap["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    assert hcm["xff_num_trusted_hops"] == 1
    names = [f["name"] for f in hcm["http_filters"]]
    assert names.index("envoy.filters.http.lua") < names.index("envoy.filters.http.rbac") \
        < names.index("envoy.filters.http.jwt_authn") < names.index("envoy.filters.http.grpc_json_transcoder") \
        < len(names) - 1 - names[::-1].index("envoy.filters.http.rbac") \
        < names.index("envoy.filters.http.local_ratelimit") < names.index("envoy.filters.http.router")
    limit = next(f["typed_config"] for f in hcm["http_filters"] if f["name"] == "envoy.filters.http.local_ratelimit")
    assert "token_bucket" not in limit  # unmatched calls are not limited
    keys = [[e["key"] for e in d["entries"]] for d in limit["descriptors"]]
    assert keys == [["rate_class", "user"], ["rate_class", "remote_address"], ["rate_class", "user"]]
    user = limit["rate_limits"][0]["actions"][1]["metadata"]
    assert user["source"] == "DYNAMIC" and user["metadata_key"]["key"] == "envoy.filters.http.jwt_authn"
    routes = hcm["route_config"]["virtual_hosts"][0]["routes"]
    submit = next(r for r in routes if r["match"].get("path", "").endswith("ComputeService/SubmitJob"))
    assert submit["metadata"]["filter_metadata"]["firecrest"]["rate_class"] == "expensive"
    assert "SYSTEM_ROUTES" in (rendered_every_policy.parent / "firecrest.lua").read_text()


def test_no_policy_no_filter(raw, tmp_path):
    from gateway.render import render_text
    data = copy.deepcopy(raw)
    data["gateway"]["rate_limits"] = {}
    bootstrap, lua = render_text(parse_config(data, DEFAULT_CONFIG), tmp_path / "envoy.yaml")
    assert "- name: envoy.filters.http.rbac" not in bootstrap and "local_ratelimit" not in bootstrap
    assert "xff_num_trusted_hops: 0" in bootstrap and "SYSTEM_ROUTES" not in lua


def test_routes_naming_a_system_are_grouped_by_their_first_segment():
    methods = policies.api_methods(_api_files(DESCRIPTOR_SET))
    areas = policies.system_routes_by_area(methods)
    assert set(areas) == {"compute", "filesystem", "status"}
    assert "^/status/([^/]+)/partitions/?$" in areas["status"]
    assert all(p.startswith(f"^/{area}/") for area, patterns in areas.items() for p in patterns)
    assert sum(map(len, areas.values())) == len({policies.system_route_pattern(m.template) for m in methods} - {None})
    leading_variable = policies.ApiMethod("demo", "/x.v1.S/M", "GET", "/{system_name}/jobs")
    with pytest.raises(ValueError, match="literal segment"):
        policies.system_routes_by_area([leading_variable])
