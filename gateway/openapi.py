"""Writes docs/openapi.json: the OpenAPI 3.0 description of the REST API, generated from the protos.

    python -m gateway.openapi [--check]

Read from the descriptor set the gateway's transcoder loads (gen/envoy/api_descriptor.pb): one
operation per `google.api.http` rule (additional bindings included) of the public API's services,
with its path parameters, query parameters (every request field bound neither to the path nor to the
body, by json_name; nested messages as `parent.child`), request body (`body: "*"` or one field;
`google.api.HttpBody` as raw bytes, multipart/form-data when the field's comment says so), success
response (`response_body` or the whole response message; the status is the first `HTTP 2xx` the RPC's
comment names, else 200; 204 has no body) and error responses: the FirecREST error object
(firecrest_mesh.common.v1.ErrorResponse) for 400, 401 and any other status the RPC's comment names,
and for every 4XX/5XX. Every operation needs a bearer token but the liveness probe. Summaries,
descriptions and tags (one per service, described by its proto file's leading comment) are the
protos' comments. Schemas: gateway/openapi_schemas.py.

`make gen` runs it; `--check` exits 1 when the committed document is stale (a unit test calls it).
The gateway serves the document at `/openapi.json` and Swagger UI at `/docs` (gateway/render.py).
"""

from __future__ import annotations

import json
import re
import sys
import tomllib
from pathlib import Path

from google.protobuf import descriptor_pb2

if __package__ in (None, ""):  # run as a script: python gateway/openapi.py
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.openapi_schemas import (  # noqa: E402
    HTTP_BODY, SERVICE, SERVICE_METHOD, SYNTAX, WELL_KNOWN, Comments, Schemas, with_description)
from gateway.api_descriptor import API_PACKAGE, DESCRIPTOR_SET, INTERNAL_SERVICES, method_rules  # noqa: E402
from gateway.generated_file import write_or_check  # noqa: E402
from gateway.render import LIVENESS_GRPC_PATH  # noqa: E402
from services.common.config import REPO_ROOT  # noqa: E402

OUT = REPO_ROOT / "docs" / "openapi.json"
OPENAPI_VERSION = "3.0.3"  # what the bundled Swagger UI (4.x) renders in full
ERROR_MESSAGE = ".firecrest_mesh.common.v1.ErrorResponse"
BEARER = "bearerAuth"
SUCCESS = re.compile(r"\bHTTP (2\d\d)\b")
ERROR_STATUS = re.compile(r"\b([45]\d\d)\b")
MULTIPART_FIELD = re.compile(r"multipart/form-data with a field `(\w+)`")
SSE = "text/event-stream"
TEMPLATE_VARIABLE = re.compile(r"\{([^}=]+)(?:=[^}]*)?\}")
DESCRIPTION = """\
The REST/JSON interface of the firecrest-mesh gateway: FirecREST v2's API (paths, query names, JSON \
keys, status codes, error body), plus `/tasks` for asynchronous operations. Generated from the \
protos' `google.api.http` rules and comments by `make gen` (gateway/openapi.py); the same methods \
are served over native gRPC on the same port.

- Every route needs `Authorization: Bearer <access token>` but the liveness probe.
- JSON keys are lowerCamelCase; requests may also spell them snake_case. 64-bit integers are JSON \
strings. Unknown query parameters are refused (400).
- Errors carry the FirecREST error object (`ErrorResponse`) with `errorType`, `message`, `causedBy`, \
`data` and `user`.
"""


def _version() -> str:
    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["version"]


def _summary(comment: str) -> str:
    """The first sentence of a comment."""
    text = " ".join(comment.split())
    return text.split(". ")[0].rstrip(".") + "." if text else ""


def _error_responses(comment: str) -> dict[str, str]:
    """Status → the sentence of an RPC's comment that names it (e.g. 413 for a too large upload)."""
    found = {}
    for sentence in re.split(r"(?<=[.;])\s+", " ".join(comment.split())):
        for status in ERROR_STATUS.findall(sentence):
            found.setdefault(status, sentence)
    return found


