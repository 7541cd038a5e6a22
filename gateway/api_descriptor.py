"""What the gateway learns from the API's descriptor set (gen/envoy/api_descriptor.pb, `make gen`):
the public API's packages and services, each method's `google.api.http` rules (decoded in one place,
`method_rules`), the REST routes as Lua patterns and RE2 regexes, the server-streaming routes served as
server-sent events, the byte streams (transfers without a size limit), and the field names REST calls
differently. Read by gateway/render.py (the Envoy
configuration), gateway/policies.py, gateway/openapi.py and scripts/routes.py.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from google.api import annotations_pb2, http_pb2  # annotations: registers the google.api.http option
from google.protobuf import descriptor_pb2

from services.common.config import REPO_ROOT

DESCRIPTOR_SET = REPO_ROOT / "gen" / "envoy" / "api_descriptor.pb"
API_PACKAGE = re.compile(r"^firecrest_mesh\.([a-z0-9_]+)\.v1$")
INTERNAL_SERVICES = {"certificator"}  # never routed, never transcoded
# gRPC services of a routed package that only the mesh's services call: not transcoded, and the gateway
# answers 404 for them (their server also refuses the gateway's certificate).
INTERNAL_API_SERVICES = {"firecrest_mesh.tasks.v1.TaskRecordsService"}
HTTP_BODY = ".google.api.HttpBody"
HTTP_RULE_KINDS = ("get", "put", "post", "delete", "patch")


@dataclass(frozen=True)
class ApiService:
    """A gRPC service of the public API, e.g. `firecrest_mesh.status.v1.StatusService` of `status`."""
    name: str  # config key and cluster name: "status"
    full_name: str  # "firecrest_mesh.status.v1.StatusService"


def _api_files(descriptor_set: Path):
    """The descriptor set's files of public API packages (firecrest_mesh.<name>.v1, not internal)."""
    fds = descriptor_pb2.FileDescriptorSet.FromString(Path(descriptor_set).read_bytes())
    return [f for f in fds.file if (m := API_PACKAGE.match(f.package)) and m.group(1) not in INTERNAL_SERVICES]


def api_services(descriptor_set: Path) -> list[ApiService]:
    """Every `firecrest_mesh.<name>.v1` service in the descriptor set, internal ones excluded."""
    found = [ApiService(API_PACKAGE.match(f.package).group(1), f"{f.package}.{s.name}")
             for f in _api_files(descriptor_set) for s in f.service
             if f"{f.package}.{s.name}" not in INTERNAL_API_SERVICES]
    return sorted(found, key=lambda s: s.full_name)


def method_rules(method) -> list[tuple[str, str, http_pb2.HttpRule]]:
    """(METHOD, path template, rule) of each google.api.http rule of a method descriptor, additional
    bindings included, in order ([] for a method without one). The one place a rule is decoded: the
    gateway's routes, its policies, the OpenAPI document and the route table all read rules here."""
    if not method.options.HasExtension(annotations_pb2.http):
        return []
    top = method.options.Extensions[annotations_pb2.http]
    found = []
    for rule in (top, *top.additional_bindings):
        kind = rule.WhichOneof("pattern")
        if kind == "custom":
            found.append((rule.custom.kind.upper(), rule.custom.path, rule))
        elif kind in HTTP_RULE_KINDS:
            found.append((kind.upper(), getattr(rule, kind), rule))
    return found


def http_rules(descriptor_set: Path) -> list[tuple[str, str]]:
    """(METHOD, path template) of every google.api.http rule (additional bindings included) of the API."""
    return [(verb, template) for f in _api_files(descriptor_set) for service in f.service
            for method in service.method for verb, template, _ in method_rules(method)]


def template_regex(template: str) -> str:
    """The RE2 regex (whole path) of a google.api.http path template without verb: a variable or `*`
    is one segment, `**` any rest, a trailing slash optional. `/tasks/{task_id}/events` →
    `/tasks/[^/]+/events/?`."""
    body = re.sub(r"\{[^}=]*(?:=([^}]*))?\}", lambda m: m.group(1) or "*", template)
    segments = {"*": "[^/]+", "**": ".*"}
    return "/".join(segments.get(seg) or re.escape(seg) for seg in body.split("/")) + "/?"


def event_streams(descriptor_set: Path) -> list[dict[str, str]]:
    """Server-streaming RPCs with a GET rule whose messages are JSON (not raw HttpBody bytes): the gateway
    serves them as server-sent events. Each: the REST path's regex, the gRPC path, the service's name."""
    streams = []
    for f in _api_files(descriptor_set):
        for service in f.service:
            if f"{f.package}.{service.name}" in INTERNAL_API_SERVICES:
                continue
            for method in service.method:
                if (not method.server_streaming or method.output_type == HTTP_BODY
                        or not method.options.HasExtension(annotations_pb2.http)):
                    continue
                rule = method.options.Extensions[annotations_pb2.http]
                if rule.WhichOneof("pattern") == "get":
                    streams.append({"regex": template_regex(rule.get),
                                    "grpc_path": f"/{f.package}.{service.name}/{method.name}",
                                    "cluster": API_PACKAGE.match(f.package).group(1)})
    return streams


def byte_streams(descriptor_set: Path) -> list[dict[str, str]]:
    """RPCs that move raw bytes as a stream (client-streaming, or server-streaming `google.api.HttpBody`):
    transfers of any size, which the gateway must not cut by the route timeout. Each: the gRPC path
    and the service's name."""
    return [{"grpc_path": f"/{f.package}.{service.name}/{method.name}", "cluster": API_PACKAGE.match(f.package).group(1)}
            for f in _api_files(descriptor_set) for service in f.service
            if f"{f.package}.{service.name}" not in INTERNAL_API_SERVICES
            for method in service.method
            if method.client_streaming or (method.server_streaming and method.output_type == HTTP_BODY)]


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


def log_routes(descriptor_set: Path) -> list[tuple[str, str, bool, list[str]]]:
    """(Lua pattern, path template, names a system, HTTP methods) of every REST route of the API, for
    the access log's `route` and `system` (the Lua filter records the first route whose pattern and
    method match): the pattern captures the `{system_name}` segment when the template has one. Routes
    with fewer variables first, as the transcoder prefers literal segments (`jobs/async` before
    `jobs/{job_id}`)."""
    found: dict[str, tuple[str, str, bool, list[str]]] = {}
    for method, template in http_rules(descriptor_set):
        marked = template.replace("{system_name}", "SYSTEMNAMESEGMENT")
        pattern = template_pattern(marked).replace("SYSTEMNAMESEGMENT", "([^/]+)")
        entry = found.setdefault(template, (pattern, template, marked != template, []))
        if method not in entry[3]:
            entry[3].append(method)
    return sorted(found.values(), key=lambda route: route[1].count("{"))


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
