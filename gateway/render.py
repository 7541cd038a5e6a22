"""Renders the Envoy gateway's bootstrap configuration from the project configuration.

The gateway is one Envoy listener that serves REST/JSON (FirecREST v2 wire format) and native gRPC on
the same port: it strips client-sent identity headers, verifies the access token, transcodes
REST ↔ gRPC with the descriptor set generated from protos/, and routes `/firecrest_mesh.<svc>.v1.*`
to the service `<svc>` of `config.services`. The certificator is internal and never routed.

    python -m gateway.render [--config FILE] [--out PATH]   (default out: <state>/envoy/envoy.yaml)

Writes PATH and, beside it, `firecrest.lua`: gateway/firecrest.lua with the configured username claim and
two tables generated from the descriptor set's `google.api.http` rules (the REST routes and their
methods, for 405/OPTIONS answers; proto field names that json_name renames, for error messages).
The result reads top-down: listener → HTTP filters in request order → routes → local replies →
clusters → admin. The launcher calls `render()`; tests render into a temporary folder and run
`envoy --mode validate` on the result.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import yaml
from google.api import annotations_pb2  # registers the google.api.http option for parsing
from google.protobuf import descriptor_pb2

if __package__ in (None, ""):  # run as a script: python gateway/render.py
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from services.common import mesh_pki  # noqa: E402
from services.common.config import REPO_ROOT, Address, Config, ConfigError, load_config  # noqa: E402

DESCRIPTOR_SET = REPO_ROOT / "gen" / "envoy" / "api_descriptor.pb"
LUA_SOURCE = Path(__file__).resolve().parent / "firecrest.lua"
API_PACKAGE = re.compile(r"^firecrest_mesh\.([a-z0-9_]+)\.v1$")
INTERNAL_SERVICES = {"certificator"}  # never routed, never transcoded
LIVENESS_REST_PATHS = ("/status/liveness", "/status/liveness/")
LIVENESS_GRPC_PATH = "/firecrest_mesh.status.v1.StatusService/GetLiveness"
JWT_PROVIDER = "identity_provider"
IDP_CLUSTER = "identity_provider"
ROUTE_TIMEOUT = "60s"
MIB = 1024 * 1024
# The Lua script reads the username claim from this line; render() substitutes the configured one.
LUA_CLAIM_LINE = re.compile(r'^local USERNAME_CLAIM = "[^"\n]*"', re.MULTILINE)
# ... and the REST routes and field names from these lines (`{}` in gateway/firecrest.lua).
LUA_ROUTES_LINE = re.compile(r"^local REST_ROUTES = \{\}.*$", re.MULTILINE)
LUA_FIELD_NAMES_LINE = re.compile(r"^local REST_FIELD_NAMES = \{\}.*$", re.MULTILINE)
# Request line + headers accepted by Envoy's codec (above: 431, which local_reply_config makes a 414).
# Above the Lua filter's own URL limit (16 KiB → 414) plus room for ordinary headers and a token.
MAX_REQUEST_HEADERS_KB = 96
HTTP_RULE_KINDS = ("get", "put", "post", "delete", "patch")


@dataclass(frozen=True)
class ApiService:
    """A gRPC service of the public API, e.g. `firecrest_mesh.status.v1.StatusService` of `status`."""
    name: str  # config key and cluster name: "status"
    full_name: str  # "firecrest_mesh.status.v1.StatusService"


def api_services(descriptor_set: Path) -> list[ApiService]:
    """Every `firecrest_mesh.<name>.v1` service in the descriptor set, internal ones excluded."""
    fds = descriptor_pb2.FileDescriptorSet.FromString(descriptor_set.read_bytes())
    found = []
    for f in fds.file:
        if (m := API_PACKAGE.match(f.package)) and m.group(1) not in INTERNAL_SERVICES:
            found += [ApiService(m.group(1), f"{f.package}.{s.name}") for s in f.service]
    return sorted(found, key=lambda s: s.full_name)


def _api_files(descriptor_set: Path):
    """The descriptor set's files of public API packages (firecrest_mesh.<name>.v1, not internal)."""
    fds = descriptor_pb2.FileDescriptorSet.FromString(descriptor_set.read_bytes())
    return [f for f in fds.file if (m := API_PACKAGE.match(f.package)) and m.group(1) not in INTERNAL_SERVICES]


