"""Renders the Envoy gateway's bootstrap configuration from the project configuration.

The gateway is one Envoy listener that serves REST/JSON (FirecREST v2 wire format) and native gRPC on
the same port: it strips client-sent identity headers, verifies the access token, transcodes
REST ↔ gRPC with the descriptor set generated from protos/, and routes `/firecrest_mesh.<svc>.v1.*`
to the service `<svc>` of `config.services`. The certificator is internal and never routed.

    python -m gateway.render [--config FILE] [--out PATH]   (default out: <state>/envoy/envoy.yaml)
    python -m gateway.render --example                      (rewrites gateway/examples/: `make gateway-example`)

Two Jinja2 templates beside this file hold the configuration: envoy.yaml.j2 (the bootstrap, written to
PATH; it reads top-down: listener → HTTP filters in request order → routes → local replies → clusters →
admin) and firecrest.lua.j2 (the Lua filter's script, written beside it as `firecrest.lua`). This module
only computes what they need: from the configuration, the addresses, certificates and limits and the
route timeout; from the descriptor set's `google.api.http` rules and json_name options, the services to
transcode, the REST routes with their methods (405/OPTIONS answers) and the proto field names REST
calls differently (error messages).

The launcher (scripts/mesh.py) calls `render()`. Tests render into a temporary folder and run
`envoy --mode validate` on the result, and check that gateway/examples/ is what `render_example()` writes.
"""

from __future__ import annotations

import argparse
import hashlib
import ipaddress
import json
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import jinja2
import swagger_ui_bundle
import yaml

if __package__ in (None, ""):  # run as a script: python gateway/render.py
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.api_descriptor import (API_PACKAGE, DESCRIPTOR_SET, INTERNAL_API_SERVICES,  # noqa: E402
                                    INTERNAL_SERVICES, ApiService, _api_files, api_services, byte_streams, event_streams,
                                    log_routes, rest_field_names, rest_routes)
from gateway import policies as gateway_policies  # noqa: E402
from services.common import mesh_pki  # noqa: E402
from services.common.config import REPO_ROOT, Address, Config, ConfigError, load_config  # noqa: E402
from services.common.health_listener import health_address  # noqa: E402
from services.common.ssh.certificates import CERTIFICATOR_TIMEOUT_SECONDS  # noqa: E402
from services.common.ssh.runner import SSH_GRACE_SECONDS  # noqa: E402

