"""The status servicer on a real gRPC channel behind the mesh's admission (tests/unit/conftest.py),
with the `CommandRunner` under `SlurmClient` replaced at its interface by one that answers with output
captured from Slurm 22.05 (tests/data/slurm-22.05/), and the health checker's SSH pool by a fake:
unknown system 404, nodes/partitions/userinfo mapping, Slurm's failures mapped, and /status/systems
reporting a failing health check with its message, then the recovery. No gateway, no cluster."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest

from firecrest_mesh.status.v1 import status_pb2 as s, status_pb2_grpc
from services.common.errors import SshConnectionFailed
from services.common.ssh.command import CommandResult
from services.slurm.client import SlurmClient
from services.status import health as health_module
from services.status.health import HealthChecker
from services.status.service import StatusService

SYSTEM = "local"
CAPTURED = Path(__file__).parents[1] / "data" / "slurm-22.05"


def captured(name: str, stderr: bytes = b"") -> CommandResult:
    return CommandResult(0, (CAPTURED / name).read_bytes(), stderr)


class FakeRunner:
    """`CommandRunner` at its interface (`execute`, and `run`, which raises `error_for(result)` when the
    result failed): answers by the first `answers` key among the argv's words; records the argvs."""

    def __init__(self, **answers: CommandResult):
        self.answers = answers
        self.calls: list[tuple[str, list[str], int]] = []

    async def execute(self, caller, system, *argvs, timeout, stdin=None, max_output=None, idempotent=False):
        argv = list(argvs[0])
        self.calls.append((caller.username, argv, timeout))
        return self.answers[next(k for k in self.answers if k in argv)]

    async def run(self, caller, system, *argvs, timeout, error_for, failed=lambda r: not r.ok, stdin=None,
                  max_output=None, idempotent=False, stdout_sink=None):
        assert idempotent, "status only queries: every command it runs may be run again"
        result = await self.execute(caller, system, *argvs, timeout=timeout)
        if failed(result):
            raise error_for(result)
        return result


class FakePool:
    """The health checker's SSH pool: `error` (an ApiError) when set, else every probe succeeds."""

    def __init__(self):
        self.error: Exception | None = None
        self.lines: list[str] = []

    async def run(self, caller, system, line, *, stdin=None, timeout=None, max_output=None, idempotent=False, stdout_sink=None):
        assert idempotent, "health probes only read"
        self.lines.append(line)
        if self.error is not None:
            raise self.error
        return CommandResult(0, b"slurm 22.05.8\n" if "sinfo" in line else b"", b"")


@pytest.fixture
def runner() -> FakeRunner:
    return FakeRunner(sinfo=captured("sinfo.json"), partitions=captured("scontrol_show_partitions.txt"),
                      reservations=captured("scontrol_show_reservations.txt"), id=captured("id.txt"),
                      sacctmgr=captured("sacctmgr_show_user.txt"))


@pytest.fixture
def pool() -> FakePool:
    return FakePool()


@pytest.fixture
def checker(unit_config, pool, tokens, monkeypatch):
    """The real HealthChecker over the fake pool; its service account's token is minted here."""
    async def service_account(config, verifier):
        return tokens.verifier.verify(tokens.mint("firecrest-health"))
    monkeypatch.setattr(health_module, "service_account", service_account)
    return HealthChecker(unit_config, pool)


@pytest.fixture
def stub(serve, unit_config, runner, checker):
    servicer = StatusService(unit_config, SlurmClient(runner), checker)
    return serve(status_pb2_grpc, servicer)


def test_unknown_system_is_404_and_runs_nothing(stub, tokens, runner, http_code, rpc_error):
    for method, request in ((stub.ListNodes, s.ListNodesRequest), (stub.ListPartitions, s.ListPartitionsRequest),
                            (stub.ListReservations, s.ListReservationsRequest), (stub.GetUserInfo, s.GetUserInfoRequest)):
        error = rpc_error(lambda: method(request(system_name="nosuchsystem"), metadata=tokens.metadata()))
        assert (error.code(), error.details(), http_code(error)) == (grpc.StatusCode.NOT_FOUND, "System not found",
                                                                     "404"), method
    assert runner.calls == []