def http_rules(descriptor_set: Path) -> list[tuple[str, str]]:
    """(METHOD, path template) of every google.api.http rule (additional bindings included) of the API."""
    rules = []
    for f in _api_files(descriptor_set):
        for service in f.service:
            for method in service.method:
                if not method.options.HasExtension(annotations_pb2.http):
                    continue
                top = method.options.Extensions[annotations_pb2.http]
                for rule in (top, *top.additional_bindings):
                    kind = rule.WhichOneof("pattern")
                    if kind == "custom":
                        rules.append((rule.custom.kind.upper(), rule.custom.path))
                    elif kind in HTTP_RULE_KINDS:
                        rules.append((kind.upper(), getattr(rule, kind)))
    return rules


def _lua_literal(text: str) -> str:
    """`text` with Lua pattern magic characters escaped."""
    return re.sub(r"([\^$()%.\[\]*+\-?])", r"%\1", text)


def template_pattern(template: str) -> str:
    """The Lua pattern of a google.api.http path template, as the transcoder matches it: a variable or
    `*` is one segment, `**` any rest, a trailing slash optional. `/compute/{system_name}/jobs` →
    `^/compute/[^/]+/jobs/?$`."""
    if not template.startswith("/"):
        raise ValueError(f"path template {template!r}: must start with /")
    body, verb = template, ""
    last = template.rsplit("/", 1)[-1]
    if ":" in last and "}" not in last.rsplit(":", 1)[1]:
        body, verb = template.rsplit(":", 1)
    # A variable stands for its segments (`{name}` = `{name=*}`).
    body = re.sub(r"\{[^}=]*(?:=([^}]*))?\}", lambda m: m.group(1) or "*", body)
    segments = {"*": "[^/]+", "**": ".*"}
    pattern = "/".join(segments.get(seg) or _lua_literal(seg) for seg in body.split("/"))
    return "^" + pattern + (_lua_literal(":" + verb) + "$" if verb else "/?$")


def rest_routes(descriptor_set: Path) -> dict[str, list[str]]:
    """Lua path pattern → the HTTP methods of the API's rules with that path (in rule order)."""
    routes: dict[str, list[str]] = {}
    for method, template in http_rules(descriptor_set):
        methods = routes.setdefault(template_pattern(template), [])
        if method not in methods:
            methods.append(method)
    return routes


def _json_name(name: str) -> str:
    """protoc's default json_name: `num_lines` → `numLines`."""
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def rest_field_names(descriptor_set: Path) -> dict[str, str]:
    """Proto field name → REST name, for the names that an explicit json_name renames in every message
    of the API that has a field of that name (`num_lines` → `lines`). Ambiguous names are left out."""
    seen: dict[str, set[str]] = {}

    def walk(message):
        for field in message.field:
            renamed = field.json_name and field.json_name not in (field.name, _json_name(field.name))
            seen.setdefault(field.name, set()).add(field.json_name if renamed else field.name)
        for nested in message.nested_type:
            walk(nested)

    for f in _api_files(descriptor_set):
        for message in f.message_type:
            walk(message)
    return {name: next(iter(rest)) for name, rest in sorted(seen.items())
            if len(rest) == 1 and next(iter(rest)) != name}


def _lua_string(text: str) -> str:
    if re.search(r'[\x00-\x1f"\\]', text):
        raise ValueError(f"{text!r}: unexpected character for a generated Lua string")
    return f'"{text}"'


