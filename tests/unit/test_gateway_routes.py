"""What the gateway generates from the API's descriptor set (gateway/api_descriptor.py): the REST route
table behind 405 and OPTIONS (Lua patterns that match like the transcoder's templates, every
`google.api.http` rule present, custom methods and additional bindings) and the REST field names.
Pure checks, no network; the rendered Envoy configuration itself: test_gateway_config.py."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gateway import api_descriptor


def _lua_to_regex(pattern: str) -> str:
    """The subset of Lua patterns api_descriptor.template_pattern writes (^ $ [^/]+ .* /? %x) as a Python regex."""
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if c == "%":
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)


@pytest.mark.parametrize("template, pattern", [
    ("/status/systems", "^/status/systems/?$"),
    ("/compute/{system_name}/jobs/{job_id}", "^/compute/[^/]+/jobs/[^/]+/?$"),
    ("/v1/{name=projects/*/files/**}", "^/v1/projects/[^/]+/files/.*/?$"),
    ("/a-b/c.d/*:cancel", "^/a%-b/c%.d/[^/]+:cancel$"),
    ("/x/{id}:run-now", "^/x/[^/]+:run%-now$"),
])
def test_template_pattern(template, pattern):
    assert api_descriptor.template_pattern(template) == pattern


def test_route_patterns_match_like_the_transcoder():
    routes = {re.compile(_lua_to_regex(p)): set(m) for p, m in api_descriptor.rest_routes(api_descriptor.DESCRIPTOR_SET).items()}

    def methods(path):
        found = [m for r, m in routes.items() if r.search(path)]
        return set().union(*found) if found else None

    assert methods("/compute/local/jobs") == {"GET", "POST"}
    assert methods("/compute/local/jobs/") == {"GET", "POST"}
    assert methods("/compute/local/jobs/42") == {"GET", "DELETE"}
    assert methods("/compute/local/jobs/42/metadata") == {"GET"}
    assert methods("/compute/local/jobs/42/attach") == {"PUT"}
    assert methods("/filesystem/daint/ops/rm") == {"DELETE"}
    assert methods("/status/liveness") == {"GET"}
    # Not routes of the API: no 405/OPTIONS answer, the request goes on to authentication and a 404.
    for path in ("/compute/local/jobs/42/metadata/x", "/compute/local", "/status", "/status/local/nodesx",
                 "/filesystem/local/ops", "/firecrest_mesh.status.v1.StatusService/ListSystems", "/"):
        assert methods(path) is None, path


def test_every_http_rule_of_the_api_is_in_the_route_table():
    rules = api_descriptor.http_rules(api_descriptor.DESCRIPTOR_SET)
    routes = api_descriptor.rest_routes(api_descriptor.DESCRIPTOR_SET)
    assert len(rules) >= 28
    assert ("POST", "/compute/{system_name}/jobs") in rules
    assert not any("certificator" in template.lower() for _, template in rules)
    for method, template in rules:
        assert method in routes[api_descriptor.template_pattern(template)], (method, template)
    assert sum(len(m) for m in routes.values()) == len(set(rules))


def _descriptor_set(tmp_path, messages: dict[str, list[tuple[str, str]]], rules=()) -> Path:
    """A one-file descriptor set `firecrest_mesh.demo.v1` with `messages` (name -> [(field, json_name)])
    and a service whose method Do has the HttpRule `rules[0]` (additional bindings: the rest)."""
    from google.api import annotations_pb2, http_pb2
    from google.protobuf import descriptor_pb2

    f = descriptor_pb2.FileDescriptorProto(name="demo.proto", package="firecrest_mesh.demo.v1", syntax="proto3")
    for name, fields in messages.items():
        message = f.message_type.add(name=name)
        for number, (field, json_name) in enumerate(fields, start=1):
            message.field.add(name=field, json_name=json_name, number=number,
                              type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
                              label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL)
    if rules:
        method = f.service.add(name="DemoService").method.add(
            name="Do", input_type=".firecrest_mesh.demo.v1.A", output_type=".firecrest_mesh.demo.v1.A")
        http = method.options.Extensions[annotations_pb2.http]
        http.CopyFrom(rules[0])
        http.additional_bindings.extend(rules[1:])
    internal = descriptor_pb2.FileDescriptorProto(name="cert.proto", package="firecrest_mesh.certificator.v1")
    internal.message_type.add(name="C").field.add(name="num_lines", json_name="rows", number=1,
                                                   type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING)
    path = tmp_path / "api.pb"
    path.write_bytes(descriptor_pb2.FileDescriptorSet(file=[f, internal]).SerializeToString())
    return path


def test_http_rules_with_custom_methods_and_additional_bindings(tmp_path):
    from google.api import http_pb2
    rules = [http_pb2.HttpRule(get="/demo/{id}"), http_pb2.HttpRule(patch="/demo/{id}"),
             http_pb2.HttpRule(custom=http_pb2.CustomHttpPattern(kind="purge", path="/demo/{id}")),
             http_pb2.HttpRule(post="/demo/{id}:run")]
    pb = _descriptor_set(tmp_path, {"A": [("id", "id")]}, rules)
    assert api_descriptor.http_rules(pb) == [("GET", "/demo/{id}"), ("PATCH", "/demo/{id}"), ("PURGE", "/demo/{id}"),
                                     ("POST", "/demo/{id}:run")]
    assert api_descriptor.rest_routes(pb) == {"^/demo/[^/]+/?$": ["GET", "PATCH", "PURGE"], "^/demo/[^/]+:run$": ["POST"]}


def test_rest_field_names_only_unambiguous_renames(tmp_path):
    pb = _descriptor_set(tmp_path, {
        "A": [("num_lines", "lines"), ("show_hidden", "show_hidden"), ("job_id", "jobId"), ("size", "bytes")],
        "B": [("num_lines", "lines"), ("size", "size")],  # `size` is renamed in A only: ambiguous
    })
    # The internal certificator's json_names do not count.
    assert api_descriptor.rest_field_names(pb) == {"num_lines": "lines"}
    assert api_descriptor.rest_field_names(api_descriptor.DESCRIPTOR_SET) == {"num_bytes": "bytes", "num_lines": "lines"}