GATEWAY_DIR = Path(__file__).resolve().parent
BOOTSTRAP_TEMPLATE = "envoy.yaml.j2"
LUA_TEMPLATE = "firecrest.lua.j2"
LUA_SCRIPT = "firecrest.lua"  # written beside the bootstrap
LIVENESS_REST_PATHS = ("/status/liveness", "/status/liveness/")
LIVENESS_GRPC_PATH = "/firecrest_mesh.status.v1.StatusService/GetLiveness"
# The API's description, public like liveness and served by Envoy itself from files (direct_response:
# no process to run, read once when Envoy loads its configuration): the OpenAPI document
# (gateway/openapi.py, `make gen`) at /openapi.json, and Swagger UI at /docs (PyPI swagger-ui-bundle's
# files and gateway/docs/). GET and HEAD only; anything else there is the catch-all 404.
OPENAPI_DOCUMENT = REPO_ROOT / "docs" / "openapi.json"
DOCS_DIR = GATEWAY_DIR / "docs"
# Envoy's limit on a direct response's body (default 4 KiB); Swagger UI's bundle is ~1 MiB.
MAX_PAGE_BYTES = 4 * 1024 * 1024
JWT_PROVIDER = "identity_provider"
IDP_CLUSTER = "identity_provider"
SYSTEM_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"  # Debian's: trust for an HTTPS identity provider
MIB = 1024 * 1024
# Longest URL the Lua filter serves (414 above): a PATH_MAX (4096-byte) path fully percent-encoded fits.
MAX_URL_BYTES = 16384
# Request line + headers accepted by Envoy's codec (above: 431, which local_reply_config makes a 414).
# Above the Lua filter's URL limit plus room for ordinary headers and a token.
MAX_REQUEST_HEADERS_KB = 96
# The response header by which local_reply_config hands a reply's bare text to the Lua filter, naming
# the errorType of the FirecREST error object the filter writes (the transcoder's 400s: "validation").
ERROR_TYPE_HEADER = "x-firecrest-error-type"
# jwt_authn's cache of verified tokens (per worker thread, LRU, until each token's `exp`): a repeated
# token skips the RS256 check. Tokens longer than this many bytes are verified every time.
JWT_CACHE_SIZE = 1000
JWT_MAX_CACHED_TOKEN_BYTES = 8192
# tcmalloc's free pages returned to the system: this many bytes per interval.
MEMORY_RELEASE_BYTES = 4 * MIB
MEMORY_RELEASE_INTERVAL = "1s"
# The route timeout (see route_timeout()): remote commands one call may run one after the other. The
# most is compute's SubmitJob with an Idempotency-Key when sbatch's outcome is ambiguous: a lookup of
# the key's job, sbatch, and after a short pause a second lookup. At most one of them is an accounting
# query (sacct: a job by id the controller no longer holds, after its squeue), under its own timeout.
SEQUENTIAL_COMMANDS = 3
# ... plus that pause (2 s), the wait for a free SSH channel of the user and the service's own work.
ROUTE_MARGIN_SECONDS = 5
# Byte streams (direct transfers) have no route timeout, only this idle timeout: longer than the storage
# service's own (services/storage/streaming.py, IDLE_SECONDS), so its 408 reaches the client first.
BYTE_STREAM_IDLE_TIMEOUT = "600s"
# The committed example: config/local.yaml rendered with the state folder and the repository written
# as tokens, so that the file is the same on every machine.
EXAMPLE_CONFIG = REPO_ROOT / "config" / "local.yaml"
EXAMPLE_DIR = GATEWAY_DIR / "examples"
EXAMPLE_BOOTSTRAP = "envoy.local.yaml"
STATE_TOKEN, REPO_TOKEN = "${STATE}", "${REPO}"


@dataclass(frozen=True)
class Endpoint:
    """One replica of a routed service: its address and its health listener's port
    (services/common/health_listener.py)."""
    host: str
    port: int
    health_port: int


@dataclass(frozen=True)
class Cluster:
    """An upstream of the gateway: a routed service, or the identity provider."""
    name: str
    host: str
    port: int
    type: str  # STATIC (IP literals), STRICT_DNS (a host name), LOGICAL_DNS (external provider)
    https: bool = False
    # A routed service's replicas (`services.<name>`: one address or a list), balanced round-robin.
    endpoints: tuple[Endpoint, ...] = ()


# --- From the configuration -------------------------------------------------------------------------

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


def service_cluster(name: str, addresses: tuple[Address, ...]) -> Cluster:
    """A routed service, one endpoint per replica: STATIC when every address is an IP literal,
    STRICT_DNS when one is a host name (each name's addresses are endpoints; mutual TLS: the template)."""
    first = addresses[0]
    return Cluster(name, first.host, first.port,
                   "STATIC" if all(_is_ip(a.host) for a in addresses) else "STRICT_DNS",
                   endpoints=tuple(Endpoint(a.host, a.port, health_address(a).port) for a in addresses))


def idp_cluster(jwks_uri: str) -> Cluster:
    """The identity provider, from which jwt_authn fetches the JWKS: its URL's host and port; an external
    provider by host name is LOGICAL_DNS (follow its DNS, one connection target); https → TLS."""
    url = urlsplit(jwks_uri)
    if url.scheme not in ("http", "https") or not url.hostname:
        raise ConfigError(f"identity.jwks_uri: expected an http(s) URL, got {jwks_uri!r}")
    port = url.port or (443 if url.scheme == "https" else 80)
    return Cluster(IDP_CLUSTER, url.hostname, port, "STATIC" if _is_ip(url.hostname) else "LOGICAL_DNS",
                   https=url.scheme == "https")


def mesh_tls_files(cfg: Config) -> dict[str, str]:
    """The gateway's mesh certificate and key and the mesh CA: Envoy presents the certificate to every
    service (mutual TLS) and accepts only a server certificate from that CA naming the service."""
    return {"certificate": str(mesh_pki.cert_file(cfg, mesh_pki.GATEWAY)),
            "private_key": str(mesh_pki.key_file(cfg, mesh_pki.GATEWAY)),
            "ca": str(mesh_pki.ca_file(cfg))}