class Document:
    """The OpenAPI document of the descriptor set's public API services."""

    def __init__(self, descriptor_set: Path = DESCRIPTOR_SET):
        fds = descriptor_pb2.FileDescriptorSet.FromString(Path(descriptor_set).read_bytes())
        self.comments = Comments(list(fds.file))
        self.schemas = Schemas(list(fds.file), self.comments)
        self.api_files = [f for f in fds.file
                          if (m := API_PACKAGE.match(f.package)) and m.group(1) not in INTERNAL_SERVICES]
        self.paths: dict[str, dict] = {}
        self.tags: list[dict] = []
        self._operation_ids: set[str] = set()

    def build(self) -> dict:
        self._shape_error_body()
        for f in sorted(self.api_files, key=lambda f: f.package):
            tag = API_PACKAGE.match(f.package).group(1)
            described, served = self.comments.get(f.name, (SYNTAX,)), False
            for s_index, service in enumerate(f.service):
                methods = [(m_index, method) for m_index, method in enumerate(service.method)
                           if method_rules(method)]
                if not methods:
                    continue  # an internal service of the package (e.g. TaskRecordsService)
                described = described or self.comments.get(f.name, (SERVICE, s_index))
                served = True
                for m_index, method in methods:
                    comment = self.comments.get(f.name, (SERVICE, s_index, SERVICE_METHOD, m_index))
                    grpc_path = f"/{f.package}.{service.name}/{method.name}"
                    for binding, (verb, template, rule) in enumerate(method_rules(method)):
                        self._add(tag, grpc_path, method, verb.lower(), template, rule, comment, binding)
            if served and tag not in {t["name"] for t in self.tags}:
                self.tags.append({"name": tag, "description": described})
        return {
            "openapi": OPENAPI_VERSION,
            "info": {"title": "firecrest-mesh API", "version": _version(), "description": DESCRIPTION},
            "tags": self.tags,
            "security": [{BEARER: []}],
            "paths": dict(sorted(self.paths.items())),
            "components": {
                "schemas": dict(sorted(self.schemas.components.items())),
                "securitySchemes": {
                    BEARER: {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                             "description": "An access token of the identity provider (OAuth2 client "
                                            "credentials; README, \"Tokens\")."},
                },
            },
        }

    def _shape_error_body(self) -> None:
        """The error object always has its five keys (the gateway writes them), `null` when empty."""
        name = self.schemas.ref(ERROR_MESSAGE)["$ref"].rsplit("/", 1)[1]
        schema = self.schemas.components[name]
        schema["required"] = list(schema["properties"])
        schema["properties"]["user"]["nullable"] = True

    # --- one operation ---------------------------------------------------------------------------

    def _add(self, tag, grpc_path, method, verb, template, rule, comment, binding) -> None:
        request = method.input_type
        path_fields = TEMPLATE_VARIABLE.findall(template)
        operation = {"tags": [tag], "summary": _summary(comment), "description": comment,
                     "operationId": self._operation_id(method.name, binding),
                     "parameters": [self._path_parameter(request, name) for name in path_fields]}
        body_fields = set()
        if rule.body == "*":
            body_fields = {f.name for f in self.schemas.message(request).field} - {p.split(".")[0] for p in path_fields}
            operation["requestBody"] = {"required": True, "content": {"application/json": {
                "schema": self.schemas.object(request, exclude={p.split(".")[0] for p in path_fields})}}}
        elif rule.body:
            body_fields = {rule.body}
            operation["requestBody"] = self._field_body(request, rule.body)
        top_level_path = {p.split(".")[0] for p in path_fields}
        for index, field in enumerate(self.schemas.message(request).field):
            if field.name not in body_fields:
                operation["parameters"] += self._query_parameters(request, index, field, "", top_level_path)
        if not operation["parameters"]:
            del operation["parameters"]
        operation["responses"] = self._responses(method, rule, comment, public=grpc_path == LIVENESS_GRPC_PATH)
        if grpc_path == LIVENESS_GRPC_PATH:
            operation["security"] = []
        operation["x-grpc-method"] = grpc_path.lstrip("/")
        self.paths.setdefault(TEMPLATE_VARIABLE.sub(r"{\1}", template), {})[verb] = operation

    def _operation_id(self, name: str, binding: int) -> str:
        candidate = name if binding == 0 else f"{name}{binding + 1}"
        while candidate in self._operation_ids:
            candidate += "_"
        self._operation_ids.add(candidate)
        return candidate

    def _field_at(self, type_name: str, dotted: str):
        """(message type, index, field) of a (possibly nested) field path of a message."""
        *parents, last = dotted.split(".")
        for name in parents:
            type_name = next(f for f in self.schemas.message(type_name).field if f.name == name).type_name
        index, field = next((i, f) for i, f in enumerate(self.schemas.message(type_name).field) if f.name == last)
        return type_name, index, field

    def _path_parameter(self, request: str, dotted: str) -> dict:
        owner, index, field = self._field_at(request, dotted)
        return {"name": dotted, "in": "path", "required": True,
                "description": self.schemas.field_comment(owner, index), "schema": self.schemas.field(field)}

    def _query_parameters(self, owner, index, field, prefix, path_fields, depth=0) -> list[dict]:
        """Query parameters of a request field: itself, or (a message) its fields as `name.child`."""
        name = prefix + field.json_name
        if prefix == "" and field.name in path_fields:
            return []
        is_message = field.type == field.TYPE_MESSAGE and field.type_name not in WELL_KNOWN
        if is_message and field.label == field.LABEL_REPEATED:
            return []  # maps and repeated messages cannot be query parameters
        if is_message:
            if depth >= 3:
                return []
            nested = field.type_name
            return [p for i, child in enumerate(self.schemas.message(nested).field)
                    for p in self._query_parameters(nested, i, child, name + ".", (), depth + 1)]
        schema = self.schemas.field(field)
        parameter = {"name": name, "in": "query", "required": self.schemas.is_required(owner, index),
                     "schema": schema}
        if description := self.schemas.field_comment(owner, index):
            parameter["description"] = description
        return [parameter]

    def _field_body(self, request: str, field_name: str) -> dict:
        owner, index, field = self._field_at(request, field_name)
        comment = self.schemas.field_comment(owner, index)
        if field.type_name == HTTP_BODY:
            if match := MULTIPART_FIELD.search(comment):
                content = {"multipart/form-data": {"schema": {
                    "type": "object", "required": [match.group(1)],
                    "properties": {match.group(1): {"type": "string", "format": "binary"}}}}}
            else:
                content = {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}
        else:
            content = {"application/json": {"schema": self.schemas.field(field)}}
        body = {"required": True, "content": content}
        if comment:
            body["description"] = comment
        return body

    def _responses(self, method, rule, comment, public: bool) -> dict:
        status = (SUCCESS.search(comment) or [None, "200"])[1]
        success: dict = {"description": _summary(comment) or "Success."}
        if status != "204":
            success["content"] = self._response_content(method, rule, comment)
        responses = {status: success, "400": self._error("Malformed request: `errorType` \"validation\" "
                                                          "when the gateway refused it, \"error\" when the service did.")}
        if not public:
            responses["401"] = self._error("No access token, or an invalid or expired one.")
        for code, sentence in sorted(_error_responses(comment).items()):
            responses.setdefault(code, self._error(sentence))
        responses["4XX"] = self._error("Client error.")
        responses["5XX"] = self._error("Server error.")
        return responses

    def _response_content(self, method, rule, comment) -> dict:
        output = method.output_type
        if rule.response_body:
            _, _, field = self._field_at(output, rule.response_body)
            schema = self.schemas.field(field)
        else:
            schema = self.schemas.ref(output)
        if output == HTTP_BODY:
            return {"application/octet-stream": {"schema": WELL_KNOWN[HTTP_BODY]}}
        if method.server_streaming:
            if SSE in comment:
                return {SSE: {"schema": {"type": "string", "description": "One `data: <JSON>` event per message."}},
                        "application/json": {"schema": with_description(schema, "The JSON of one event.")}}
            return {"application/json": {"schema": {"type": "array", "items": schema}}}
        return {"application/json": {"schema": schema}}

    def _error(self, description: str) -> dict:
        return {"description": description,
                "content": {"application/json": {"schema": self.schemas.ref(ERROR_MESSAGE)}}}


def render(descriptor_set: Path = DESCRIPTOR_SET) -> str:
    """The document as committed: JSON, 2-space indented, keys in generation order."""
    return json.dumps(Document(descriptor_set).build(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    return write_or_check(OUT, render(), sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    sys.exit(main())