def test_nodes_partitions_reservations_userinfo_map_slurms_output(stub, tokens, runner, unit_config):
    md = tokens.metadata()
    nodes = stub.ListNodes(s.ListNodesRequest(system_name=SYSTEM), metadata=md).nodes
    assert [(n.name, n.cpus) for n in nodes] == [("node01", 8)] and list(nodes[0].partitions)
    partitions = stub.ListPartitions(s.ListPartitionsRequest(system_name=SYSTEM), metadata=md).partitions
    assert [p.name for p in partitions] == ["normal", "xfer"] and partitions[0].total_nodes == 1
    reservations = stub.ListReservations(s.ListReservationsRequest(system_name=SYSTEM), metadata=md).reservations
    assert [r.name for r in reservations] == ["maint", "gpu week"]
    info = stub.GetUserInfo(s.GetUserInfoRequest(system_name=SYSTEM), metadata=md)
    assert (info.user.name, info.user.id, info.group.name) == ("alice", "1001", "alice")
    assert [(a.name, a.default) for a in info.accounts] == [("proj-a", True), ("shared", False)]
    assert {user for user, _, _ in runner.calls} == {"alice"}
    assert {timeout for _, _, timeout in runner.calls} == {unit_config.system(SYSTEM).scheduler.timeout}


def test_slurm_failures_are_mapped(stub, tokens, runner, http_code, rpc_error):
    runner.answers["sinfo"] = CommandResult(1, b"", b"sinfo: error: Unable to contact slurm controller (connect failure)\n")
    error = rpc_error(lambda: stub.ListNodes(s.ListNodesRequest(system_name=SYSTEM), metadata=tokens.metadata()))
    assert (error.code(), http_code(error)) == (grpc.StatusCode.UNAVAILABLE, "503")
    assert error.details() == ("The scheduler is unavailable: sinfo could not reach the Slurm controller (slurmctld); "
                               "retry shortly. Unable to contact slurm controller (connect failure)")
    runner.answers["partitions"] = CommandResult(124, b"", b"")
    error = rpc_error(lambda: stub.ListPartitions(s.ListPartitionsRequest(system_name=SYSTEM), metadata=tokens.metadata()))
    assert (error.code(), http_code(error)) == (grpc.StatusCode.DEADLINE_EXCEEDED, "408")


def test_no_token_is_401(stub, runner, http_code, rpc_error):
    error = rpc_error(lambda: stub.ListSystems(s.ListSystemsRequest()))
    assert (error.code(), http_code(error)) == (grpc.StatusCode.UNAUTHENTICATED, "401")


def _health(stub, tokens) -> dict[str, s.ServiceHealth]:
    systems = stub.ListSystems(s.ListSystemsRequest(), metadata=tokens.metadata()).systems
    local, = [x for x in systems if x.name == SYSTEM]
    return {(h.service_type, h.path): h for h in local.services_health}


def test_failing_health_check_is_reported_then_recovers(stub, tokens, checker, pool, server_loop):
    def check_all():
        asyncio.run_coroutine_threadsafe(checker.check_all(), server_loop).result(10)

    pool.error = SshConnectionFailed("Unable to connect to system local: Connection refused")
    check_all()
    failing = _health(stub, tokens)
    assert {t for t, _ in failing} == {"ssh", "scheduler", "filesystem"}
    for h in failing.values():
        assert not h.healthy and h.message == "Unable to connect to system local: Connection refused" and h.last_checked
    pool.error = None
    check_all()
    recovered = _health(stub, tokens)
    assert recovered.keys() == failing.keys() and all(h.healthy and not h.message for h in recovered.values())
    systems = stub.ListSystems(s.ListSystemsRequest(), metadata=tokens.metadata()).systems
    assert [x.scheduler.version for x in systems if x.name == SYSTEM] == ["22.05.8"]


def test_a_probe_that_fails_on_the_system_reports_its_stderr(stub, tokens, checker, pool, server_loop):
    async def run(caller, system, line, **kwargs):
        if "test" in line:
            return CommandResult(1, b"", b"")
        if "sinfo" in line:
            return CommandResult(1, b"", b"sinfo: error: Unable to contact slurm controller\n")
        return CommandResult(0, b"", b"")
    pool.run = run
    asyncio.run_coroutine_threadsafe(checker.check_all(), server_loop).result(10)
    health = _health(stub, tokens)
    assert health[("ssh", "")].healthy
    assert not health[("scheduler", "")].healthy
    assert health[("scheduler", "")].message == "sinfo: error: Unable to contact slurm controller"
    filesystems = [h for (t, _), h in health.items() if t == "filesystem"]
    assert filesystems and all(not h.healthy and h.message == "exit status 1" for h in filesystems)


def test_a_checker_without_a_token_reports_it_on_every_system(stub, tokens, checker, server_loop, monkeypatch):
    async def refused(config, verifier):
        raise health_module.ServiceAccountError("token refused")
    monkeypatch.setattr(health_module, "service_account", refused)
    asyncio.run_coroutine_threadsafe(checker.check_all(), server_loop).result(10)
    ((kind, _), entry), = _health(stub, tokens).items()
    assert kind == "exception" and not entry.healthy
    assert entry.message == "Cluster HealthChecker execution failed with error: token refused"