def client_tls_files(cfg: Config) -> dict[str, str] | None:
    """The listener's certificate and key when `gateway.tls` names them (clients then speak TLS)."""
    gw = cfg.gateway
    if gw.tls_certificate is None:
        return None
    return {"certificate": str(gw.tls_certificate), "private_key": str(gw.tls_private_key)}


def response_body_limit(cfg: Config) -> int:
    """Largest unary response transcoded (its gRPC bytes): `gateway.max_response_body_bytes`, else room for
    the biggest `view`/download of any system, JSON-escaped."""
    if cfg.gateway.max_response_body_bytes is not None:
        return cfg.gateway.max_response_body_bytes
    largest_file = max((s.max_ops_file_size for s in cfg.systems), default=5 * MIB)
    return max(cfg.gateway.max_request_body_bytes, 2 * largest_file)


def response_too_large_message(limit: int) -> str:
    """The 413's message for an answer over the gateway's response limit."""
    size = f"{limit // MIB} MiB" if limit % MIB == 0 else f"{limit // 1024} KiB" if limit % 1024 == 0 else f"{limit} bytes"
    return (f"The answer is larger than the gateway sends in one response ({size}): ask for less, e.g. a "
            "shorter time window or a filter for jobs, a smaller directory for a listing")


def route_timeout(cfg: Config) -> int:
    """Seconds the gateway waits for a service: longer than the slowest call a service makes within its
    own deadlines, so that the service's answer (a 408 naming what timed out, the job found after an
    ambiguous submission) reaches the client instead of Envoy's 504 while the service still works.

    Per system: an SSH login (a certificate from the certificator, the TCP connection, the SSH
    handshake and authentication), then SEQUENTIAL_COMMANDS remote commands, each bounded by the
    longer of the system's command_execution and scheduler timeouts plus the grace the SSH side gives
    the remote `timeout`, one of them possibly an accounting query (`scheduler.accounting_timeout`).
    The maximum over systems, plus ROUTE_MARGIN_SECONDS, rounded up to 10 s: for config/local.yaml
    5 + 5 + 5 + 2 × (10 + 3) + (30 + 3) + 5 = 79 → 80 s. One value for every route rather than
    one per service: what bounds a call is the system's timeouts, not the service (compute runs both
    Slurm queries and `srun` under command_execution), and a call may also queue for one of the
    user's SSH channels, which no per-RPC count bounds.
    """
    def command(s, *timeouts: int) -> int:
        return max(s.ssh.timeouts.command_execution, *timeouts) + SSH_GRACE_SECONDS

    slowest = max((CERTIFICATOR_TIMEOUT_SECONDS + s.ssh.timeouts.connection + s.ssh.timeouts.login
                   + (SEQUENTIAL_COMMANDS - 1) * command(s, s.scheduler.timeout)
                   + command(s, s.scheduler.timeout, s.scheduler.accounting_timeout)
                   for s in cfg.systems), default=0)
    return math.ceil((slowest + ROUTE_MARGIN_SECONDS) / 10) * 10


# --- The API's description (/openapi.json, /docs) ------------------------------------------------------

@dataclass(frozen=True)
class Page:
    """A public file the gateway answers a GET with: its path, the file and its content type."""
    path: str
    file: Path
    content_type: str


def docs_pages(document: Path = OPENAPI_DOCUMENT) -> list[Page]:
    """The OpenAPI document and Swagger UI (its page, initializer, the bundle's script, style and icon)."""
    ui = Path(swagger_ui_bundle.swagger_ui_path)
    html, js, css = "text/html; charset=utf-8", "text/javascript; charset=utf-8", "text/css; charset=utf-8"
    pages = [Page("/openapi.json", Path(document), "application/json"),
             Page("/docs", DOCS_DIR / "index.html", html),
             Page("/docs/", DOCS_DIR / "index.html", html),
             Page("/docs/swagger-initializer.js", DOCS_DIR / "swagger-initializer.js", js),
             Page("/docs/swagger-ui-bundle.js", ui / "swagger-ui-bundle.js", js),
             Page("/docs/swagger-ui.css", ui / "swagger-ui.css", css),
             Page("/docs/favicon-32x32.png", ui / "favicon-32x32.png", "image/png")]
    for page in pages:
        if not page.file.is_file():
            raise ConfigError(f"{page.path}: {page.file} is missing (run `make gen` / `make install`)")
        if page.file.stat().st_size > MAX_PAGE_BYTES:
            raise ConfigError(f"{page.path}: {page.file} is larger than {MAX_PAGE_BYTES} bytes")
    return pages


