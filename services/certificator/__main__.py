"""`python -m services.certificator`: runs the certificator on its configured loopback address."""

from services.certificator.service import register
from services.common.server import run

run("certificator", register)
