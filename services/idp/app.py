"""The Flask application: discovery document, JWKS and the client credentials token endpoint."""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749.grants import ClientCredentialsGrant
from flask import Flask, jsonify, request

from services.common import metrics
from services.common.config import Config

from .clients import AUTH_METHODS, load_clients
from .discovery import discovery_document, discovery_path
from .signing_key import load_signing_key, public_jwks
from .tokens import TokenGenerator

log = logging.getLogger("services.idp")


class _ClientCredentialsGrant(ClientCredentialsGrant):
    # Authlib's default is client_secret_basic only.
    TOKEN_ENDPOINT_AUTH_METHODS = list(AUTH_METHODS)


class _AuthorizationServer(AuthorizationServer):
    def handle_error_response(self, request, error):
        # Authlib answers 401 only for a bad secret; an unknown client_id sent in the form gets
        # 400. Use 401 (with WWW-Authenticate) for every client authentication failure, and one
        # description, so that responses do not reveal which client_ids exist.
        if error.error == "invalid_client":
            error.status_code = 401
            error.description = "Client authentication failed."
        return super().handle_error_response(request, error)


def create_app(cfg: Config) -> Flask:
    identity = cfg.identity
    provider = identity.embedded_provider
    if provider is None:
        raise ValueError("identity.embedded_provider is not configured")
    key = load_signing_key(cfg)
    clients = load_clients(cfg)
    jwks = public_jwks(key)
    discovery = discovery_document(identity)

    app = Flask("services.idp")
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024

    server = _AuthorizationServer(app, query_client=clients.get,
                                  save_token=lambda token, req: None)  # tokens are stateless JWTs
    # After init_app, which registers Authlib's opaque-token generator as "default".
    server.register_token_generator(
        "default", TokenGenerator(identity, key, provider.token_lifetime_seconds))
    server.register_grant(_ClientCredentialsGrant)

    @app.get(discovery_path(identity))
    def openid_configuration():
        return jsonify(discovery)

    @app.get(urlsplit(identity.jwks_uri).path)
    def jwks_document():
        return jsonify(jwks)

    @app.post(urlsplit(identity.token_url).path)
    def token():
        return server.create_token_response()

    @app.after_request
    def log_request(response):
        # Path only: no query string, body or headers, so no secrets or tokens reach the log.
        log.info("%s %s %s %d", request.remote_addr, request.method, request.path, response.status_code)
        # Labelled by the matched route (a handful), never the raw path.
        endpoint = request.url_rule.rule if request.url_rule is not None else "unmatched"
        metrics.IDP_REQUESTS.labels(endpoint, str(response.status_code)).inc()
        return response

    log.info("issuer %s, signing key kid %s, %d clients", identity.issuer, key.kid, len(clients))
    return app
