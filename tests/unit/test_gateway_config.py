"""The rendered Envoy gateway configuration: Envoy accepts it, and it routes what it should.

Pure configuration checks (no network): gateway/render.py renders config/local.yaml into a temporary
folder, `envoy --mode validate` loads the result, and the routes, clusters, transcoder services, route
timeout and admin address are read back from the YAML. The committed example (gateway/examples/) must
be what the renderer writes today. The route table from the descriptor set: test_gateway_routes.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from gateway import render
from services.common import mesh_pki
from services.common.config import REPO_ROOT, load_config
from services.common.health_listener import health_address
from services.common.ssh.certificates import CERTIFICATOR_TIMEOUT_SECONDS
from services.common.ssh.runner import SSH_GRACE_SECONDS

ENVOY = REPO_ROOT / ".venv" / "bin" / "envoy"
CONFIG = REPO_ROOT / "config" / "local.yaml"
INTERNAL = {"certificator"}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("envoy") / "envoy.yaml"
    result = subprocess.run([sys.executable, "-m", "gateway.render", "--config", str(CONFIG), "--out", str(out)],
                            cwd=REPO_ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return out


@pytest.fixture(scope="module")
def bootstrap(rendered) -> dict:
    return yaml.safe_load(rendered.read_text())


def _hcm(bootstrap: dict) -> dict:
    (listener,) = bootstrap["static_resources"]["listeners"]
    (chain,) = listener["filter_chains"]
    (hcm,) = chain["filters"]
    return hcm["typed_config"]


def _filter(bootstrap: dict, name: str) -> dict:
    return next(f["typed_config"] for f in _hcm(bootstrap)["http_filters"] if f["name"] == name)


def _routes(bootstrap: dict) -> list[dict]:
    (vhost,) = _hcm(bootstrap)["route_config"]["virtual_hosts"]
    return vhost["routes"]


def test_envoy_accepts_the_config(rendered):
    result = subprocess.run([str(ENVOY), "--mode", "validate", "-c", str(rendered), "--base-id", "917",
                             "-l", "error"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK" in result.stdout


def test_filters_in_request_order(bootstrap):
    names = [f["name"] for f in _hcm(bootstrap)["http_filters"]]
    # The embedded default's policies: a rate limit (submissions), no IP filter, no access control list
    # (tests/unit/test_gateway_policies.py renders them all).
    assert names == ["envoy.filters.http.lua", "envoy.filters.http.jwt_authn",
                     "envoy.filters.http.grpc_json_transcoder", "envoy.filters.http.local_ratelimit",
                     "envoy.filters.http.router"]
    lua = Path(_filter(bootstrap, "envoy.filters.http.lua")["default_source_code"]["filename"])
    assert lua.is_file()
    claim = load_config(CONFIG).identity.username_claim
    assert f'local USERNAME_CLAIM = "{claim}"' in lua.read_text()


def test_every_service_but_the_certificator_is_routed(bootstrap):
    cfg = load_config(CONFIG)
    routed = {r["match"]["prefix"]: r["route"]["cluster"] for r in _routes(bootstrap)
              if "route" in r and "prefix" in r["match"]}  # event streams: test_gateway_event_streams.py
    expected = {f"/firecrest_mesh.{name}.v1.": name for name in cfg.services if name not in INTERNAL}
    expected["/grpc.reflection."] = "status"
    assert routed == expected
    clusters = {c["name"]: c for c in bootstrap["static_resources"]["clusters"]}
    for name, addr in cfg.services.items():
        if name in INTERNAL:
            continue
        endpoint = clusters[name]["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
        assert endpoint["address"]["socket_address"] == {"address": addr.host, "port_value": addr.port}
        assert clusters[name]["health_checks"][0]["grpc_health_check"] == {}
        # Health is asked on the listener that never waits for the service's event loop.
        assert endpoint["health_check_config"] == {"port_value": health_address(addr).port}
    # The last route answers everything else with 404.
    assert _routes(bootstrap)[-1] == {"match": {"prefix": "/"},
                                      "direct_response": {"status": 404, "body": {"inline_string": "Not Found"}}}


def test_certificator_is_neither_routed_nor_transcoded(bootstrap, rendered):
    cfg = load_config(CONFIG)
    certificator = cfg.services["certificator"]
    clusters = bootstrap["static_resources"]["clusters"]
    assert "certificator" not in {c["name"] for c in clusters}
    assert f"port_value: {certificator.port}\n" not in rendered.read_text()
    assert not any("certificator" in r["match"].get("prefix", "") for r in _routes(bootstrap))
    services = _filter(bootstrap, "envoy.filters.http.grpc_json_transcoder")["services"]
    assert "firecrest_mesh.status.v1.StatusService" in services
    assert not any(s.startswith("firecrest_mesh.certificator.") for s in services)


def test_only_liveness_and_the_api_description_are_public(bootstrap):
    rules = _filter(bootstrap, "envoy.filters.http.jwt_authn")["rules"]
    public = [r["match"]["path"] for r in rules if "requires" not in r]
    assert sorted(public) == sorted(["/firecrest_mesh.status.v1.StatusService/GetLiveness",
                                     "/status/liveness", "/status/liveness/",
                                     *(page.path for page in render.docs_pages())])
    assert rules[-1] == {"match": {"prefix": "/"}, "requires": {"provider_name": "identity_provider"}}
    provider = _filter(bootstrap, "envoy.filters.http.jwt_authn")["providers"]["identity_provider"]
    assert provider["from_headers"] == [{"name": "Authorization", "value_prefix": "Bearer "}]
    assert "from_params" not in provider


def test_admin_binds_loopback_only(bootstrap):
    cfg = load_config(CONFIG)
    address = bootstrap["admin"]["address"]["socket_address"]
    assert address["address"] in ("127.0.0.1", "::1", "localhost")
    assert address == {"address": cfg.gateway.admin.host, "port_value": cfg.gateway.admin.port}


def test_non_loopback_admin_is_refused(tmp_path):
    data = yaml.safe_load(CONFIG.read_text())
    data["gateway"]["admin"] = "0.0.0.0:9901"
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(data))
    result = subprocess.run([sys.executable, "-m", "gateway.render", "--config", str(config),
                             "--out", str(tmp_path / "envoy.yaml")], cwd=REPO_ROOT, capture_output=True, text=True)
    assert result.returncode == 2
    assert "gateway.admin" in result.stderr
    assert not (tmp_path / "envoy.yaml").exists()


def test_external_provider_and_host_names_validate(tmp_path):
    """A deployment shape: HTTPS identity provider (e.g. Keycloak) and services reached by host name."""
    data = yaml.safe_load(CONFIG.read_text())
    data["identity"].update(issuer="https://keycloak.example.org/realms/hpc", audience="firecrest",
                            jwks_uri="https://keycloak.example.org/realms/hpc/protocol/openid-connect/certs")
    data["services"]["status"] = "status.firecrest.svc:50051"
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(data))
    out = tmp_path / "envoy.yaml"
    result = subprocess.run([sys.executable, "-m", "gateway.render", "--config", str(config), "--out", str(out)],
                            cwd=REPO_ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    clusters = {c["name"]: c for c in yaml.safe_load(out.read_text())["static_resources"]["clusters"]}
    assert clusters["status"]["type"] == "STRICT_DNS"
    idp = clusters["identity_provider"]
    assert idp["type"] == "LOGICAL_DNS"
    assert idp["transport_socket"]["typed_config"]["sni"] == "keycloak.example.org"
    assert idp["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"] == {
        "address": "keycloak.example.org", "port_value": 443}
    result = subprocess.run([str(ENVOY), "--mode", "validate", "-c", str(out), "--base-id", "918", "-l", "error"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_lua_script_gets_the_generated_tables(bootstrap):
    lua = Path(_filter(bootstrap, "envoy.filters.http.lua")["default_source_code"]["filename"]).read_text()
    assert "local REST_ROUTES = {}" not in lua and "local REST_FIELD_NAMES = {}" not in lua
    assert '  { "^/compute/[^/]+/jobs/?$", { ["POST"] = true, ["GET"] = true } },\n' in lua
    assert '  { "^/status/liveness/?$", { ["GET"] = true } },\n' in lua
    assert '  ["num_lines"] = "lines",\n' in lua


def test_token_without_exp_is_refused_by_the_provider(bootstrap):
    provider = _filter(bootstrap, "envoy.filters.http.jwt_authn")["providers"]["identity_provider"]
    assert provider["require_expiration"] is True


def test_verified_tokens_are_cached(bootstrap):
    """jwt_authn's cache (issue 8): a repeated token skips the RS256 check; tokens of the embedded
    provider fit under its size limit."""
    provider = _filter(bootstrap, "envoy.filters.http.jwt_authn")["providers"]["identity_provider"]
    cache = provider["jwt_cache_config"]
    assert cache["jwt_cache_size"] == render.JWT_CACHE_SIZE >= 100
    assert cache["jwt_max_token_size"] >= 4096


def test_envoy_returns_free_heap_to_the_system(bootstrap):
    manager = bootstrap["memory_allocator_manager"]
    assert manager["bytes_to_release"] > 0 and manager["memory_release_interval"]


def test_codec_header_limit_answers_414(bootstrap):
    hcm = _hcm(bootstrap)
    assert hcm["max_request_headers_kb"] == render.MAX_REQUEST_HEADERS_KB
    assert render.MAX_REQUEST_HEADERS_KB * 1024 > 16384 + 8192  # room above the Lua filter's 16 KiB URL limit
    mappers = hcm["local_reply_config"]["mappers"]
    (too_large,) = [m for m in mappers
                    if m["filter"].get("status_code_filter", {}).get("comparison", {}).get("value", {})
                    .get("default_value") == 431]
    assert too_large["status_code"] == 414
    assert too_large["body_format_override"]["json_format"]["message"].startswith("URI Too Long")
    # Native gRPC replies are matched first and keep their plain message.
    assert "metadata_filter" in mappers[0]["filter"]


# --- Built from the configuration: clusters, client TLS, route timeout ---------------------------------

def _render_data(tmp_path, data: dict) -> dict:
    """The bootstrap rendered from the configuration `data` (a parsed config/local.yaml, modified)."""
    data.setdefault("state_dir", str(load_config(CONFIG).state_dir))
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(data))
    out = render.render(load_config(config), tmp_path / "envoy.yaml")
    return yaml.safe_load(out.read_text())


def test_services_are_reached_over_mutual_tls(bootstrap):
    cfg = load_config(CONFIG)
    clusters = {c["name"]: c for c in bootstrap["static_resources"]["clusters"]}
    for name in render.routed_services(cfg):
        tls = clusters[name]["transport_socket"]["typed_config"]
        assert tls["@type"].endswith("UpstreamTlsContext")
        assert tls["sni"] == name
        context = tls["common_tls_context"]
        assert context["alpn_protocols"] == ["h2"]
        assert context["tls_certificates"] == [{
            "certificate_chain": {"filename": str(mesh_pki.cert_file(cfg, mesh_pki.GATEWAY))},
            "private_key": {"filename": str(mesh_pki.key_file(cfg, mesh_pki.GATEWAY))}}]
        assert context["validation_context"] == {
            "trusted_ca": {"filename": str(mesh_pki.ca_file(cfg))},
            "match_typed_subject_alt_names": [{"san_type": "DNS", "matcher": {"exact": name}}]}
    assert "transport_socket" not in clusters["identity_provider"]  # the embedded provider: http on loopback


def test_client_tls_only_when_gateway_tls_names_a_certificate(tmp_path, bootstrap):
    (plain,) = bootstrap["static_resources"]["listeners"][0]["filter_chains"]
    assert "transport_socket" not in plain
    data = yaml.safe_load(CONFIG.read_text())
    data["gateway"]["tls"] = {"certificate": "/etc/gw/gateway.crt", "private_key": "/etc/gw/gateway.key"}
    (chain,) = _render_data(tmp_path, data)["static_resources"]["listeners"][0]["filter_chains"]
    tls = chain["transport_socket"]["typed_config"]
    assert tls["@type"].endswith("DownstreamTlsContext")
    assert tls["common_tls_context"] == {
        "alpn_protocols": ["h2", "http/1.1"],
        "tls_certificates": [{"certificate_chain": {"filename": "/etc/gw/gateway.crt"},
                              "private_key": {"filename": "/etc/gw/gateway.key"}}]}


def _route_timeouts(bootstrap: dict) -> set[str]:
    # Event streams (test_gateway_event_streams.py) have no timeout on purpose.
    return {r["route"]["timeout"] for r in _routes(bootstrap) if "route" in r and "prefix" in r["match"]}


def test_route_timeout_of_the_embedded_default(bootstrap):
    # 5 s certificate + 5 s connection + 5 s login + 2 × (10 s command + 3 s grace) + (30 s sacct + 3 s
    # grace) + 5 s → 80 s.
    assert render.route_timeout(load_config(CONFIG)) == 80
    assert _route_timeouts(bootstrap) == {"80s"}


@pytest.mark.parametrize("ssh_timeouts, scheduler_timeout, accounting_timeout, expected", [
    ({"command_execution": 100}, 10, 30, 330),    # 15 + 3 × 103 + 5 = 329
    ({"command_execution": 5}, 120, 30, 390),     # the scheduler's timeout is the longer: 15 + 3 × 123 + 5 = 389
    ({"login": 30, "connection": 20}, 10, 30, 120),  # 5 + 20 + 30 + 2 × 13 + 33 + 5 = 119
    ({}, 10, 200, 250),                           # a slow accounting database: 15 + 2 × 13 + 203 + 5 = 249
])
def test_route_timeout_follows_the_slowest_system(tmp_path, ssh_timeouts, scheduler_timeout, accounting_timeout,
                                                  expected):
    data = yaml.safe_load(CONFIG.read_text())
    slow = json.loads(json.dumps(data["systems"][0]))
    slow["name"] = "slow"
    slow["ssh"]["timeouts"].update(ssh_timeouts)
    slow["scheduler"]["timeout"] = scheduler_timeout
    slow["scheduler"]["accounting_timeout"] = accounting_timeout
    data["systems"].append(slow)
    assert _route_timeouts(_render_data(tmp_path, data)) == {f"{expected}s"}
    # Longer than a login and the three commands of an ambiguous submission on that system, or than two
    # controller commands and an accounting query (a job by id the controller no longer holds).
    cfg = load_config(tmp_path / "config.yaml")
    system = cfg.system("slow")
    controller = max(system.ssh.timeouts.command_execution, system.scheduler.timeout) + SSH_GRACE_SECONDS
    accounting = max(controller, system.scheduler.accounting_timeout + SSH_GRACE_SECONDS)
    assert expected > (CERTIFICATOR_TIMEOUT_SECONDS + system.ssh.timeouts.connection + system.ssh.timeouts.login
                       + (render.SEQUENTIAL_COMMANDS - 1) * controller + accounting)


# --- Error bodies: the Lua filter writes them from the gRPC status and the transcoder's 400s ---------

def test_grpc_errors_reach_the_lua_filter_as_a_status(bootstrap, rendered):
    transcoder = _filter(bootstrap, "envoy.filters.http.grpc_json_transcoder")
    assert transcoder["convert_grpc_status"] is False
    mappers = _hcm(bootstrap)["local_reply_config"]["mappers"]
    handed_over = [m for m in mappers if m.get("headers_to_add")]
    assert [h["header"] for m in handed_over for h in m["headers_to_add"]] == [
        {"key": render.ERROR_TYPE_HEADER, "value": "validation"}]
    assert handed_over[0]["body_format_override"] == {"text_format_source": {"inline_string": "%LOCAL_REPLY_BODY%"}}
    lua = rendered.with_name("firecrest.lua").read_text()
    assert f'local ERROR_TYPE_HEADER = "{render.ERROR_TYPE_HEADER}"' in lua
    assert f"local MAX_URL_BYTES = {render.MAX_URL_BYTES}\n" in lua


# --- The committed example: gateway/examples/ is what `make gateway-example` writes -----------------

def test_an_answer_over_the_response_limit_is_a_413_naming_the_limit(bootstrap, tmp_path):
    """The transcoder buffers at most the response limit (default: twice the largest max_ops_file_size,
    or gateway.max_response_body_bytes); its failure beyond that becomes a 413 with the limit named."""
    config = load_config(CONFIG)
    limit = render.response_body_limit(config)
    assert limit == 2 * max(s.max_ops_file_size for s in config.systems)
    assert _filter(bootstrap, "envoy.filters.http.grpc_json_transcoder")["max_response_body_size"] == limit
    (mapper,) = [m for m in _hcm(bootstrap)["local_reply_config"]["mappers"]
                 if "response_buffer_size_limit_reached" in json.dumps(m["filter"])]
    assert mapper["status_code"] == 413
    assert mapper["body_format_override"]["json_format"]["message"] == render.response_too_large_message(limit)
    assert "(10 MiB)" in render.response_too_large_message(limit)
    assert "(64 KiB)" in render.response_too_large_message(64 * 1024)

    data = yaml.safe_load(CONFIG.read_text())
    data["gateway"]["max_response_body_bytes"] = 65536
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(data))
    out = tmp_path / "envoy.yaml"
    subprocess.run([sys.executable, "-m", "gateway.render", "--config", str(tmp_path / "config.yaml"), "--out", str(out)],
                   cwd=REPO_ROOT, check=True, capture_output=True)
    assert _filter(yaml.safe_load(out.read_text()), "envoy.filters.http.grpc_json_transcoder")[
        "max_response_body_size"] == 65536


def test_the_committed_example_is_fresh(tmp_path):
    written = render.render_example(tmp_path)
    assert sorted(p.name for p in render.EXAMPLE_DIR.iterdir()) == sorted(p.name for p in written)
    for fresh in written:
        committed = render.EXAMPLE_DIR / fresh.name
        assert committed.read_text() == fresh.read_text(), \
            f"{committed.relative_to(REPO_ROOT)} is stale: run `make gateway-example` and commit it"


def test_the_example_names_no_machine_path():
    text = (render.EXAMPLE_DIR / render.EXAMPLE_BOOTSTRAP).read_text()
    assert str(REPO_ROOT) not in text
    assert '{filename: "${STATE}/mesh-pki/envoy.crt"}' in text
    assert 'filename: "${STATE}/envoy/firecrest.lua"' in text
    assert 'proto_descriptor: "${REPO}/gen/envoy/api_descriptor.pb"' in text


def test_busy_or_unhealthy_service_is_still_routed_to(bootstrap):
    """Issue 13: a single endpoint that looks unhealthy still gets requests (panic routing), health
    checks tolerate a slow answer, and only failures Envoy sees itself (not a service's 5xx) eject."""
    clusters = {c["name"]: c for c in bootstrap["static_resources"]["clusters"]}
    for name in load_config(CONFIG).services:
        if name in INTERNAL:
            continue
        cluster = clusters[name]
        assert cluster["common_lb_config"]["healthy_panic_threshold"]["value"] > 0
        check = cluster["health_checks"][0]
        assert check["unhealthy_threshold"] >= 3
        outlier = cluster["outlier_detection"]
        assert outlier["split_external_local_origin_errors"] is True
        for rule in ("enforcing_consecutive_5xx", "enforcing_consecutive_gateway_failure",
                     "enforcing_success_rate", "enforcing_local_origin_success_rate"):
            assert outlier[rule] == 0, rule
        assert outlier["max_ejection_percent"] < 100