def lua_rest_tables(descriptor_set: Path) -> tuple[str, str]:
    """The `local REST_ROUTES = {...}` and `local REST_FIELD_NAMES = {...}` lines of the Lua script."""
    routes = "\n".join(
        f"  {{ {_lua_string(pattern)}, {{ {', '.join(f'[{_lua_string(m)}] = true' for m in methods)} }} }},"
        for pattern, methods in rest_routes(descriptor_set).items())
    names = "\n".join(f"  [{_lua_string(k)}] = {_lua_string(v)},"
                      for k, v in rest_field_names(descriptor_set).items())
    return (f"local REST_ROUTES = {{ -- generated by gateway/render.py from the google.api.http rules\n{routes}\n}}",
            f"local REST_FIELD_NAMES = {{ -- generated by gateway/render.py from the json_name options\n{names}\n}}")


def routed_services(cfg: Config) -> dict[str, Address]:
    """The services of `config.services` the gateway routes to (all but the internal ones)."""
    return {name: addr for name, addr in cfg.services.items() if name not in INTERNAL_SERVICES}


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


def _is_loopback(host: str) -> bool:
    return host == "localhost" or (_is_ip(host) and ipaddress.ip_address(host).is_loopback)


def _y(value, indent: int) -> str:
    """`value` as a YAML block indented by `indent` spaces (no trailing newline)."""
    text = yaml.safe_dump(value, sort_keys=False, default_flow_style=False, width=10_000, allow_unicode=True)
    return "\n".join(" " * indent + line for line in text.rstrip("\n").splitlines())


def _q(text: str) -> str:
    """A YAML scalar for `text` (JSON strings are valid YAML)."""
    return json.dumps(text)


def _socket(host: str, port: int) -> dict:
    return {"socket_address": {"address": host, "port_value": port}}


def _cluster_address(name: str, host: str, port: int) -> dict:
    """Cluster type and endpoint: STATIC for an IP literal, STRICT_DNS for a host name."""
    return {
        "type": "STATIC" if _is_ip(host) else "STRICT_DNS",
        "load_assignment": {"cluster_name": name,
                            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": _socket(host, port)}}]}]},
    }


def _mesh_tls_socket(cfg: Config, service: str) -> dict:
    """Mutual TLS to a service: Envoy presents its mesh certificate and accepts only a server
    certificate from the mesh CA that names `service` (ALPN h2 for gRPC)."""
    return {"name": "envoy.transport_sockets.tls", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
        "sni": service,
        "common_tls_context": {
            "alpn_protocols": ["h2"],
            "tls_certificates": [{
                "certificate_chain": {"filename": str(mesh_pki.cert_file(cfg, mesh_pki.GATEWAY))},
                "private_key": {"filename": str(mesh_pki.key_file(cfg, mesh_pki.GATEWAY))}}],
            "validation_context": {
                "trusted_ca": {"filename": str(mesh_pki.ca_file(cfg))},
                "match_typed_subject_alt_names": [{"san_type": "DNS", "matcher": {"exact": service}}]}}}}


def _client_tls(cfg: Config) -> str:
    """The listener's TLS for clients when `gateway.tls` names a certificate (HTTP/1.1 and h2 by ALPN),
    as YAML lines that open the filter chain; a comment when clients speak plaintext."""
    gw = cfg.gateway
    if gw.tls_certificate is None:
        return "      # Clients: plaintext (gateway.tls names no certificate)."
    socket = {"transport_socket": {"name": "envoy.transport_sockets.tls", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
        "common_tls_context": {
            "alpn_protocols": ["h2", "http/1.1"],
            "tls_certificates": [{"certificate_chain": {"filename": str(gw.tls_certificate)},
                                  "private_key": {"filename": str(gw.tls_private_key)}}]}}}}
    return "      # Clients: TLS with gateway.tls's certificate.\n" + _y(socket, 6)


