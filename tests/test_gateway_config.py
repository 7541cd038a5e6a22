"""The rendered Envoy gateway configuration: Envoy accepts it, and it routes what it should.

Pure configuration checks (no network): envoy/render.py renders config/local.yaml into a temporary
folder, `envoy --mode validate` loads the result, and the routes, clusters, transcoder services and
admin address are read back from the YAML.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from services.common.config import REPO_ROOT, load_config

ENVOY = REPO_ROOT / ".venv" / "bin" / "envoy"
CONFIG = REPO_ROOT / "config" / "local.yaml"
INTERNAL = {"certificator"}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("envoy") / "envoy.yaml"
    # `python -m envoy.render` from the repository root (a PyPI package is also called `envoy`).
    result = subprocess.run([sys.executable, "-m", "envoy.render", "--config", str(CONFIG), "--out", str(out)],
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
    assert names == ["envoy.filters.http.lua", "envoy.filters.http.jwt_authn",
                     "envoy.filters.http.grpc_json_transcoder", "envoy.filters.http.router"]
    lua = Path(_filter(bootstrap, "envoy.filters.http.lua")["default_source_code"]["filename"])
    assert lua.is_file()
    claim = load_config(CONFIG).identity.username_claim
    assert f'local USERNAME_CLAIM = "{claim}"' in lua.read_text()


def test_every_service_but_the_certificator_is_routed(bootstrap):
    cfg = load_config(CONFIG)
    routed = {r["match"]["prefix"]: r["route"]["cluster"] for r in _routes(bootstrap) if "route" in r}
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
    # The last route answers everything else with 404.
    assert _routes(bootstrap)[-1] == {"match": {"prefix": "/"},
                                      "direct_response": {"status": 404, "body": {"inline_string": "Not Found"}}}


def test_certificator_is_neither_routed_nor_transcoded(bootstrap, rendered):
    cfg = load_config(CONFIG)
    certificator = cfg.services["certificator"]
    clusters = bootstrap["static_resources"]["clusters"]
    assert "certificator" not in {c["name"] for c in clusters}
    assert f"port_value: {certificator.port}\n" not in rendered.read_text()
    assert not any("certificator" in r["match"]["prefix"] for r in _routes(bootstrap))
    services = _filter(bootstrap, "envoy.filters.http.grpc_json_transcoder")["services"]
    assert "firecrest_mesh.status.v1.StatusService" in services
    assert not any(s.startswith("firecrest_mesh.certificator.") for s in services)


def test_only_liveness_is_public(bootstrap):
    rules = _filter(bootstrap, "envoy.filters.http.jwt_authn")["rules"]
    public = [r["match"]["path"] for r in rules if "requires" not in r]
    assert sorted(public) == ["/firecrest_mesh.status.v1.StatusService/GetLiveness",
                              "/status/liveness", "/status/liveness/"]
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
    result = subprocess.run([sys.executable, "-m", "envoy.render", "--config", str(config),
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
    result = subprocess.run([sys.executable, "-m", "envoy.render", "--config", str(config), "--out", str(out)],
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
