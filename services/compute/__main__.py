"""`python -m services.compute`: runs the compute service on its configured loopback address."""

from services.common.server import run
from services.compute.service import register

run("compute", register)