def docs_digest(pages: list[Page]) -> str:
    """SHA-256 of the pages' files, written into the bootstrap: Envoy reads them only at start-up, and
    the launcher restarts it when the bootstrap changed."""
    digest = hashlib.sha256()
    for page in pages:
        digest.update(page.path.encode() + b"\0" + page.file.read_bytes())
    return digest.hexdigest()


# --- Rendering ----------------------------------------------------------------------------------------

def _lua_string(text: str) -> str:
    """A Lua string literal for generated text (the templates' `lua_string` filter)."""
    if re.search(r'[\x00-\x1f"\\]', text):
        raise ValueError(f"{text!r}: unexpected character for a generated Lua string")
    return f'"{text}"'


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(GATEWAY_DIR), undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
                             autoescape=False)
    env.filters["json"] = json.dumps  # a JSON string is a valid YAML scalar
    env.filters["lua_string"] = _lua_string
    return env


def _warn_about_unrouted(cfg: Config, services: list[ApiService], descriptor_set: Path) -> None:
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


def render_text(cfg: Config, out: Path, descriptor_set: Path = DESCRIPTOR_SET) -> tuple[str, str]:
    """(bootstrap, Lua script) for a bootstrap written to `out` (the script beside it), unwritten."""
    gw, idp = cfg.gateway, cfg.identity
    if not _is_loopback(gw.admin.host):
        raise ConfigError(f"gateway.admin: the admin interface must bind loopback only, got {gw.admin}")
    descriptor_set = Path(descriptor_set).resolve()
    services = api_services(descriptor_set)
    _warn_about_unrouted(cfg, services, descriptor_set)
    routed = routed_services(cfg)
    pages = docs_pages()
    routes = [{"prefix": f"/firecrest_mesh.{name}.v1.", "cluster": name} for name in routed]
    if "status" in routed:  # the status service serves reflection for the whole API
        routes.append({"prefix": "/grpc.reflection.", "cluster": "status"})
    env = _environment()
    # Rate limits, IP filter, access control lists (gateway/policies.py).
    policies = gateway_policies.template_values(gw.policies, idp.username_claim, _api_files(descriptor_set),
                                                set(routed))
    # Byte streams get routes of their own (no timeout) that carry their rate class themselves.
    expensive = {r["path"] for r in policies["expensive_routes"]}
    streams = [{**s, "expensive": s["grpc_path"] in expensive} for s in byte_streams(descriptor_set)
               if s["cluster"] in routed]
    streamed = {s["grpc_path"] for s in streams}
    policies["expensive_routes"] = [r for r in policies["expensive_routes"] if r["path"] not in streamed]
    response_limit = response_body_limit(cfg)
    lua = env.get_template(LUA_TEMPLATE).render(
        username_claim=idp.username_claim, error_type_header=ERROR_TYPE_HEADER, max_url_bytes=MAX_URL_BYTES,
        rest_routes=rest_routes(descriptor_set), log_routes=log_routes(descriptor_set),
        rest_field_names=rest_field_names(descriptor_set),
        policies=policies)
    bootstrap = env.get_template(BOOTSTRAP_TEMPLATE).render(
        config_file=str(cfg.path), descriptor_set=str(descriptor_set), policies=policies,
        listen=gw.listen, admin=gw.admin, client_tls=client_tls_files(cfg),
        max_request_headers_kb=MAX_REQUEST_HEADERS_KB, max_url_bytes=MAX_URL_BYTES,
        user_metadata=f"%DYNAMIC_METADATA(envoy.filters.http.jwt_authn:jwt_payload:{idp.username_claim})%",
        lua_script=str(Path(out).resolve().with_name(LUA_SCRIPT)),
        jwt_provider=JWT_PROVIDER, identity=idp, idp=idp_cluster(idp.jwks_uri),
        public_paths=[*LIVENESS_REST_PATHS, LIVENESS_GRPC_PATH, *(page.path for page in pages)],
        pages=pages, docs_digest=docs_digest(pages), max_page_bytes=MAX_PAGE_BYTES,
        api_services=[s.full_name for s in services],
        max_request_body_bytes=gw.max_request_body_bytes, max_response_body_bytes=response_limit,
        response_too_large_message=response_too_large_message(response_limit),
        routes=routes, route_timeout=f"{route_timeout(cfg)}s",
        event_streams=[e for e in event_streams(descriptor_set) if e["cluster"] in routed],
        byte_streams=streams, byte_stream_idle_timeout=BYTE_STREAM_IDLE_TIMEOUT,
        internal_prefixes=sorted(f"/{name}/" for name in INTERNAL_API_SERVICES
                                 if API_PACKAGE.match(name.rsplit(".", 1)[0]).group(1) in routed), error_type_header=ERROR_TYPE_HEADER,
        services=[service_cluster(name, cfg.addresses(name)) for name in routed],
        mesh_tls=mesh_tls_files(cfg), mib=MIB, system_ca_bundle=SYSTEM_CA_BUNDLE,
        jwt_cache_size=JWT_CACHE_SIZE, jwt_max_token_bytes=JWT_MAX_CACHED_TOKEN_BYTES,
        release_bytes=MEMORY_RELEASE_BYTES, release_interval=MEMORY_RELEASE_INTERVAL)
    yaml.safe_load(bootstrap)  # a syntax error here is a bug in the template
    return bootstrap, lua