def _service_cluster(name: str, addr: Address, cfg: Config) -> dict:
    cluster = {"name": name, "connect_timeout": "1s"}
    cluster.update(_cluster_address(name, addr.host, addr.port))
    cluster["transport_socket"] = _mesh_tls_socket(cfg, name)
    cluster.update({
        "typed_extension_protocol_options": {"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
            "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
            "explicit_http_config": {"http2_protocol_options": {
                "initial_stream_window_size": MIB, "initial_connection_window_size": 4 * MIB}}}},
        "common_lb_config": {"healthy_panic_threshold": {"value": 0}},
        "health_checks": [{"timeout": "1s", "interval": "5s", "no_traffic_interval": "5s",
                           "unhealthy_threshold": 2, "healthy_threshold": 1, "grpc_health_check": {}}],
    })
    return cluster


def _idp_cluster(jwks_uri: str) -> dict:
    url = urlsplit(jwks_uri)
    if url.scheme not in ("http", "https") or not url.hostname:
        raise ConfigError(f"identity.jwks_uri: expected an http(s) URL, got {jwks_uri!r}")
    port = url.port or (443 if url.scheme == "https" else 80)
    cluster = {"name": IDP_CLUSTER, "connect_timeout": "2s"}
    cluster.update(_cluster_address(IDP_CLUSTER, url.hostname, port))
    if cluster["type"] == "STRICT_DNS":
        cluster["type"] = "LOGICAL_DNS"  # an external provider: follow its DNS, one connection target
        cluster["dns_lookup_family"] = "V4_PREFERRED"
    if url.scheme == "https":
        cluster["transport_socket"] = {"name": "envoy.transport_sockets.tls", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
            "sni": url.hostname,
            "common_tls_context": {"validation_context": {
                "trusted_ca": {"filename": "/etc/ssl/certs/ca-certificates.crt"},
                "match_typed_subject_alt_names": [{"san_type": "DNS", "matcher": {"exact": url.hostname}}]}}}}
    return cluster


def _error_body(error_type: str, user_claim: str, message: str = "%LOCAL_REPLY_BODY%") -> dict:
    """The FirecREST v2 error object for Envoy's own replies (`null` user before authentication)."""
    return {"errorType": error_type, "message": message, "causedBy": None, "data": None,
            "user": f"%DYNAMIC_METADATA(envoy.filters.http.jwt_authn:jwt_payload:{user_claim})%"}


def response_body_limit(cfg: Config) -> int:
    """Largest unary JSON response: room for the biggest `view`/download of any system, JSON-escaped."""
    largest_file = max((s.max_ops_file_size for s in cfg.systems), default=5 * MIB)
    return max(cfg.gateway.max_request_body_bytes, 2 * largest_file)


