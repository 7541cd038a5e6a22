"""OAuth2 client credentials grant (RFC 6749 §4.4) against any OIDC provider's token endpoint.

For components that act as a service account, e.g. the health checker, and for tests and benchmarks
that need a user's token. Works with the embedded provider (services/idp) and with external ones
(Keycloak, ...): it only needs the `token_url`, a client id and its secret.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.parse
import urllib.request

DEFAULT_TIMEOUT_SECONDS = 5.0


class TokenRequestError(RuntimeError):
    """The token endpoint refused the request, did not answer in time or answered nonsense.

    The message names the client and the endpoint, never the secret.
    """


def fetch_token(token_url: str, client_id: str, client_secret: str,
                timeout: float = DEFAULT_TIMEOUT_SECONDS) -> str:
    """A fresh access token for `client_id`, authenticating with HTTP Basic (client_secret_basic).

    `timeout` (seconds) bounds connecting and each read. Raises TokenRequestError.
    """
    if not timeout > 0:
        raise ValueError(f"timeout must be positive, not {timeout!r}")
    what = f"token request for {client_id} to {token_url}"
    # RFC 6749 §2.3.1: the id and secret are form-urlencoded before Basic encoding.
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
        raise TokenRequestError(f"{what} refused: HTTP {exc.code}{_oauth_error(exc)}") from None
    except TimeoutError:
        raise TokenRequestError(f"{what}: no answer within {timeout:g} s") from None
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, TimeoutError):
            raise TokenRequestError(f"{what}: no answer within {timeout:g} s") from None
        raise TokenRequestError(f"{what} failed: {exc.reason}") from None
    except OSError as exc:
        raise TokenRequestError(f"{what} failed: {exc}") from None
    except ValueError:
        raise TokenRequestError(f"{what}: the answer is not JSON") from None
    token = body.get("access_token") if isinstance(body, dict) else None
    if not isinstance(token, str) or not token:
        raise TokenRequestError(f"{what}: the answer has no access_token")
    return token


def _oauth_error(exc: urllib.error.HTTPError) -> str:
    """' invalid_client (Client authentication failed.)' from an RFC 6749 §5.2 error body, or ''."""
    try:
        body = json.loads(exc.read(64 * 1024))
    except (OSError, ValueError):
        return ""
    if not isinstance(body, dict) or not isinstance(body.get("error"), str):
        return ""
    description = body.get("error_description")
    return f" {body['error']}" + (f" ({description})" if isinstance(description, str) and description else "")
