"""`python -m services.storage`: runs the storage service on its configured loopback address."""

from services.common.server import run
from services.storage.service import register

run("storage", register)
