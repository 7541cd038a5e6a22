"""JSON schemas (OpenAPI 3.0) of protobuf messages as the gateway's transcoder reads and writes them.

gateway/openapi.py calls `Schemas` while it turns the API's `google.api.http` rules into operations:
`ref(type_name)` registers a message or enum as a component and returns a `$ref`, `field(f)` gives a
field's schema. The JSON shape is the transcoder's (docs/../shared facts, print_options of the
template): keys are the fields' json_name (lowerCamelCase), 64-bit integers are strings, enums are
their value names, well-known types have their canonical JSON mapping (Timestamp: RFC 3339 text,
Value: any JSON, ...). Descriptions are the protos' comments, the API's documentation.
"""

from __future__ import annotations

import re

from google.protobuf import descriptor_pb2

FD = descriptor_pb2.FieldDescriptorProto
# Field paths of source_code_info (descriptor.proto's field numbers).
MESSAGE_TYPE, ENUM_TYPE, SERVICE, SYNTAX = 4, 5, 6, 12
MESSAGE_FIELD, MESSAGE_NESTED, MESSAGE_ENUM, ENUM_VALUE, SERVICE_METHOD = 2, 3, 4, 2, 2

_INT64 = {"type": "string", "format": "int64", "description": "64-bit integer, as a JSON string."}
SCALARS = {
    FD.TYPE_DOUBLE: {"type": "number", "format": "double"},
    FD.TYPE_FLOAT: {"type": "number", "format": "float"},
    FD.TYPE_INT32: {"type": "integer", "format": "int32"},
    FD.TYPE_SINT32: {"type": "integer", "format": "int32"},
    FD.TYPE_SFIXED32: {"type": "integer", "format": "int32"},
    FD.TYPE_UINT32: {"type": "integer", "format": "int64", "minimum": 0},
    FD.TYPE_FIXED32: {"type": "integer", "format": "int64", "minimum": 0},
    FD.TYPE_INT64: _INT64, FD.TYPE_SINT64: _INT64, FD.TYPE_SFIXED64: _INT64,
    FD.TYPE_UINT64: _INT64, FD.TYPE_FIXED64: _INT64,
    FD.TYPE_BOOL: {"type": "boolean"},
    FD.TYPE_STRING: {"type": "string"},
    FD.TYPE_BYTES: {"type": "string", "format": "byte"},
}
# Well-known types: their JSON mapping, not their fields.
WELL_KNOWN = {
    ".google.protobuf.Value": {"description": "Any JSON value, `null` included.", "nullable": True},
    ".google.protobuf.Struct": {"type": "object", "additionalProperties": True},
    ".google.protobuf.ListValue": {"type": "array", "items": {}},
    ".google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
    ".google.protobuf.Duration": {"type": "string", "description": "Seconds with an `s` suffix, e.g. `1.5s`."},
    ".google.protobuf.FieldMask": {"type": "string"},
    ".google.protobuf.Empty": {"type": "object"},
    ".google.protobuf.Any": {"type": "object", "properties": {"@type": {"type": "string"}},
                             "additionalProperties": True},
    ".google.protobuf.DoubleValue": {"type": "number", "nullable": True},
    ".google.protobuf.FloatValue": {"type": "number", "nullable": True},
    ".google.protobuf.Int32Value": {"type": "integer", "format": "int32", "nullable": True},
    ".google.protobuf.UInt32Value": {"type": "integer", "format": "int64", "nullable": True},
    ".google.protobuf.Int64Value": {**_INT64, "nullable": True},
    ".google.protobuf.UInt64Value": {**_INT64, "nullable": True},
    ".google.protobuf.BoolValue": {"type": "boolean", "nullable": True},
    ".google.protobuf.StringValue": {"type": "string", "nullable": True},
    ".google.protobuf.BytesValue": {"type": "string", "format": "byte", "nullable": True},
    ".google.api.HttpBody": {"type": "string", "format": "binary"},
}
HTTP_BODY = ".google.api.HttpBody"
REQUIRED = re.compile(r"\bRequired\b")  # a field's comment says "Required." when the server needs it


def clean(comment: str) -> str:
    """A proto comment as Markdown text: common indentation and `buf:lint` directives removed."""
    lines = [line for line in comment.splitlines() if not line.strip().startswith("buf:lint:")]
    indent = min((len(line) - len(line.lstrip(" ")) for line in lines if line.strip()), default=0)
    return "\n".join(line[indent:] for line in lines).strip()


class Comments:
    """Leading comments of every element of the descriptor set's files, by element."""

    def __init__(self, files: list[descriptor_pb2.FileDescriptorProto]):
        self._by_file = {f.name: {tuple(loc.path): clean(loc.leading_comments)
                                  for loc in f.source_code_info.location if loc.leading_comments}
                         for f in files}

    def get(self, file: str, path: tuple[int, ...]) -> str:
        return self._by_file.get(file, {}).get(path, "")