def render(cfg: Config, out: Path, descriptor_set: Path = DESCRIPTOR_SET) -> Path:
    """Writes the bootstrap to `out` and the Lua script beside it; returns `out`."""
    gw, idp = cfg.gateway, cfg.identity
    if not _is_loopback(gw.admin.host):
        raise ConfigError(f"gateway.admin: the admin interface must bind loopback only, got {gw.admin}")
    services = api_services(descriptor_set)
    routed = routed_services(cfg)
    for s in services:
        if s.name not in routed:
            print(f"render: warning: {s.full_name} is in the API but services.{s.name} is not configured "
                  "(its calls will answer 404)", file=sys.stderr)
    described = {s.name for s in services}
    for name in routed:
        if name not in described:
            print(f"render: warning: services.{name} has no firecrest_mesh.{name}.v1 service in "
                  f"{descriptor_set} (run scripts/gen.sh?)", file=sys.stderr)
    claim = idp.username_claim
    lua_source = LUA_SOURCE.read_text()
    if not LUA_CLAIM_LINE.search(lua_source):
        raise RuntimeError(f"{LUA_SOURCE}: no 'local USERNAME_CLAIM = \"...\"' line to substitute")
    lua_source = LUA_CLAIM_LINE.sub(lambda _: f"local USERNAME_CLAIM = {json.dumps(claim)}", lua_source, 1)
    routes_line, names_line = lua_rest_tables(descriptor_set)
    for line, table in ((LUA_ROUTES_LINE, routes_line), (LUA_FIELD_NAMES_LINE, names_line)):
        if not line.search(lua_source):
            raise RuntimeError(f"{LUA_SOURCE}: no '{line.pattern}' line to substitute")
        lua_source = line.sub(lambda _, table=table: table, lua_source, 1)

    out = Path(out).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    lua_out = out.with_name("firecrest.lua")
    lua_out.write_text(lua_source)

    public_paths = [{"match": {"path": p}} for p in (*LIVENESS_REST_PATHS, LIVENESS_GRPC_PATH)]
    routes = [{"match": {"prefix": f"/firecrest_mesh.{name}.v1."},
               "route": {"cluster": name, "timeout": ROUTE_TIMEOUT}} for name in routed]
    if "status" in routed:  # the status service serves reflection for the whole API
        routes.append({"match": {"prefix": "/grpc.reflection."},
                       "route": {"cluster": "status", "timeout": ROUTE_TIMEOUT}})
    clusters = [_service_cluster(name, addr, cfg) for name, addr in routed.items()] + [_idp_cluster(idp.jwks_uri)]
    user_meta = f"%DYNAMIC_METADATA(envoy.filters.http.jwt_authn:jwt_payload:{claim})%"

    text = f"""\
# Envoy bootstrap of the firecrest-mesh gateway. GENERATED by gateway/render.py from
# {cfg.path} and {descriptor_set}: edit those, not this file.
# Reads top-down: listener → HTTP filters in request order → routes → Envoy's own replies → clusters → admin.

static_resources:
  listeners:
  # One port for REST/JSON (HTTP/1.1 or h2c) and native gRPC (h2c): codec_type AUTO picks per connection.
  - name: gateway
    address: {json.dumps(_socket(gw.listen.host, gw.listen.port))}
    filter_chains:
    - name: clients
{_client_tls(cfg)}
      filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: gateway
          codec_type: AUTO
          # The edge proxy: the client's address is the peer's, paths are normalised before any rule sees them.
          use_remote_address: true
          normalize_path: true
          merge_slashes: true
          # Request line + headers. A longer URL is refused by the Lua filter with 414 first (16 KiB); what
          # the codec refuses (431, before any filter sees the request) local_reply_config makes a 414.
          max_request_headers_kb: {MAX_REQUEST_HEADERS_KB}
          # Every request gets an X-Request-ID (services log it; clients see it in every response).
          generate_request_id: true
          always_set_request_id_in_response: true
          # One JSON line per request on stdout. No query strings (a client may put a token there) and
          # never the Authorization header. `path` is the REST path, `grpc_path` the method called.
          access_log:
          - name: envoy.access_loggers.stdout
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog
              log_format:
                formatters:
                - name: envoy.formatter.req_without_query
                  typed_config:
                    "@type": type.googleapis.com/envoy.extensions.formatter.req_without_query.v3.ReqWithoutQuery
                json_format:
                  time: "%START_TIME%"
                  request_id: "%REQ(X-REQUEST-ID)%"
                  method: "%DYNAMIC_METADATA(envoy.filters.http.lua:method)%"
                  path: "%DYNAMIC_METADATA(envoy.filters.http.lua:path)%"
                  grpc_path: "%REQ_WITHOUT_QUERY(:PATH)%"
                  protocol: "%PROTOCOL%"
                  status: "%RESPONSE_CODE%"
                  grpc_status: "%GRPC_STATUS%"
                  details: "%RESPONSE_CODE_DETAILS%"
                  flags: "%RESPONSE_FLAGS%"
                  duration_ms: "%DURATION%"
                  bytes_received: "%BYTES_RECEIVED%"
                  bytes_sent: "%BYTES_SENT%"
                  upstream_cluster: "%UPSTREAM_CLUSTER%"
                  client: "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%"
                  user: {_q(user_meta)}

          http_filters:
          # (a) Lua, first on the request and therefore last on the response. Request: drops client-sent
          #     identity headers before anything reads them, records method/path for the access log,
          #     spells the Bearer scheme `Bearer`; before authentication (as FirecREST v2): 414 for an
          #     over-long URL, 405 + Allow for a wrong method on a REST route of the API, 204 + Allow
          #     for OPTIONS (the routes: a table generated from the google.api.http rules).
          #     Response (REST only): F7T-* headers, x-http-code → :status, 204 without body,
          #     transcoder errors → FirecREST error object, F7T-AuthUsername on errors.
          - name: envoy.filters.http.lua
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua
              default_source_code:
                filename: {_q(str(lua_out))}

          # (b) JWT authentication, before the transcoder so that its rules see REST paths as well as
          #     gRPC ones. The verified username goes to services as `x-firecrest-username`; the token
          #     itself is forwarded because services present it to the certificator.
          - name: envoy.filters.http.jwt_authn
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication
              providers:
                {JWT_PROVIDER}:
                  issuer: {_q(idp.issuer)}
                  audiences: [{_q(idp.audience)}]
                  remote_jwks:
                    http_uri:
                      uri: {_q(idp.jwks_uri)}
                      cluster: {IDP_CLUSTER}
                      timeout: 5s
                    cache_duration: 300s
                    # Fetch the keys at start-up, do not hold the listener for them, retry soon on failure.
                    async_fetch:
                      fast_listener: true
                      failed_refetch_duration: 2s
                    retry_policy:
                      num_retries: 3
                  # A token without `exp` would never expire: refused (401).
                  require_expiration: true
                  # The header only: no `?access_token=` in URLs (they end up in logs). The Lua filter
                  # spells the scheme `Bearer ` whatever the client's case (value_prefix is case-sensitive).
                  from_headers:
                  - name: Authorization
                    value_prefix: "Bearer "
                  forward: true
                  claim_to_headers:
                  - header_name: x-firecrest-username
                    claim_name: {_q(claim)}
                  # For the access log, Envoy's own error bodies and the Lua script (error `user`).
                  payload_in_metadata: jwt_payload
              rules:
              # Public: liveness, as REST (both spellings) and as gRPC.
{_y(public_paths, 14)}
              # Everything else needs a valid token: REST, gRPC, reflection, unknown paths.
              - match: {{prefix: /}}
                requires: {{provider_name: {JWT_PROVIDER}}}

          # (c) REST/JSON ↔ gRPC for every public API service of the descriptor set. Native gRPC
          #     requests (content-type application/grpc) pass through untouched.
          - name: envoy.filters.http.grpc_json_transcoder
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.grpc_json_transcoder.v3.GrpcJsonTranscoder
              proto_descriptor: {_q(str(Path(descriptor_set).resolve()))}
              services:
{_y([s.full_name for s in services], 14)}
              # gRPC errors become a JSON body {{"code","message"}} that Lua reshapes (else: empty body).
              convert_grpc_status: true
              print_options:
                always_print_primitive_fields: true   # FirecREST prints 0, "" and false
                preserve_proto_field_names: false     # lowerCamelCase keys (json_name)
              # Clean 404/400 answers instead of passing unknown requests on.
              request_validation_options:
                reject_unknown_method: true
                reject_unknown_query_parameters: true
                reject_binding_body_field_collisions: true
              # `+` in a query string is a space (form encoding: httpx/pyfirecrest send `path=a+b`).
              query_param_unescape_plus: true
              max_request_body_size: {gw.max_request_body_bytes}
              max_response_body_size: {response_body_limit(cfg)}

          # (d) The router. No x-envoy-* headers towards clients or services.
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
              suppress_envoy_headers: true

          # Routes: after transcoding Envoy selects the route again on the gRPC path (/pkg.Service/Method),
          # so every route matches gRPC paths: one prefix per service package.
          route_config:
            name: firecrest
            virtual_hosts:
            - name: firecrest
              domains: ["*"]
              routes:
{_y(routes, 14)}
              # Anything else (REST requests for unknown paths already got a 404 from the transcoder):
              # FirecREST's 404; local_reply_config below writes the body.
              - match: {{prefix: /}}
                direct_response:
                  status: 404
                  body: {{inline_string: Not Found}}

          # Envoy's own replies (JWT 401/403, transcoder 400/404/413, 503 no healthy upstream, 504 timeout,
          # the 404 above, the Lua filter's 405/414) get the FirecREST error body. Native gRPC callers get a plain grpc-message.
          local_reply_config:
            mappers:
            - filter:  # native gRPC: the Lua filter marked the request
                metadata_filter:
                  matcher:
                    filter: envoy.filters.http.lua
                    path: [{{key: grpc}}]
                    value: {{bool_match: true}}
                  match_if_key_not_found: false
              body_format_override:
                text_format_source: {{inline_string: "%LOCAL_REPLY_BODY%"}}
            - filter:  # a 400 from Envoy is the transcoder rejecting the request: a validation error
                status_code_filter:
                  comparison:
                    op: EQ
                    value: {{default_value: 400, runtime_key: firecrest.local_reply.validation_status}}
              body_format_override:
                json_format:
{_y(_error_body("validation", claim), 18)}
            - filter:  # the codec refused a request line + headers over max_request_headers_kb: in an API
                       # that is an over-long URL (the Lua filter answers 414 for shorter ones)
                status_code_filter:
                  comparison:
                    op: EQ
                    value: {{default_value: 431, runtime_key: firecrest.local_reply.headers_too_large_status}}
              status_code: 414
              body_format_override:
                json_format:
{_y(_error_body("error", claim, f"URI Too Long: the URL and headers exceed {MAX_REQUEST_HEADERS_KB} KiB"), 18)}
            - filter:  # OPTIONS answered by the Lua filter: no body
                status_code_filter:
                  comparison:
                    op: EQ
                    value: {{default_value: 204, runtime_key: firecrest.local_reply.no_content_status}}
              body_format_override:
                text_format_source: {{inline_string: ""}}
            - filter:  # unknown path (transcoder, or the catch-all route): FirecREST's text
                status_code_filter:
                  comparison:
                    op: EQ
                    value: {{default_value: 404, runtime_key: firecrest.local_reply.not_found_status}}
              body_format_override:
                json_format:
{_y(_error_body("error", claim, "Not Found"), 18)}
            body_format:
              json_format:
{_y(_error_body("error", claim), 16)}

  clusters:
  # One per routed service, over mutual TLS with the mesh CA (h2 by ALPN); 1 MiB stream windows bound what Envoy buffers for
  # streamed downloads. Active gRPC health checks (grpc.health.v1, service "") run every 5 s, with or
  # without traffic; healthy_panic_threshold 0: an unhealthy backend gets no requests (503 instead).
  # Last: the identity provider, from which jwt_authn fetches the JWKS.
{_y(clusters, 2)}

# Admin (stats, /clusters, /config_dump): loopback only.
admin:
  address: {json.dumps(_socket(gw.admin.host, gw.admin.port))}
"""
    yaml.safe_load(text)  # a syntax error here is a bug in this file
    out.write_text(text)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", help="configuration file (default: FIRECREST_MESH_CONFIG or config/local.yaml)")
    parser.add_argument("--out", help="output file (default: <state>/envoy/envoy.yaml)")
    parser.add_argument("--descriptor-set", default=str(DESCRIPTOR_SET), help="generated descriptor set")
    args = parser.parse_args(argv)
    try:
        cfg = load_config(args.config)
        out = render(cfg, Path(args.out) if args.out else cfg.state("envoy", "envoy.yaml"),
                     Path(args.descriptor_set))
    except ConfigError as exc:
        print(f"render: {exc}", file=sys.stderr)
        return 2
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
