"""The compute servicer on a real gRPC channel behind the mesh's admission (tests/unit/conftest.py),
with the `Scheduler` replaced at its interface: request validation (400s), the Idempotency-Key path,
201/204 through `x-http-code` initial metadata, and the scheduler's errors mapped to their statuses.
No gateway, no cluster."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
from google.protobuf import struct_pb2

from firecrest_mesh.compute.v1 import compute_pb2, compute_pb2_grpc
from services.common.errors import Forbidden, NotFound, RequestTimeout
from services.compute.scheduler import JobQuery, JobSpec, Scheduler
from services.compute.service import ComputeService
from services.compute.submissions import MARKER_PREFIX, marker_for

SYSTEM = "local"


class FakeScheduler(Scheduler):
    """Jobs in a dict; records every call. A submission takes a moment, so concurrent calls overlap."""

    def __init__(self):
        self.jobs: dict[str, tuple[str, str]] = {}  # job id → (user, marker)
        self.calls: list[tuple] = []
        self.error: Exception | None = None  # raised by the next call, when set

    def _record(self, *call):
        self.calls.append(call)
        if self.error is not None:
            raise self.error

    async def submit(self, caller, system, spec: JobSpec, marker: str) -> str:
        self._record("submit", caller.username, system.name, spec, marker)
        await asyncio.sleep(0.05)
        job_id = str(100 + len(self.jobs))
        self.jobs[job_id] = (caller.username, marker)
        return job_id

    async def find_by_marker(self, caller, system, marker):
        self._record("find_by_marker", caller.username, marker)
        return next((j for j, (user, m) in self.jobs.items() if m == marker and user == caller.username), None)

    async def list_jobs(self, caller, system, query: JobQuery):
        self._record("list_jobs", caller.username, query)
        return compute_pb2.ListJobsResponse(jobs=[compute_pb2.Job(job_id=j, user=u) for j, (u, _) in self.jobs.items()])

    async def get_job(self, caller, system, job_id):
        self._record("get_job", caller.username, job_id)
        if job_id not in self.jobs:
            raise NotFound("Job not found.")
        return [compute_pb2.Job(job_id=job_id, user=self.jobs[job_id][0])]

    async def job_metadata(self, caller, system, job_id):
        self._record("job_metadata", caller.username, job_id)
        return compute_pb2.JobMetadata(job_id=job_id, script="#!/bin/bash\n")

    async def cancel(self, caller, system, job_id):
        self._record("cancel", caller.username, job_id)

    async def attach(self, caller, system, job_id, command):
        self._record("attach", caller.username, job_id, command)


@pytest.fixture
def scheduler() -> FakeScheduler:
    return FakeScheduler()


@pytest.fixture
def stub(serve, unit_config, scheduler):
    return serve(compute_pb2_grpc, ComputeService(unit_config, scheduler))


def job(**fields) -> compute_pb2.JobDescription:
    fields.setdefault("working_directory", "/home/alice")
    if "script_path" not in fields:
        fields.setdefault("script", "#!/bin/bash\ntrue\n")
    return compute_pb2.JobDescription(**fields)


def submit(stub, tokens, description=None, *, user="alice", key=None, system=SYSTEM):
    extra = (("idempotency-key", key),) if key is not None else ()
    return stub.SubmitJob.with_call(compute_pb2.SubmitJobRequest(system_name=system, job=description or job()),
                                    metadata=tokens.metadata(user, *extra))


# -- submit ------------------------------------------------------------------------------------------

def test_submit_is_201_with_the_schedulers_job_id(stub, tokens, scheduler, http_code):
    response, call = submit(stub, tokens, job(name="n", partition="normal"))
    assert response.job_id == "100" and http_code(call) == "201"
    (_, user, system, spec, marker), = scheduler.calls
    assert (user, system) == ("alice", SYSTEM), "the token's user, never a header"
    assert spec == JobSpec(working_directory="/home/alice", env=(("F7T_version", "v2.0.0"),),
                           script="#!/bin/bash\ntrue\n", name="n", partition="normal")
    assert marker.startswith(MARKER_PREFIX)  # without a key: a fresh marker, still resolvable


def test_submit_env_object_reaches_the_spec(stub, tokens, scheduler):
    env = struct_pb2.Value()
    env.struct_value.update({"A": "x y", "N": 3})
    submit(stub, tokens, job(env=env))
    assert dict(scheduler.calls[0][3].env) == {"A": "x y", "N": "3"}


@pytest.mark.parametrize("description, message", [
    (compute_pb2.JobDescription(script="x"), "Field required: job.workingDirectory"),
    (job(working_directory="tmp"), "is not an absolute path"),
    (job(working_directory="/etc"), "does not match any of the defined filesystem paths"),
    (job(working_directory="/home/alice/../bob"), "contains a '..' component"),
    (job(script=""), "The job script is empty"),
    (job(script="x", script_path="/home/alice/s.sh"), "Exactly one of job.script and job.scriptPath"),
    (job(script_path="s.sh"), "Invalid job.scriptPath"),
    (job(name="a\nb"), "Invalid job.name"),
    (job(standard_output="out.txt"), "Invalid job.standardOutput"),
], ids=["no-workdir", "relative-workdir", "outside-filesystems", "dotdot", "empty-script", "both-scripts",
        "relative-script-path", "newline-in-name", "relative-stdout"])
def test_invalid_submission_is_400_and_reaches_no_scheduler(stub, tokens, scheduler, http_code, description,
                                                             message, rpc_error):
    error = rpc_error(lambda: submit(stub, tokens, description))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and http_code(error) == "400"
    assert message in error.details()
    assert scheduler.calls == []


def test_invalid_env_name_is_400(stub, tokens, scheduler, rpc_error):
    env = struct_pb2.Value()
    env.struct_value.update({"1BAD": "x"})
    error = rpc_error(lambda: submit(stub, tokens, job(env=env)))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "1BAD" in error.details()
    assert scheduler.calls == []


def test_unknown_system_is_404(stub, tokens, scheduler, http_code, rpc_error):
    error = rpc_error(lambda: submit(stub, tokens, system="nosuchsystem"))
    assert (error.code(), error.details(), http_code(error)) == (grpc.StatusCode.NOT_FOUND, "System not found", "404")
    assert scheduler.calls == []


def test_without_a_valid_token_nothing_runs(stub, tokens, scheduler, http_code, rpc_error):
    request = compute_pb2.SubmitJobRequest(system_name=SYSTEM, job=job())
    error = rpc_error(lambda: stub.SubmitJob(request))
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED and http_code(error) == "401"
    forged = tokens.mint("alice")[:-4] + "AAAA"
    error = rpc_error(lambda: stub.SubmitJob(request, metadata=(("authorization", f"Bearer {forged}"),)))
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert scheduler.calls == []


# -- Idempotency-Key ---------------------------------------------------------------------------------

def test_same_key_returns_the_same_job_and_submits_once(stub, tokens, scheduler, http_code):
    first, call = submit(stub, tokens, key="k-1")
    retry, retry_call = submit(stub, tokens, key="k-1")
    assert first.job_id == retry.job_id and http_code(call) == http_code(retry_call) == "201"
    submits = [c for c in scheduler.calls if c[0] == "submit"]
    assert [c[4] for c in submits] == [marker_for("alice", "k-1")]
    other, _ = submit(stub, tokens, key="k-2")
    bob, _ = submit(stub, tokens, job(working_directory="/home/bob"), user="bob", key="k-1")
    assert len({first.job_id, other.job_id, bob.job_id}) == 3, "another key, or another user's key: a new job"


def test_concurrent_calls_with_the_same_key_submit_once(stub, tokens, scheduler):
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: submit(stub, tokens, key="concurrent")[0].job_id, range(4)))
    assert len(set(answers)) == 1
    assert [c[0] for c in scheduler.calls].count("submit") == 1


def test_a_schedulers_error_keeps_its_status(stub, tokens, scheduler, http_code, rpc_error):
    scheduler.error = RequestTimeout("Remote process failed with exit status:124 (sbatch timed out)")
    error = rpc_error(lambda: submit(stub, tokens, key="k"))
    assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED and http_code(error) == "408"
    assert error.details() == "Remote process failed with exit status:124 (sbatch timed out)"


# -- the other routes --------------------------------------------------------------------------------

def test_unknown_job_is_404_job_not_found(stub, tokens, http_code, rpc_error):
    error = rpc_error(lambda: stub.GetJob(compute_pb2.GetJobRequest(system_name=SYSTEM, job_id="999"),
                                          metadata=tokens.metadata()))
    assert (error.code(), error.details(), http_code(error)) == (grpc.StatusCode.NOT_FOUND, "Job not found.", "404")


def test_known_job_is_200(stub, tokens, scheduler, http_code):
    job_id = submit(stub, tokens)[0].job_id
    response, call = stub.GetJob.with_call(compute_pb2.GetJobRequest(system_name=SYSTEM, job_id=job_id),
                                           metadata=tokens.metadata())
    assert [j.job_id for j in response.jobs] == [job_id] and http_code(call) is None


@pytest.mark.parametrize("job_id", ["", "1;rm", "12 3", "../1"])
def test_malformed_job_id_is_400_before_the_scheduler(stub, tokens, scheduler, job_id, rpc_error):
    for method, request in ((stub.GetJob, compute_pb2.GetJobRequest), (stub.CancelJob, compute_pb2.CancelJobRequest),
                            (stub.GetJobMetadata, compute_pb2.GetJobMetadataRequest)):
        error = rpc_error(lambda: method(request(system_name=SYSTEM, job_id=job_id), metadata=tokens.metadata()))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, method
    assert scheduler.calls == []


def test_cancel_and_attach_are_204(stub, tokens, scheduler, http_code):
    _, call = stub.CancelJob.with_call(compute_pb2.CancelJobRequest(system_name=SYSTEM, job_id="7"),
                                       metadata=tokens.metadata())
    assert http_code(call) == "204"
    _, call = stub.AttachToJob.with_call(
        compute_pb2.AttachToJobRequest(system_name=SYSTEM, job_id="7", command="hostname"), metadata=tokens.metadata())
    assert http_code(call) == "204"
    assert scheduler.calls == [("cancel", "alice", "7"), ("attach", "alice", "7", "hostname")]


def test_attach_needs_a_command(stub, tokens, scheduler, rpc_error):
    for command in ("", "  ", "a\0b"):
        error = rpc_error(lambda: stub.AttachToJob(
            compute_pb2.AttachToJobRequest(system_name=SYSTEM, job_id="7", command=command), metadata=tokens.metadata()))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, repr(command)
    assert scheduler.calls == []


def test_cancel_of_another_users_job_is_403(stub, tokens, scheduler, http_code, rpc_error):
    scheduler.error = Forbidden("Access/permission denied")
    error = rpc_error(lambda: stub.CancelJob(compute_pb2.CancelJobRequest(system_name=SYSTEM, job_id="7"),
                                             metadata=tokens.metadata("bob")))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED and http_code(error) == "403"
    assert scheduler.calls == [("cancel", "bob", "7")]


def test_list_jobs_validates_its_filters(stub, tokens, scheduler, rpc_error):
    response = stub.ListJobs(compute_pb2.ListJobsRequest(system_name=SYSTEM, allusers=True, name="x",
                                                         time_window="1h"), metadata=tokens.metadata())
    assert list(response.jobs) == []
    assert scheduler.calls == [("list_jobs", "alice", JobQuery(allusers=True, name="x", time_window="1h"))]
    for request in (compute_pb2.ListJobsRequest(system_name=SYSTEM, time_window="2h"),
                    compute_pb2.ListJobsRequest(system_name=SYSTEM, name="a\nb")):
        error = rpc_error(lambda: stub.ListJobs(request, metadata=tokens.metadata()))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert len(scheduler.calls) == 1
