"""gRPC servicer of firecrest_mesh.status.v1.StatusService (FirecREST v2 `/status/...`)."""

from __future__ import annotations

import asyncio
import time

from firecrest_mesh.status.v1 import status_pb2, status_pb2_grpc
from services.common import reflection, slurm_errors
from services.common.config import Config, SystemConfig
from services.common.identity import Caller, caller
from services.common.ssh.command import CommandResult, shell_join, with_timeout
from services.common.ssh.pool import SshPool
from services.common.rpc import require_system
from services.status.commands import nodes, partitions, reservations, userinfo
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
    def __init__(self, config: Config, pool: SshPool, health: HealthChecker):
        self._config = config
        self._pool = pool
        self._health = health

    async def _run(self, who: Caller, system: SystemConfig, argv: list[str]) -> CommandResult:
        """Runs a scheduler query; a failure becomes the error Slurm's message calls for (503 when the
        scheduler is down, 408 on timeout, else 500 with the command's error text)."""
        timeout = system.scheduler.timeout
        result = await self._pool.run(who, system, shell_join(with_timeout(timeout, argv)), timeout=timeout + 2)
        if not result.ok:
            raise slurm_errors.error_for(result, argv[0])
        return result

    async def ListSystems(self, request, context):
        caller(context)  # any authenticated user may list systems
        return status_pb2.ListSystemsResponse(systems=[
            system_view(s, self._config, self._health.results[s.name]) for s in self._config.systems])

    async def ListNodes(self, request, context):
        who, system = caller(context), require_system(self._config, request.system_name)
        result = await self._run(who, system, nodes.ARGV)
        return status_pb2.ListNodesResponse(nodes=nodes.parse(result.text()))

    async def ListPartitions(self, request, context):
        who, system = caller(context), require_system(self._config, request.system_name)
        result = await self._run(who, system, partitions.ARGV)
        return status_pb2.ListPartitionsResponse(partitions=partitions.parse(result.text(), request.show_hidden))

    async def ListReservations(self, request, context):
        who, system = caller(context), require_system(self._config, request.system_name)
        result = await self._run(who, system, reservations.ARGV)
        return status_pb2.ListReservationsResponse(reservations=reservations.parse(result.text()))

    async def GetUserInfo(self, request, context):
        who, system = caller(context), require_system(self._config, request.system_name)
        id_result, accounts = await asyncio.gather(
            self._run(who, system, userinfo.ID_ARGV),
            self._run(who, system, userinfo.accounts_argv(who.username)))
        user, group, groups = userinfo.parse_id(id_result.text())
        return status_pb2.GetUserInfoResponse(
            user=user, group=group, groups=groups, accounts=userinfo.parse_accounts(accounts.text()))

    async def GetLiveness(self, request, context):
        runs = {name: h.finished_at for name, h in self._health.results.items() if h.finished_at}
        checked = [h.finished_monotonic for h in self._health.results.values() if h.finished_monotonic]
        last_update = int(time.monotonic() - min(checked)) if checked else 0
        return status_pb2.GetLivenessResponse(healthcheck_runs=runs, last_update=last_update)


def register(server, config: Config):
    pool = SshPool.for_service(config, "status")
    health = HealthChecker(config, pool)
    status_pb2_grpc.add_StatusServiceServicer_to_server(StatusService(config, pool, health), server)
    reflection.enable(server)  # the gateway routes /grpc.reflection.* here, for the whole API
    health.start()

    async def shutdown():
        await health.stop()
        await pool.close()
    return (shutdown,)
