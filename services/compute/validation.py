"""Validation of compute requests before anything reaches the scheduler: a submission becomes a
`JobSpec`, a listing's filters a `JobQuery`, a job id and an attach command are checked; anything
unacceptable is a 400 naming the field. The servicer calls these; schedulers trust what they get.

Every text field of a job ends up as one `sbatch` argument (and, for whoever writes `#SBATCH`
directives or reads `scontrol show -o` records, as part of one line): a control character there
(newline, carriage return, any other C0/C1 control, Unicode line and paragraph separators) would
cut or shift what Slurm records and shows, so it is refused rather than passed on. The job's working
directory obeys the file operations' rules (`services.common.paths`: absolute, no `..`, inside the
system's configured filesystems). The stream and script paths must be absolute (they may name
`/dev/null` or a shared application folder, so they are not confined to the filesystems).
"""

from __future__ import annotations

import json
import re
import unicodedata

from google.protobuf import json_format

from firecrest_mesh.compute.v1 import compute_pb2
from services.common import paths
from services.common.config import SystemConfig
from services.common.errors import BadRequest
from services.compute.scheduler import DEFAULT_TIME_WINDOW, TIME_WINDOWS, JobQuery, JobSpec

JOB_ID_RE = re.compile(r"^[a-zA-Z0-9]+$")
ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")  # use with fullmatch
DEFAULT_ENV = (("F7T_version", "v2.0.0"),)  # FirecREST v2's default when no env is given
# JSON names of the optional single-line fields, by proto field name.
TEXT_FIELDS = {"name": "name", "account": "account", "partition": "partition",
               "reservation": "reservation", "constraints": "constraints"}
PATH_FIELDS = {"standard_input": "standardInput", "standard_output": "standardOutput",
               "standard_error": "standardError"}
_LINE_BREAKING = ("Cc", "Zl", "Zp")  # control characters, line and paragraph separators


def control_character(value: str, *, allow_tab: bool = False) -> str | None:
    """The first character of `value` that does not belong in one line of text, or None."""
    for ch in value:
        if unicodedata.category(ch) in _LINE_BREAKING and not (allow_tab and ch == "\t"):
            return ch
    return None


def single_line(value: str, field: str, *, allow_tab: bool = False) -> str:
    """`value` when it holds no control character (NUL, newline, CR, ...), else 400 naming `field`."""
    ch = control_character(value, allow_tab=allow_tab)
    if ch is not None:
        raise BadRequest(f"Invalid {field}: it must not contain control characters such as "
                         f"newlines (found {ch!r}).")
    return value


def absolute_path(path: str, field: str) -> str:
    """A stream or script path: absolute, one line, no longer than PATH_MAX."""
    single_line(path, field)
    if len(path.encode("utf-8", errors="surrogatepass")) > paths.MAX_PATH_BYTES:
        raise BadRequest(f"Invalid {field}: longer than {paths.MAX_PATH_BYTES} bytes.")
    if not path.startswith("/"):
        raise BadRequest(f"Invalid {field}: the provided path ({path}) is not an absolute path.")
    return path


def working_directory(system: SystemConfig, path: str) -> str:
    """The working directory: the file operations' path rules, and one line."""
    try:
        paths.validate(system, path, name="workingDirectory")
    except BadRequest as exc:
        raise BadRequest(f"Invalid job.workingDirectory: {exc.message}") from None
    return single_line(path, "job.workingDirectory")


def _optional(message, field: str) -> str | None:
    """An optional string field; absent or empty → None."""
    return (getattr(message, field) or None) if message.HasField(field) else None


def _env_value(value) -> str:
    """A JSON value as the text an environment variable holds (JSON numbers are doubles: 3.0 → "3")."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return json.dumps(value)


def environment(job: compute_pb2.JobDescription) -> tuple[tuple[str, str], ...]:
    """`env` (or `environment`) as (name, value) pairs: an object or a list of `NAME=value`."""
    value = job.env if job.HasField("env") else job.environment if job.HasField("environment") else None
    if value is None or value.WhichOneof("kind") in (None, "null_value"):
        return DEFAULT_ENV
    data = json_format.MessageToDict(value)
    if isinstance(data, dict):
        pairs = [(str(k), _env_value(v)) for k, v in data.items()]
    elif isinstance(data, list):
        pairs = []
        for item in data:
            if not isinstance(item, str) or "=" not in item:
                raise BadRequest(f"Invalid environment entry {item!r:.200}: expected NAME=value")
            pairs.append(tuple(item.split("=", 1)))
    else:
        raise BadRequest("Invalid environment: expected an object or a list of NAME=value strings")
    for name, val in pairs:
        if not ENV_NAME_RE.fullmatch(name):
            raise BadRequest(f"Invalid environment variable name {name!r:.200} in job.env: expected "
                             f"letters, digits and underscores, not starting with a digit")
        ch = control_character(val, allow_tab=True)
        if ch is not None:
            raise BadRequest(f"Invalid value of environment variable {name} in job.env: it must not "
                             f"contain control characters such as newlines (found {ch!r}).")
    return tuple(pairs)


def job_spec(job: compute_pb2.JobDescription, system: SystemConfig) -> JobSpec:
    """Validates a submission: working directory, script xor script path, paths, text fields, env."""
    wd = job.working_directory or job.current_working_directory
    if not wd:
        raise BadRequest("Field required: job.workingDirectory")
    script, script_path = _optional(job, "script"), _optional(job, "script_path")
    if job.HasField("script") and job.script == "" and not script_path:
        raise BadRequest("The job script is empty")
    if (script is None) == (script_path is None):
        raise BadRequest("Exactly one of job.script and job.scriptPath is required")
    if script_path is not None:
        absolute_path(script_path, "job.scriptPath")
    streams = {f: _optional(job, f) for f in PATH_FIELDS}
    for f, path in streams.items():
        if path is not None:
            absolute_path(path, f"job.{PATH_FIELDS[f]}")
    texts = {f: _optional(job, f) for f in TEXT_FIELDS}
    for f, value in texts.items():
        if value is not None:
            single_line(value, f"job.{TEXT_FIELDS[f]}")
    return JobSpec(working_directory=working_directory(system, wd), env=environment(job), script=script,
                   script_path=script_path, **texts, **streams)


def require_job_id(job_id: str) -> str:
    """The job id if it is letters and digits only (FirecREST v2's path pattern), else 400."""
    if not JOB_ID_RE.fullmatch(job_id or ""):
        raise BadRequest(f"Invalid job id {job_id!r}: expected letters and digits only")
    return job_id


def attach_command(command: str) -> str:
    """The shell command to run inside a job: not blank, no NUL byte."""
    if not command.strip():
        raise BadRequest("Field required: command")
    if "\x00" in command:
        raise BadRequest("Invalid command: it must not contain NUL bytes.")
    return command


def job_query(request: compute_pb2.ListJobsRequest) -> JobQuery:
    window = request.time_window or DEFAULT_TIME_WINDOW
    if window not in TIME_WINDOWS:
        raise BadRequest(f"Invalid time_window {window!r:.100}: expected one of {', '.join(TIME_WINDOWS)}")
    single_line(request.account, "account")
    single_line(request.name, "name")
    return JobQuery(allusers=request.allusers, account=request.account, name=request.name, time_window=window)
