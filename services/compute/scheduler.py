"""The scheduler interface the compute service talks to; one implementation per workload manager.

`validation.py` turns requests into the `JobSpec` and `JobQuery` defined here, `service.py` maps
results to the API; a `Scheduler` runs the scheduler's commands as the caller and raises typed
`ApiError`s. Slurm's CLI over SSH is `services.slurm.scheduler.SlurmScheduler`; slurmrestd or PBS
would be further implementations of the same methods.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

from firecrest_mesh.compute.v1 import compute_pb2
from services.common.config import SystemConfig
from services.common.identity import Caller

# How far back a listing shows finished jobs (FirecREST v2's `time_window` values), in seconds: the
# one definition (validation accepts these names, a scheduler turns them into its own filter).
TIME_WINDOWS = {"1h": 3600, "8h": 8 * 3600, "24h": 24 * 3600, "3d": 3 * 24 * 3600, "7d": 7 * 24 * 3600}
DEFAULT_TIME_WINDOW = "24h"


@dataclass(frozen=True)
class JobSpec:
    """A validated submission. Exactly one of `script` and `script_path` is set."""

    working_directory: str
    env: tuple[tuple[str, str], ...]
    script: str | None = None
    script_path: str | None = None
    name: str | None = None
    account: str | None = None
    partition: str | None = None
    reservation: str | None = None
    constraints: str | None = None
    standard_input: str | None = None
    standard_output: str | None = None
    standard_error: str | None = None


@dataclass(frozen=True)
class JobQuery:
    """Filters of a job listing; empty strings mean "no filter"; `time_window` is a key of TIME_WINDOWS."""

    allusers: bool = False
    account: str = ""
    name: str = ""
    time_window: str = DEFAULT_TIME_WINDOW


@dataclass
class SchedulerJob:
    """A job as read from the scheduler: the API view plus what the service needs internally."""

    job: compute_pb2.Job
    comment: str = ""
    account: str = ""
    extra: dict = field(default_factory=dict)


class Scheduler(ABC):
    """Operations of a workload manager, run as `caller` on `system`."""

    @abstractmethod
    async def submit(self, caller: Caller, system: SystemConfig, spec: JobSpec, marker: str) -> str:
        """Submits `spec` tagged with `marker`; returns the job id. Never submits twice."""

    @abstractmethod
    async def find_by_marker(self, caller: Caller, system: SystemConfig, marker: str) -> str | None:
        """The id of the caller's job tagged with `marker`, or None."""

    @abstractmethod
    async def list_jobs(self, caller: Caller, system: SystemConfig, query: JobQuery) -> compute_pb2.ListJobsResponse:
        """Pending and running jobs plus those that ran within the query's time window, as the RPC's
        answer: callers that share one query get the same message (read-only: a list of thousands of
        jobs is not copied once per caller)."""

    @abstractmethod
    async def get_job(self, caller: Caller, system: SystemConfig, job_id: str) -> list[compute_pb2.Job]:
        """The job (any user's); NotFound("Job not found.") when unknown."""

    @abstractmethod
    async def job_metadata(self, caller: Caller, system: SystemConfig, job_id: str) -> compute_pb2.JobMetadata:
        """Script and stream paths of one of the caller's jobs."""

    @abstractmethod
    async def cancel(self, caller: Caller, system: SystemConfig, job_id: str) -> None:
        """Cancels one of the caller's jobs."""

    @abstractmethod
    async def attach(self, caller: Caller, system: SystemConfig, job_id: str, command: str) -> None:
        """Runs `command` inside one of the caller's running jobs."""
