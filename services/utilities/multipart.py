"""The one file of a multipart/form-data request body (ops/upload), parsed byte-exactly.

The gateway hands the raw body and its content type to the service (a `google.api.HttpBody`); it
does not parse multipart. This parser splits on the boundary itself rather than going through the
`email` package, which normalises line endings of text parts. It accepts the filename encodings that
clients send: quoted with backslash escapes (httpx), HTML5 percent escapes for `"`, CR and LF
(browsers, httpx), and RFC 5987 `filename*=UTF-8''...`.
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass

from services.common.errors import BadRequest

_PARAM = re.compile(r';\s*([A-Za-z0-9_*-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)', re.S)
_HTML5_ESCAPES = {"%22": '"', "%0D": "\r", "%0A": "\n", "%0d": "\r", "%0a": "\n"}


@dataclass(frozen=True)
class FormFile:
    """An uploaded file: its name as the client gave it, and its bytes."""

    filename: str
    data: bytes


def header_params(value: str) -> tuple[str, dict[str, str]]:
    """`form-data; name="file"; filename="a b"` → ("form-data", {"name": "file", "filename": "a b"})."""
    main, _, rest = value.partition(";")
    params = {}
    for key, raw in _PARAM.findall(";" + rest):
        raw = raw.strip()
        if raw.startswith('"') and raw.endswith('"') and len(raw) >= 2:
            raw = re.sub(r"\\(.)", r"\1", raw[1:-1], flags=re.S)
        params[key.lower()] = raw
    return main.strip().lower(), params


def _filename(params: dict[str, str]) -> str | None:
    if "filename*" in params:
        charset, _, rest = params["filename*"].partition("'")
        _lang, _, encoded = rest.partition("'")
        return urllib.parse.unquote(encoded, encoding=charset or "utf-8", errors="replace")
    if "filename" in params:
        return re.sub(r"%(22|0D|0A|0d|0a)", lambda m: _HTML5_ESCAPES[m.group(0)], params["filename"])
    return None


def boundary_of(content_type: str) -> bytes:
    kind, params = header_params(content_type or "")
    if kind != "multipart/form-data" or not params.get("boundary"):
        raise BadRequest("Expected a multipart/form-data body with a boundary.")
    return params["boundary"].encode("latin-1")


def form_file(body: bytes, content_type: str, field: str = "file") -> FormFile:
    """The part named `field` that carries a filename; BadRequest when there is none."""
    delimiter = b"--" + boundary_of(content_type)
    # The body is: preamble, then for each part "--boundary\r\n<headers>\r\n\r\n<data>\r\n", then
    # "--boundary--". Parts are separated by CRLF + delimiter; the first delimiter may start the body.
    if body.startswith(delimiter):
        body = b"\r\n" + body
    chunks = body.split(b"\r\n" + delimiter)
    for chunk in chunks[1:]:
        if chunk.startswith(b"--"):
            break  # the closing delimiter
        head, sep, data = chunk.partition(b"\r\n\r\n")
        if not sep:
            raise BadRequest("Malformed multipart/form-data part: no header end.")
        headers = {}
        for line in head.split(b"\r\n")[1:]:  # [0] is the rest of the delimiter line
            name, _, value = line.decode("utf-8", errors="replace").partition(":")
            headers[name.strip().lower()] = value.strip()
        kind, params = header_params(headers.get("content-disposition", ""))
        if kind == "form-data" and params.get("name") == field:
            filename = _filename(params)
            if filename is None:
                raise BadRequest(f"The multipart field `{field}` has no filename.")
            return FormFile(filename, data)
    raise BadRequest(f"The multipart/form-data body has no field `{field}`.")


def safe_filename(filename: str) -> str:
    """`filename` when it can be used as one directory entry; BadRequest otherwise."""
    if filename in ("", ".", "..") or "/" in filename or "\x00" in filename:
        raise BadRequest(f"Invalid upload filename {filename!r}.")
    return filename