def render(cfg: Config, out: Path, descriptor_set: Path = DESCRIPTOR_SET) -> Path:
    """Writes the bootstrap to `out` and the Lua script beside it; returns `out` (absolute)."""
    out = Path(out).resolve()
    bootstrap, lua = render_text(cfg, out, descriptor_set)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_name(LUA_SCRIPT).write_text(lua)
    out.write_text(bootstrap)
    return out


def render_example(out_dir: Path = EXAMPLE_DIR, descriptor_set: Path = DESCRIPTOR_SET) -> list[Path]:
    """Writes the gateway of config/local.yaml (the embedded default) into `out_dir`: the bootstrap as
    `make up` renders it into the state folder, with that folder and the repository written as ${STATE}
    and ${REPO}, and its Lua script. Returns the files written."""
    cfg = load_config(EXAMPLE_CONFIG)
    bootstrap, lua = render_text(cfg, cfg.state("envoy", "envoy.yaml"), descriptor_set)
    for path, token in sorted(((str(cfg.state_dir), STATE_TOKEN), (str(REPO_ROOT), REPO_TOKEN)),
                              key=lambda item: -len(item[0])):  # the longer first: state/ is inside the repository
        bootstrap = bootstrap.replace(path, token)
    bootstrap = (f"# Example: {EXAMPLE_CONFIG.relative_to(REPO_ROOT)} as `make up` renders it into {STATE_TOKEN}/envoy/, "
                 f"with the state folder\n# written {STATE_TOKEN} and the repository {REPO_TOKEN}. "
                 "Refreshed by `make gateway-example` (and `make gen`).\n" + bootstrap)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = [out_dir / EXAMPLE_BOOTSTRAP, out_dir / LUA_SCRIPT]
    written[0].write_text(bootstrap)
    written[1].write_text(lua)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", help="configuration file (default: FIRECREST_MESH_CONFIG or config/local.yaml)")
    parser.add_argument("--out", help="output file (default: <state>/envoy/envoy.yaml)")
    parser.add_argument("--descriptor-set", default=str(DESCRIPTOR_SET), help="generated descriptor set")
    parser.add_argument("--example", action="store_true",
                        help=f"write the example of config/local.yaml into {EXAMPLE_DIR.relative_to(REPO_ROOT)}/")
    args = parser.parse_args(argv)
    try:
        if args.example:
            for path in render_example(descriptor_set=Path(args.descriptor_set)):
                print(path)
            return 0
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
