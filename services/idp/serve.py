"""The HTTP server: threaded, loopback only."""

from __future__ import annotations

import ipaddress
import logging
import signal
import sys

from werkzeug.serving import make_server

from services.common import metrics
from services.common.config import Config

from .app import create_app

log = logging.getLogger("services.idp")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def serve(cfg: Config) -> None:
    """Serves the provider on identity.embedded_provider.listen until SIGTERM or SIGINT."""
    provider = cfg.identity.embedded_provider
    if provider is None:
        raise SystemExit("identity.embedded_provider is not configured: nothing to serve")
    listen = provider.listen
    if not _is_loopback(listen.host):
        raise SystemExit(f"identity.embedded_provider.listen: {listen} is not a loopback address")
    app = create_app(cfg)
    metrics.start(cfg, "idp")  # GET /metrics on metrics.exporters.idp (requests by route and status)
    # Werkzeug's development server is adequate here: a local, loopback-only provider with a
    # handful of clients. A deployment facing real users would use an external OIDC provider.
    server = make_server(listen.host.strip("[]"), listen.port, app, threaded=True)
    # Our after_request hook logs each request; werkzeug's own line would include query strings.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    log.info("listening on http://%s", listen)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        log.info("stopped")