class Schemas:
    """The components/schemas of a document, filled as messages and enums are referenced."""

    def __init__(self, files: list[descriptor_pb2.FileDescriptorProto], comments: Comments):
        self.comments = comments
        self.components: dict[str, dict] = {}
        # ".pkg.Msg" → (descriptor, file name, source path, short name "Msg" / "Outer.Inner")
        self.messages: dict[str, tuple] = {}
        self.enums: dict[str, tuple] = {}
        for f in files:
            for i, message in enumerate(f.message_type):
                self._index_message(message, f, (MESSAGE_TYPE, i), f".{f.package}", "")
            for i, enum in enumerate(f.enum_type):
                self.enums[f".{f.package}.{enum.name}"] = (enum, f.name, (ENUM_TYPE, i), enum.name)
        ours = {full: short for full, (*_, short) in [*self.messages.items(), *self.enums.items()]
                if not full.startswith(".google.")}
        shorts: dict[str, int] = {}
        for short in ours.values():
            shorts[short] = shorts.get(short, 0) + 1
        # Components are named by the short name; one used in two packages is qualified by the
        # package's service name (`tasks.Task`); Google's types by their full name.
        self._names = {full: full[1:] for full in [*self.messages, *self.enums]}
        for full, short in ours.items():
            service = re.sub(r"^\.(firecrest_mesh\.)?|\.v\d+\..*$", "", full)
            self._names[full] = short if shorts[short] == 1 else f"{service}.{short}"

    def _index_message(self, message, f, path, scope, outer):
        full, short = f"{scope}.{message.name}", f"{outer}{message.name}"
        self.messages[full] = (message, f.name, path, short)
        for k, nested in enumerate(message.nested_type):
            self._index_message(nested, f, (*path, MESSAGE_NESTED, k), full, f"{short}.")
        for k, enum in enumerate(message.enum_type):
            self.enums[f"{full}.{enum.name}"] = (enum, f.name, (*path, MESSAGE_ENUM, k), f"{short}.{enum.name}")

    # --- messages and fields -------------------------------------------------------------------

    def message(self, type_name: str) -> descriptor_pb2.DescriptorProto:
        return self.messages[type_name][0]

    def message_comment(self, type_name: str) -> str:
        _, file, path, _ = self.messages[type_name]
        return self.comments.get(file, path)

    def field_comment(self, type_name: str, index: int) -> str:
        _, file, path, _ = self.messages[type_name]
        return self.comments.get(file, (*path, MESSAGE_FIELD, index))

    def is_required(self, type_name: str, index: int) -> bool:
        return bool(REQUIRED.search(self.field_comment(type_name, index)))

    def ref(self, type_name: str) -> dict:
        """`{"$ref": ...}` to the component of a message or enum (built on first use), or the inline
        schema of a well-known type."""
        if type_name in WELL_KNOWN:
            return dict(WELL_KNOWN[type_name])
        name = self._names[type_name]
        if name not in self.components:
            self.components[name] = {}  # placeholder: recursive messages refer to themselves
            if type_name in self.enums:
                self.components[name] = self._enum(type_name)
            else:
                self.components[name] = self.object(type_name)
        return {"$ref": f"#/components/schemas/{name}"}

    def object(self, type_name: str, exclude: set[str] = frozenset()) -> dict:
        """The object schema of a message, without the fields named in `exclude` (proto names)."""
        message = self.message(type_name)
        properties, required = {}, []
        for index, field in enumerate(message.field):
            if field.name in exclude:
                continue
            schema = self.field(field)
            comment = self.field_comment(type_name, index)
            properties[field.json_name] = with_description(schema, comment)
            if REQUIRED.search(comment):
                required.append(field.json_name)
        schema = {"type": "object", "properties": properties}
        if required:
            schema["required"] = required
        if description := self.message_comment(type_name):
            schema["description"] = description
        return schema

    def field(self, field: descriptor_pb2.FieldDescriptorProto) -> dict:
        """A field's value schema: arrays for repeated fields, objects for maps."""
        if field.type == FD.TYPE_MESSAGE and field.label == FD.LABEL_REPEATED:
            entry = self.messages.get(field.type_name, (None,))[0]
            if entry is not None and entry.options.map_entry:
                return {"type": "object", "additionalProperties": self.field(entry.field[1])}
        if field.type in (FD.TYPE_MESSAGE, FD.TYPE_ENUM):
            item = self.ref(field.type_name)
        else:
            item = dict(SCALARS[field.type])
        if field.label == FD.LABEL_REPEATED:
            return {"type": "array", "items": item}
        return item

    # --- enums ---------------------------------------------------------------------------------

    def _enum(self, type_name: str) -> dict:
        enum, file, path, _ = self.enums[type_name]
        lines = [self.comments.get(file, path)] if self.comments.get(file, path) else []
        for index, value in enumerate(enum.value):
            if comment := self.comments.get(file, (*path, ENUM_VALUE, index)):
                lines.append(f"- `{value.name}`: {' '.join(comment.split())}")
        schema = {"type": "string", "enum": [value.name for value in enum.value]}
        if lines:
            schema["description"] = "\n".join(lines)
        return schema


def with_description(schema: dict, description: str) -> dict:
    """`schema` with a description; a `$ref` is wrapped in allOf (OpenAPI 3.0 ignores a $ref's siblings)."""
    if not description:
        return schema
    if "$ref" in schema:
        return {"allOf": [schema], "description": description}
    return {**schema, "description": "\n\n".join(filter(None, (schema.get("description"), description)))}
