"""gRPC server reflection for the whole public API, served by one service behind the gateway.

The gateway routes `/grpc.reflection.*` to a single cluster, so that service describes every public
service (not only its own): generic gRPC tools then discover the full API through the gateway. The
internal certificator is left out.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from grpc_reflection.v1alpha import reflection, reflection_pb2_grpc

INTERNAL_PACKAGES = ("firecrest_mesh.certificator.",)


def public_service_names() -> list[str]:
    """Full names of every service in the generated firecrest_mesh packages, minus internal ones."""
    import firecrest_mesh
    names = []
    # The generated packages have no __init__.py (namespace packages), so walk the files.
    for root in firecrest_mesh.__path__:
        for file in sorted(Path(root).glob("*/v*/*_pb2.py")):
            module_name = "firecrest_mesh." + ".".join(file.relative_to(root).with_suffix("").parts)
            if module_name.startswith(INTERNAL_PACKAGES):
                continue
            module = importlib.import_module(module_name)
            names += [s.full_name for s in module.DESCRIPTOR.services_by_name.values()]
    return sorted(names)


def enable(server) -> None:
    """Adds the asyncio reflection servicer to `server` (a grpc.aio server, or the AdmittingServer that
    wraps one: `enable_server_reflection` would take that wrapper for a synchronous server and add
    the synchronous servicer, whose calls then fail with INTERNAL)."""
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(
        reflection.aio.ReflectionServicer([*public_service_names(), reflection.SERVICE_NAME]), server)
