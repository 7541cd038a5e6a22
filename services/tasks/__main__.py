"""`python -m services.tasks`: runs the tasks service on its configured address. Its internal
TaskRecordsService admits only the mesh's services (no user token)."""

from services.common.server import run
from services.tasks.service import register

run("tasks", register, internal_services=frozenset({"firecrest_mesh.tasks.v1.TaskRecordsService"}))
