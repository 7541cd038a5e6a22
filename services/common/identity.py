"""Who is calling: read only from the metadata the gateway sets after it verified the token.

The gateway strips any client-sent `x-firecrest-username`, verifies the JWT, then sets the header from
the token's username claim and forwards the `authorization` header. Services trust nothing else; the
certificator verifies the forwarded token again before signing, so a request that did not come
through the gateway cannot act on a cluster.
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc

from services.common.config import USERNAME_RE
from services.common.errors import BadRequest, Unauthenticated

USERNAME_HEADER = "x-firecrest-username"
AUTHORIZATION_HEADER = "authorization"


@dataclass(frozen=True)
class Caller:
    """The authenticated caller of one request."""

    username: str
    access_token: str

    def __repr__(self) -> str:  # never print the token
        return f"Caller(username={self.username!r})"


def caller_from_metadata(metadata, username_claim: str = "preferred_username") -> Caller:
    """The caller named by the gateway's metadata.

    No bearer token: Unauthenticated. A verified token without the username claim reaches us with
    no username header: 400, as FirecREST v2 answers.
    """
    values = {}
    for key, value in metadata or ():
        values.setdefault(key.lower(), value)
    username = values.get(USERNAME_HEADER, "")
    auth = values.get(AUTHORIZATION_HEADER, "")
    if not auth.startswith("Bearer "):
        raise Unauthenticated("Not authenticated")
    if not username:
        raise BadRequest(f"Authentication token '{username_claim}' claim is missing")
    if not USERNAME_RE.match(username):
        raise BadRequest("Authentication token username is not a valid user name")
    return Caller(username=username, access_token=auth[len("Bearer "):])


def caller(context: grpc.aio.ServicerContext) -> Caller:
    return caller_from_metadata(context.invocation_metadata())
