"""gRPC servicer of firecrest_mesh.status.v1.StatusService (FirecREST v2 `/status/...`).

Thin: the configured systems with their latest health (`health.HealthChecker`), and the scheduler's
view of a system (nodes, partitions, reservations, userinfo) through `services.slurm`'s `SlurmClient`,
as the verified caller; the mesh's own components with their latest availability check
(`components.ComponentChecker`, `GET /status/services`).
"""

from __future__ import annotations

import time

from firecrest_mesh.status.v1 import status_pb2, status_pb2_grpc
from services.common import reflection, rpc
from services.common.config import Config, SystemConfig
from services.common.ssh.pool import SshPool
from services.common.ssh.runner import CommandRunner
from services.slurm.client import SlurmClient
from services.status.components import ComponentChecker
from services.status.health import HealthChecker


def system_view(system: SystemConfig, config: Config, health) -> status_pb2.System:
    """The FirecREST v2 `HPCCluster` document of a configured system with its latest health."""
    t = system.ssh.timeouts
    view = status_pb2.System(
        name=system.name,
        ssh=status_pb2.SshSettings(
            host=system.ssh.host, port=system.ssh.port, max_clients=system.ssh.max_connections_per_user,
            timeout=status_pb2.SshTimeouts(connection=t.connection, login=t.login,
                                           command_execution=t.command_execution, idle_timeout=t.idle,
                                           keep_alive=t.keep_alive)),
        scheduler=status_pb2.SchedulerSettings(type=system.scheduler.type, connection_mode="ssh",
                                               version=health.scheduler_version,
                                               timeout=system.scheduler.timeout),
        services_health=health.services,
        probing=status_pb2.ProbingSettings(
            services={name: status_pb2.ProbingService(timeout=config.health.timeout_seconds)
                      for name in ("ssh", "scheduler", "filesystem")},
            interval_check=config.health.interval_seconds),
        file_systems=[status_pb2.FileSystem(path=fs.path, data_type=fs.data_type,
                                            default_work_dir=fs.default_work_dir)
                      for fs in system.file_systems],
        data_operation=status_pb2.DataOperation(
            datatransfer_jobs_directives=list(system.datatransfer_jobs_directives),
            max_ops_file_size=system.max_ops_file_size),
    )
    if health.finished_at:
        view.last_health_check = health.finished_at
    return view


class StatusService(status_pb2_grpc.StatusServiceServicer):
    def __init__(self, config: Config, slurm: SlurmClient, health: HealthChecker,
                 components: ComponentChecker | None = None):
        self._config = config
        self._slurm = slurm
        self._health = health
        self._components = components
        self._systems: tuple[tuple, status_pb2.ListSystemsResponse] | None = None

    async def ListSystems(self, request, context):
        rpc.caller()  # any authenticated user may list systems
        # The answer changes only when a health check replaces a system's result: built once per
        # set of results (the objects themselves are the key), not on every request.
        results = tuple(self._health.results[s.name] for s in self._config.systems)
        if self._systems is None or any(a is not b for a, b in zip(self._systems[0], results)):
            self._systems = (results, status_pb2.ListSystemsResponse(systems=[
                system_view(s, self._config, h) for s, h in zip(self._config.systems, results)]))
        return self._systems[1]

    async def ListNodes(self, request, context):
        who, system = rpc.caller_and_system(self._config, request.system_name)
        return status_pb2.ListNodesResponse(nodes=await self._slurm.nodes(who, system))

    async def ListPartitions(self, request, context):
        who, system = rpc.caller_and_system(self._config, request.system_name)
        return status_pb2.ListPartitionsResponse(
            partitions=await self._slurm.partitions(who, system, request.show_hidden))

    async def ListReservations(self, request, context):
        who, system = rpc.caller_and_system(self._config, request.system_name)
        return status_pb2.ListReservationsResponse(reservations=await self._slurm.reservations(who, system))

    async def GetUserInfo(self, request, context):
        who, system = rpc.caller_and_system(self._config, request.system_name)
        return await self._slurm.userinfo(who, system)

    async def ListServices(self, request, context):
        rpc.caller()  # any authenticated user, like ListSystems
        entries = self._components.results() if self._components is not None else []
        return status_pb2.ListServicesResponse(
            services=entries, interval_check=self._config.health.components_interval_seconds)

    async def GetLiveness(self, request, context):
        runs = {name: h.finished_at for name, h in self._health.results.items() if h.finished_at}
        checked = [h.finished_monotonic for h in self._health.results.values() if h.finished_monotonic]
        last_update = int(time.monotonic() - min(checked)) if checked else 0
        return status_pb2.GetLivenessResponse(healthcheck_runs=runs, last_update=last_update)


def register(server, config: Config):
    pool = SshPool.for_service(config, "status")
    health = HealthChecker(config, pool)
    components = ComponentChecker(config)  # GET /status/services
    status_pb2_grpc.add_StatusServiceServicer_to_server(
        StatusService(config, SlurmClient(CommandRunner(pool)), health, components), server)
    reflection.enable(server)  # the gateway routes /grpc.reflection.* here, for the whole API
    health.start()
    components.start()

    async def shutdown():
        await components.stop()
        await health.stop()
        await pool.close()
    return (shutdown,)
