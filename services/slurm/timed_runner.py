"""`TimedRunner`: the scheduler's commands timed per command, for the metrics.

`SlurmClient` runs every Slurm command through its runner; wrapping that runner here records each
command's latency and outcome in `firecrest_scheduler_command_duration_seconds{system, command,
outcome}` (`services.common.metrics`), named by the program (`sacct` of `env ... sacct ...`).
Outcomes: `ok`, `failed` (non-zero exit, or the API error `run` raised for it), `timeout` (the remote
`timeout`'s exit 124, or a RequestTimeout), `error` (anything else: SSH, certificator).
"""

from __future__ import annotations

from services.common import metrics
from services.common.errors import ApiError, RequestTimeout
from services.slurm.errors import program

TIMEOUT_EXIT_STATUS = 124  # coreutils' `timeout`, which CommandRunner wraps every command in


def result_outcome(result) -> str:
    if result.exit_status == 0:
        return "ok"
    return "timeout" if result.exit_status == TIMEOUT_EXIT_STATUS else "failed"


def error_outcome(exc: BaseException) -> str:
    if isinstance(exc, RequestTimeout):
        return "timeout"
    return "failed" if isinstance(exc, ApiError) else "error"


class TimedRunner:
    """A `CommandRunner` (or any object with its `execute`/`run`) whose calls are timed."""

    def __init__(self, runner):
        self._runner = runner

    def __getattr__(self, name):
        return getattr(self._runner, name)

    async def _timed(self, call, system, argvs, kwargs):
        with metrics.scheduler_command(system.name, program(list(argvs[0]))) as outcome:
            try:
                result = await call(*argvs, **kwargs)
            except Exception as exc:
                outcome(error_outcome(exc))
                raise
            outcome(result_outcome(result))
            return result

    async def execute(self, caller, system, *argvs, **kwargs):
        return await self._timed(lambda *a, **k: self._runner.execute(caller, system, *a, **k), system, argvs, kwargs)

    async def run(self, caller, system, *argvs, **kwargs):
        return await self._timed(lambda *a, **k: self._runner.run(caller, system, *a, **k), system, argvs, kwargs)
