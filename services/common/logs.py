"""Structured (JSON lines) logging with the request id of the request being served.

`services.common.server` sets `request_id` for each RPC from the gateway's `x-request-id`; every log
record written while serving it carries that id. Never log tokens, keys or certificates.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
username: contextvars.ContextVar[str] = contextvars.ContextVar("username", default="-")


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str):
        super().__init__()
        self.service = service
        self._second = -1
        self._second_text = ""

    def _time(self, created: float, msecs: float) -> str:
        second = int(created)
        if second != self._second:  # strftime once a second, not once a record
            self._second_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = second
        return f"{self._second_text}.{int(msecs):03d}Z"

    def line(self, level: str, logger: str, message: str, fields: dict | None, created: float, msecs: float) -> str:
        """One JSON log line (no newline) with the current request id and user."""
        entry = {
            "time": self._time(created, msecs),
            "level": level,
            "service": self.service,
            "logger": logger,
            "request_id": request_id.get(),
            "user": username.get(),
            "message": message,
        }
        if fields:
            entry.update(fields)
        return json.dumps(entry, default=str)

    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "fields", None)
        if record.exc_info:
            fields = {**(fields or {}), "exception": self.formatException(record.exc_info)}
        return self.line(record.levelname.lower(), record.name, record.getMessage(), fields,
                         record.created, record.msecs)


_RPC_LOG = logging.getLogger("services.common.server")  # the server's own logger: its lines' name
_handler: logging.StreamHandler | None = None


def rpc_ok(method: str, ms: float) -> None:
    """The line every successful RPC leaves (`<method> ok`, its milliseconds), as logging would write
    it, without a LogRecord and the handler chain: it is on every request's path (~3x cheaper)."""
    logger = _RPC_LOG
    if not logger.isEnabledFor(logging.INFO):
        return
    fields = {"method": method, "ms": round(ms, 2)}
    handler = _handler
    if handler is None or logging.getLogger().handlers != [handler] or logger.handlers:
        logger.info("%s ok", method, extra={"fields": fields})  # logging set up otherwise (tests)
        return
    now = time.time()
    text = handler.formatter.line("info", logger.name, f"{method} ok", fields, now, (now % 1) * 1000)
    handler.acquire()
    try:
        handler.stream.write(text + "\n")
        handler.stream.flush()
    finally:
        handler.release()


def setup(service: str, level: str = "INFO") -> None:
    """Routes every logger of the process to stderr as JSON lines tagged with `service`."""
    global _handler
    handler = _handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("paramiko").setLevel(logging.WARNING)
    # The JSON lines carry none of the source file, thread or process fields: spare every record
    # the stack walk and look-ups that fill them (a per-request cost on the hot path).
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
