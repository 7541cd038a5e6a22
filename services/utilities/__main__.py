"""`python -m services.utilities`: runs the utilities service on its configured loopback address."""

from services.common.server import run
from services.utilities.service import register

run("utilities", register)
