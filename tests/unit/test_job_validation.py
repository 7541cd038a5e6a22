"""Unit tests of the compute service's request validation (`services.compute.validation`): control
characters in any job text field, the working directory's file-system rules (shared with the file
operations), environment names and values, job ids, attach commands, listing filters, and the
command-line size guard of the runner every submission goes through."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from google.protobuf import json_format

from firecrest_mesh.compute.v1 import compute_pb2
from services.common.config import load_config
from services.common.errors import BadRequest
from services.common.ssh import runner
from services.compute.validation import attach_command, control_character, job_query, job_spec, require_job_id
from services.slurm import sbatch
from services.slurm.client import SlurmClient
from services.slurm.scheduler import SlurmScheduler

SCRIPT = "#!/bin/bash\necho hi\n"
# Characters that end or cut a line somewhere between sbatch, Slurm's records and our parsers.
LINE_BREAKERS = ["\n", "\r", "\r\n", "\x00", "\x01", "\x0b", "\x0c", "\x1b", "\x1c", "\x1e", "\x7f", "\x85",
                 "\u2028", "\u2029"]
# Text that is odd but harmless: one sbatch argument each, one line in every record.
HARMLESS = ["plain", "with space", "$(touch /tmp/x);`id`|&>", "--option-looking", "-x", "caf\u00e9 \u2603",
            "a=b,c=d", "quote'\"s", "%j-%u", "\u202eRTL", "\U0001f600"]
TEXT_FIELDS = ["name", "account", "partition", "reservation", "constraints"]
STREAM_FIELDS = ["standardInput", "standardOutput", "standardError"]


@pytest.fixture(scope="module")
def local():
    return load_config().system("local")  # file systems /home and /scratch


def spec(local, **job):
    job.setdefault("workingDirectory", "/home/alice")
    if "scriptPath" not in job:
        job.setdefault("script", SCRIPT)
    return job_spec(json_format.ParseDict(job, compute_pb2.JobDescription()), local)


def refused(local, field_in_message: str, **job) -> str:
    with pytest.raises(BadRequest) as exc:
        spec(local, **job)
    assert field_in_message in exc.value.message, exc.value.message
    return exc.value.message


@pytest.mark.parametrize("bad", LINE_BREAKERS)
@pytest.mark.parametrize("field", TEXT_FIELDS)
def test_control_characters_in_text_fields_are_400_naming_the_field(local, field, bad):
    refused(local, f"job.{field}", **{field: f"a{bad}b"})


@pytest.mark.parametrize("bad", LINE_BREAKERS + ["\t"])
@pytest.mark.parametrize("field", STREAM_FIELDS + ["scriptPath"])
def test_control_characters_in_stream_and_script_paths_are_400_naming_the_field(local, field, bad):
    job = {field: f"/home/alice/o{bad}x"}
    if field == "scriptPath":
        job["script"] = None
        del job["script"]
    refused(local, f"job.{field}", **job)


def test_a_newline_in_the_name_is_refused_and_the_message_shows_it(local):
    message = refused(local, "job.name", name="evil\n#SBATCH --output=/etc/x")
    assert "'\\n'" in message


@pytest.mark.parametrize("value", HARMLESS)
def test_harmless_text_passes_unchanged_into_one_sbatch_argument(local, value):
    s = spec(local, name=value, account=value, partition=value, constraints=value, reservation=value,
             standardOutput=f"/home/alice/{value}.out", env={"V": value})
    argv = sbatch.command(s, "marker")
    for option in ("--job-name", "--account", "--partition", "--constraint", "--reservation"):
        assert f"{option}={value}" in argv
    assert f"--output=/home/alice/{value}.out" in argv and f"V={value}" in argv


@pytest.mark.parametrize("bad", LINE_BREAKERS)
def test_control_characters_in_env_values_are_400_naming_the_variable(local, bad):
    message = refused(local, "environment variable EVIL in job.env", env={"EVIL": f"a{bad}b"})
    assert "control characters" in message
    refused(local, "environment variable EVIL", environment=[f"EVIL=a{bad}b"])


def test_a_tab_in_an_env_value_is_kept(local):
    assert spec(local, env={"T": "a\tb"}).env == (("T", "a\tb"),)


@pytest.mark.parametrize("name", ["A\n", "A\nB", "\nA", "A B", "1A", "", "A=", "A-B", "\u00c9", "A\x00",
                                  "$(id)", "A;B"])
def test_env_names_must_be_identifiers(local, name):
    refused(local, "environment variable name", env={name: "x"})


def test_env_names_that_are_identifiers_pass(local):
    assert dict(spec(local, env={"_": "1", "A_1": "2", "a": "3"}).env) == {"_": "1", "A_1": "2", "a": "3"}


@pytest.mark.parametrize("wd, message", [
    ("relative/dir", "is not an absolute path"),
    ("/etc", "does not match any of the defined filesystem paths"),
    ("/tmp", "does not match any of the defined filesystem paths"),
    ("/homework", "does not match any of the defined filesystem paths"),
    ("/", "does not match any of the defined filesystem paths"),
    ("/home/alice/../../etc", "'..'"),
    ("/home/..", "'..'"),
    ("/home/alice/a\x00b", "NUL"),
    ("/home/alice/a\nb", "control characters"),
    ("/home/alice/a\rb", "control characters"),
    ("/home/" + "x" * 4090, "longer than 4095 bytes"),
])
def test_working_directory_obeys_the_file_operations_path_rules(local, wd, message):
    text = refused(local, "job.workingDirectory", workingDirectory=wd)
    assert message in text


@pytest.mark.parametrize("wd", ["/home", "/home/alice", "/scratch/alice/x y", "/home/alice/$(id)", "/home/alice/."])
def test_working_directories_inside_the_file_systems_pass(local, wd):
    assert spec(local, workingDirectory=wd).working_directory == wd
    assert spec(local, currentWorkingDirectory=wd, workingDirectory="").working_directory == wd


@pytest.mark.parametrize("path", ["/dev/null", "/apps/shared/in.txt", "/home/alice/%j.out"])
def test_stream_paths_may_lie_outside_the_file_systems(local, path):
    assert spec(local, standardInput=path, standardOutput=path).standard_input == path


@pytest.mark.parametrize("field", ["name", "account"])
@pytest.mark.parametrize("bad", ["\n", "\x00", "\r"])
def test_listing_filters_refuse_control_characters(field, bad):
    with pytest.raises(BadRequest, match=field):
        job_query(compute_pb2.ListJobsRequest(**{field: f"x{bad}y"}))
    assert getattr(job_query(compute_pb2.ListJobsRequest(**{field: "x y;$(id)"})), field) == "x y;$(id)"


def test_control_character_finds_the_first_offender():
    assert control_character("ok\tthen\nno") == "\t"
    assert control_character("ok\tthen\nno", allow_tab=True) == "\n"
    assert control_character("fine \u00e9\u2603") is None


def test_command_lines_longer_than_the_limit_are_400_before_any_ssh(local):
    ran = []

    class Pool:
        async def run(self, *args, **kwargs):
            ran.append(args)
            return SimpleNamespace(ok=True, exit_status=0, text=lambda: "1\n")

    slurm = SlurmScheduler(SlurmClient(runner.CommandRunner(Pool())))
    caller = SimpleNamespace(username="alice")
    big = spec(local, env={"BIG": "x" * (runner.MAX_COMMAND_LINE + 1)})
    with pytest.raises(BadRequest, match="too long"):
        asyncio.run(slurm.submit(caller, local, big, "m"))
    assert ran == []
    assert asyncio.run(slurm.submit(caller, local, spec(local, env={"OK": "x" * 60000}), "m")) == "1"
    assert len(ran) == 1


def test_job_spec_accepts_every_working_directory_spelling_and_env_forms(local):
    def parsed(**job):
        return job_spec(json_format.ParseDict(dict(script="s", **job), compute_pb2.JobDescription()), local)
    assert parsed(working_directory="/home/w").working_directory == "/home/w"  # the proto's own field name
    assert parsed(currentWorkingDirectory="/scratch/c").working_directory == "/scratch/c"
    assert parsed(workingDirectory="/home/w").env == (("F7T_version", "v2.0.0"),)
    assert dict(parsed(workingDirectory="/home/w", env={"A": "1", "N": 3}).env) == {"A": "1", "N": "3"}
    assert parsed(workingDirectory="/home/w", environment=["A=x=y"]).env == (("A", "x=y"),)


@pytest.mark.parametrize("kw", [
    dict(script="s"),  # no working directory
    dict(workingDirectory="rel", script="s"),
    dict(workingDirectory="/home/w"),  # no script
    dict(workingDirectory="/home/w", script="s", scriptPath="/x"),
    dict(workingDirectory="/home/w", scriptPath="x.sh"),
    dict(workingDirectory="/home/w", script="s", standardOutput="out.txt"),
    dict(workingDirectory="/home/w", script="s", env={"A;B": "x"}),
    dict(workingDirectory="/home/w", script="s", env=["NOEQUALS"]),
])
def test_job_spec_rejects(kw, local):
    with pytest.raises(BadRequest):
        job_spec(json_format.ParseDict(kw, compute_pb2.JobDescription()), local)


@pytest.mark.parametrize("job_id", ["12", "abc12"])
def test_job_id_valid(job_id):
    assert require_job_id(job_id) == job_id


@pytest.mark.parametrize("job_id", ["", "1;id", "1 2", "../1", "1\n"])
def test_job_id_invalid(job_id):
    with pytest.raises(BadRequest):
        require_job_id(job_id)


def test_time_window_default_and_invalid():
    assert job_query(compute_pb2.ListJobsRequest(time_window="")).time_window == "24h"
    assert job_query(compute_pb2.ListJobsRequest(time_window="7d")).time_window == "7d"
    with pytest.raises(BadRequest, match="expected one of 1h, 8h, 24h, 3d, 7d"):
        job_query(compute_pb2.ListJobsRequest(time_window="2h"))


@pytest.mark.parametrize("command,message", [("", "Field required: command"), ("  \n", "Field required: command"),
                                             ("echo a\x00b", "NUL bytes")])
def test_attach_command_refused(command, message):
    with pytest.raises(BadRequest, match=message):
        attach_command(command)


def test_attach_command_is_passed_on_unchanged():
    assert attach_command("echo $HOSTNAME; id\n") == "echo $HOSTNAME; id\n"
