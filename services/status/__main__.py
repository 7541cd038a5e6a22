"""`python -m services.status`: runs the status service on its configured loopback address."""

from services.common.server import run
from services.status.service import register

# Liveness is FirecREST's public probe: no token, but still only through the gateway (mutual TLS).
run("status", register, public_methods=frozenset({"/firecrest_mesh.status.v1.StatusService/GetLiveness"}))
