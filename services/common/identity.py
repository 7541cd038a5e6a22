"""Who is calling: the user named by the access token, verified by this service on every RPC.

The gateway verifies the token too, but a header is never an identity: the server's admission
(`services.common.server`) calls `authenticate()` with the RPC's metadata before any handler runs,
and handlers get the result from `caller(context)`. The gateway's `x-firecrest-username`, when sent,
must name the same user as the token (else 403). SSH pools and certificate caches take only a
`Caller`, i.e. a verified token, and refuse one that has expired.
"""

from __future__ import annotations

import contextvars

import grpc

from services.common.errors import Forbidden, Unauthenticated
from services.common.token_verifier import TokenVerifier, VerifiedToken

USERNAME_HEADER = "x-firecrest-username"
AUTHORIZATION_HEADER = "authorization"

# The verified caller of an RPC: a token that passed TokenVerifier (username, token, expiry).
Caller = VerifiedToken

_current_caller: contextvars.ContextVar[Caller | None] = contextvars.ContextVar("caller", default=None)


def bearer_token(metadata) -> tuple[str, str | None]:
    """(token, gateway username header) from the RPC metadata. The `Bearer` scheme is matched
    case-insensitively (RFC 7235). No token: Unauthenticated."""
    auth = username = None
    for key, value in metadata or ():
        key = key.lower()
        if key == AUTHORIZATION_HEADER and auth is None:
            auth = value
        elif key == USERNAME_HEADER and username is None:
            username = value
    scheme, _, token = (auth or "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthenticated("Not authenticated")
    return token, username


def require_same_user(caller: Caller, gateway_username: str | None) -> Caller:
    """`caller`, unless the gateway's username header names someone else (403)."""
    if gateway_username is not None and gateway_username != caller.username:
        raise Forbidden("The username header does not match the access token")
    return caller


def authenticate(metadata, verifier: TokenVerifier) -> Caller:
    """Verifies the RPC's token and returns its caller (see module docstring); blocking."""
    token, gateway_username = bearer_token(metadata)
    return require_same_user(verifier.verify(token), gateway_username)


async def authenticate_async(metadata, verifier: TokenVerifier) -> Caller:
    """authenticate() for the event loop (see TokenVerifier.verify_async)."""
    token, gateway_username = bearer_token(metadata)
    return require_same_user(await verifier.verify_async(token), gateway_username)


def set_caller(value: Caller | None) -> None:
    """Records the verified caller of the current RPC (the server's admission does this)."""
    _current_caller.set(value)


def caller(context: grpc.aio.ServicerContext | None = None) -> Caller:
    """The verified caller of the current RPC. Unauthenticated when no token was verified."""
    value = _current_caller.get()
    if value is None:
        raise Unauthenticated("Not authenticated")
    return value
