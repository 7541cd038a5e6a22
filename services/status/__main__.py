"""`python -m services.status`: runs the status service on its configured loopback address."""

from services.common.server import run
from services.status.service import register

run("status", register)
