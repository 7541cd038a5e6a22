"""A tiny client-side helper: get an access token with the client credentials grant."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.parse
import urllib.request


class TokenError(RuntimeError):
    """The token endpoint refused the request or could not be reached."""


def fetch_token(token_url: str, client_id: str, client_secret: str, timeout: float = 5) -> str:
    """The access token for `client_id`, authenticating with HTTP Basic (client_secret_basic)."""
    basic = base64.b64encode(
        f"{urllib.parse.quote(client_id, safe='')}:{urllib.parse.quote(client_secret, safe='')}"
        .encode()).decode()
    req = urllib.request.Request(
        token_url, method="POST",
        data=urllib.parse.urlencode({"grant_type": "client_credentials"}).encode(),
        headers={"Authorization": f"Basic {basic}",
                 "Content-Type": "application/x-www-form-urlencoded",
                 "Accept": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            body = json.load(resp)
    except urllib.error.HTTPError as exc:
        try:
            error = json.load(exc).get("error", "")
        except ValueError:
            error = ""
        raise TokenError(f"token request for {client_id} failed: HTTP {exc.code} {error}".rstrip()) from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise TokenError(f"token request for {client_id} failed: {exc}") from None
    token = body.get("access_token") if isinstance(body, dict) else None
    if not isinstance(token, str) or not token:
        raise TokenError(f"token response for {client_id} has no access_token")
    return token
