"""Typed API errors and their one mapping to gRPC status codes and FirecREST HTTP status codes.

Handlers raise an `ApiError` subclass; `services.common.server` turns it into a gRPC status plus the
trailing metadata `x-http-code`, which the gateway uses as the HTTP status (needed for codes such as
408, 413 and 424 that have no gRPC equivalent).
"""

from __future__ import annotations

import grpc

# HTTP status → the gRPC code whose fixed gateway mapping is closest (the gateway then applies
# x-http-code, so the pairing only matters to native gRPC clients).
_GRPC_CODE_FOR_HTTP = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    408: grpc.StatusCode.DEADLINE_EXCEEDED,
    409: grpc.StatusCode.ALREADY_EXISTS,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    424: grpc.StatusCode.UNAVAILABLE,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    500: grpc.StatusCode.INTERNAL,
    501: grpc.StatusCode.UNIMPLEMENTED,
    503: grpc.StatusCode.UNAVAILABLE,
}


class ApiError(Exception):
    """An error the caller can act on, with the HTTP status FirecREST v2 uses for it."""

    http_status = 500

    def __init__(self, message: str, *, http_status: int | None = None):
        super().__init__(message)
        self.message = message
        if http_status is not None:
            self.http_status = http_status

    @property
    def grpc_code(self) -> grpc.StatusCode:
        return _GRPC_CODE_FOR_HTTP.get(self.http_status, grpc.StatusCode.UNKNOWN)


# The errors handlers raise, one status each (one line each: all they add to ApiError is the status).
class BadRequest(ApiError): http_status = 400
class Unauthenticated(ApiError): http_status = 401
class Forbidden(ApiError): http_status = 403
class NotFound(ApiError): http_status = 404
class RequestTimeout(ApiError): http_status = 408  # a remote command or SSH login outlived its timeout
class PayloadTooLarge(ApiError): http_status = 413
class SshConnectionFailed(ApiError): http_status = 424  # no SSH connection to the system (v2: 424)
class InternalError(ApiError): http_status = 500
class ServiceUnavailable(ApiError): http_status = 503


def system_not_found() -> NotFound:
    return NotFound("System not found")
