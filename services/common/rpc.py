"""What every servicer needs from an RPC, in one place: the verified caller, the system it names,
a metadata value, and the HTTP success code the gateway should answer with.

Handlers stay thin: `who, system = rpc.caller_and_system(config, request.system_name)`, build the
command with its module, run it, shape the answer, and `await rpc.created(context)` / `no_content`
where FirecREST v2 answers 201 / 204.
"""

from __future__ import annotations

import grpc

from services.common.config import Config, SystemConfig
from services.common.errors import system_not_found
from services.common.identity import Caller, caller

HTTP_CODE_KEY = "x-http-code"  # the gateway answers with this status instead of 200 (or the error's)

__all__ = ["Caller", "caller", "caller_and_system", "created", "metadata_value", "no_content", "require_system"]


def require_system(config: Config, name: str) -> SystemConfig:
    """The system called `name`, or FirecREST v2's 404 for an unknown one."""
    system = config.system(name or "")
    if system is None:
        raise system_not_found()
    return system


def caller_and_system(config: Config, system_name: str) -> tuple[Caller, SystemConfig]:
    """The verified caller of this RPC and the system its request names."""
    return caller(), require_system(config, system_name)


def first_value(metadata, key: str) -> str | None:
    """The first value of `key` (lower-case) in RPC metadata (key, value pairs), or None."""
    return next((v for k, v in metadata or () if k == key), None)


def metadata_value(context: grpc.aio.ServicerContext, key: str) -> str | None:
    """The first value of metadata `key` (lower-case) sent with the RPC, or None."""
    return first_value(context.invocation_metadata(), key)


async def send_http_code(context: grpc.aio.ServicerContext, code: int) -> None:
    """Asks the gateway to answer a successful call with `code` instead of 200."""
    await context.send_initial_metadata(((HTTP_CODE_KEY, str(code)),))


async def created(context: grpc.aio.ServicerContext) -> None:
    """201 Created (e.g. a submitted job)."""
    await send_http_code(context, 201)


async def no_content(context: grpc.aio.ServicerContext) -> None:
    """204 No Content (the gateway also drops the empty body)."""
    await send_http_code(context, 204)
