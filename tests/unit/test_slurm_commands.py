"""Unit tests of every Slurm command module (`services.slurm.<command>`): what `command()` builds and
what `parse()` reads from real output captured from Slurm 22.05.8 (tests/data/slurm-22.05/), hostile
job names included. sacct and squeue, the largest parsers, have their own files (test_slurm_sacct.py, test_slurm_squeue.py)."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import pytest
from google.protobuf import json_format

from firecrest_mesh.compute.v1 import compute_pb2
from services.common.ssh.command import shell_join
from services.compute.scheduler import JobSpec
from services.slurm import (getent, posix_id, sacctmgr, sbatch, scancel, scontrol_batch_script, scontrol_job,
                            scontrol_partitions, scontrol_reservations, sinfo, squeue, srun)

CAPTURED = Path(__file__).resolve().parents[1] / "data" / "slurm-22.05"


def read(name: str) -> str:
    return (CAPTURED / name).read_text()


def as_dict(job: compute_pb2.Job) -> dict:
    return json_format.MessageToDict(job)


def test_every_command_is_an_argument_list_the_remote_shell_keeps():
    argvs = [sinfo.command(), scontrol_partitions.command(), scontrol_reservations.command(), posix_id.command(),
             sacctmgr.command("alice"), squeue.command("|d|", user="alice"),
             squeue.steps_command("|d|", job_id="12"), scontrol_job.command("12"),
             scontrol_batch_script.command("12"), scancel.command("12"), srun.command("12", "id"),
             getent.command({0})]
    for argv in argvs:
        assert all(isinstance(a, str) for a in argv) and shlex.split(shell_join(argv)) == argv


# -- sinfo (nodes) ----------------------------------------------------------------------------------

def test_sinfo_command():
    assert sinfo.command() == ["sinfo", "--all", "--json"]


def test_sinfo_parse_nodes():
    parsed = sinfo.parse(read("sinfo.json"))
    assert [n.name for n in parsed] == ["node01"]
    node = parsed[0]
    assert node.cpus == 8 and node.sockets == 1 and node.threads == 1
    assert node.state == ["MIXED"]  # captured while jobs were running
    assert set(node.partitions) == {"normal", "xfer", "debug"}
    assert node.address == "127.0.0.1"


def test_sinfo_states_are_normalized():
    assert sinfo.normalize_state("mix*") == "MIXED"
    assert sinfo.normalize_state("drng") == "DRAIN"
    assert sinfo.normalize_state("ALLOCATED+") == "ALLOCATED"
    assert sinfo.normalize_state("idle~") == "IDLE"
    doc = '{"nodes": [{"name": "n1", "cpus": 4, "state": ["MIXED"], "state_flags": ["DRAIN"], "cpu_load": 250}]}'
    node = sinfo.parse(doc)[0]
    assert node.state == ["MIXED", "DRAIN"]
    assert node.cpu_load == 2.5


# -- scontrol show partitions / reservations ---------------------------------------------------------

def test_scontrol_partitions_command():
    assert scontrol_partitions.command() == ["scontrol", "-a", "-o", "show", "partitions"]


def test_scontrol_partitions_parse_hides_hidden_unless_asked():
    text = read("scontrol_show_partitions.txt")
    visible = scontrol_partitions.parse(text, show_hidden=False)
    assert [p.name for p in visible] == ["normal", "xfer"]
    every = scontrol_partitions.parse(text, show_hidden=True)
    assert [p.name for p in every] == ["normal", "xfer", "debug"]
    assert every[0].partition == "UP" and every[0].cpus == 8 and every[0].total_nodes == 1


def test_scontrol_reservations_command_asks_for_epoch_times():
    assert scontrol_reservations.command() == ["env", "SLURM_TIME_FORMAT=%s", "scontrol", "-a", "-o", "show",
                                               "reservations"]


def test_scontrol_reservations_parse_epoch_times_and_spaces_in_names():
    parsed = scontrol_reservations.parse(read("scontrol_show_reservations.txt"))
    assert [r.name for r in parsed] == ["maint", "gpu week"]
    maint, gpu = parsed
    assert maint.start_time == 1795694288 and maint.end_time == 1795697888
    assert maint.state == "inactive" and not maint.HasField("features")
    assert gpu.node_list == "node[01-02]" and gpu.features == "gpu&fast" and gpu.state == "active"


def test_scontrol_reservations_parse_none():
    assert scontrol_reservations.parse("No reservations in the system\n") == []


# -- id, sacctmgr (userinfo) -------------------------------------------------------------------------

def test_id_command_and_parse():
    assert posix_id.command() == ["id"]
    user, group, groups = posix_id.parse(read("id.txt"))
    assert (user.id, user.name, group.id, group.name) == ("1001", "alice", "1001", "alice")
    assert [(g.id, g.name) for g in groups] == [("1001", "alice")]


def test_id_parse_groups_with_spaces_in_names():
    user, group, groups = posix_id.parse(
        "uid=1001(alice) gid=1001(alice) groups=1001(alice),100(users),1005(my group)\n")
    assert (user.id, user.name) == ("1001", "alice")
    assert (group.id, group.name) == ("1001", "alice")
    assert [(g.id, g.name) for g in groups] == [("1001", "alice"), ("100", "users"), ("1005", "my group")]


def test_sacctmgr_command():
    assert sacctmgr.command("alice") == ["sacctmgr", "-n", "-P", "show", "user", "alice", "withassoc",
                                         "format=defaultaccount,account"]


def test_sacctmgr_parse_marks_the_default():
    accounts = sacctmgr.parse(read("sacctmgr_show_user.txt"))
    assert [(a.name, a.default) for a in accounts] == [("proj-a", True), ("shared", False)]
    assert [(a.name, a.default) for a in sacctmgr.parse("proj-a|shared\nproj-a|proj-a\nproj-a|proj-a\n")] == \
        [("proj-a", True), ("shared", False)]
    assert sacctmgr.parse("") == []


# -- scontrol show job / write batch_script ----------------------------------------------------------

def test_scontrol_job_command():
    assert scontrol_job.command("11") == ["scontrol", "show", "-o", "job", "11"]


def test_scontrol_job_parse_paths_with_spaces():
    meta = scontrol_job.parse(read("scontrol_show_job_spaces.txt"), "11")
    assert meta.job_id == "11" and meta.script == ""
    assert meta.standard_output == "/scratch/alice/out dir 11.txt"
    assert meta.standard_error == "/scratch/alice/out dir 11.txt"
    assert meta.standard_input == "/dev/null"


def test_scontrol_job_parse_hostile_name_does_not_shift_fields():
    meta = scontrol_job.parse(read("scontrol_show_job_hostile_name.txt"), "9")
    assert meta.standard_output == "/home/alice/slurm-9.out"


def test_scontrol_job_parse_running_job():
    meta = scontrol_job.parse(read("scontrol_show_job_running.txt"), "12")
    assert (meta.standard_input, meta.standard_output, meta.standard_error) == \
        ("/dev/null", "/home/alice/slurm-12.out", "/home/alice/slurm-12.out")


def test_scontrol_batch_script_command_and_parse():
    assert scontrol_batch_script.command("4442") == ["scontrol", "write", "batch_script", "4442", "-"]
    assert scontrol_batch_script.parse(read("scontrol_write_batch_script.txt")) == \
        "#!/bin/bash\n# capture\nsleep 120\n"


# -- scancel, srun, getent -------------------------------------------------------------------------

def test_scancel_command_and_parse():
    assert scancel.command("12") == ["scancel", "--verbose", "12"]
    assert scancel.parse("") is None  # success prints nothing on stdout (the chatter is on stderr)


def test_srun_command_is_one_shell_argument_and_parse_is_its_output():
    assert srun.command("12", "echo $HOSTNAME; id") == ["srun", "--jobid=12", "--overlap", "--", "/bin/sh", "-c",
                                                         "echo $HOSTNAME; id"]
    assert srun.parse(read("srun_attach.txt")) == "attached to 4442\n"


def test_getent_command_and_parse():
    assert getent.command({1001, 0}) == ["getent", "passwd", "0", "1001"]
    assert getent.parse(read("getent_passwd.txt")) == {0: "root", 1001: "alice"}


# -- sbatch -----------------------------------------------------------------------------------------

def spec(**kw) -> JobSpec:
    base = dict(working_directory="/home/alice", env=(("X", "a,b'c\"$(id)"),), script="#!/bin/bash\n")
    base.update(kw)
    return JobSpec(**base)


def test_sbatch_command_quotes_metacharacters_literally():
    argv = sbatch.command(spec(name="n;$(touch /tmp/pwn)|x", partition="normal"), "firecrest-mesh:m")
    line = shell_join(argv)
    assert shlex.split(line) == argv  # the remote shell sees exactly these arguments
    assert "X=a,b'c\"$(id)" in argv and "--job-name=n;$(touch /tmp/pwn)|x" in argv
    assert argv[:3] == ["bash", "-c", sbatch.ENV_FILE_SCRIPT] and argv[4:6] == ["1", "X=a,b'c\"$(id)"]
    assert argv[6] == "sbatch" and "--export=ALL" in argv and "--export-file=3" in argv
    assert "--comment=firecrest-mesh:m" in argv


def _run_with_fake_sbatch(argv: list[str], tmp_path: Path, **environ: str) -> tuple[list[str], list[str], bytes]:
    """Runs `argv` as the remote shell would, with an `sbatch` that records its arguments, what it
    reads on file descriptor 3 and on stdin, and its own environment's PATH/LD_PRELOAD/SBATCH_WAIT."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / "sbatch"
    fake.write_text('#!/bin/sh\nprintf "%s\\0" "$@" > "$OUT/args"\ncat <&3 > "$OUT/fd3"\n'
                    'cat > "$OUT/stdin"\nprintf "%s|%s|%s" "$PATH" "$LD_PRELOAD" "$SBATCH_WAIT" > "$OUT/own"\n'
                    'echo 4242\n')
    fake.chmod(0o755)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "OUT": str(tmp_path), **environ}
    run = subprocess.run(shell_join(argv), shell=True, input=b"#!/bin/bash\necho script\n", env=env,
                         capture_output=True)
    assert run.returncode == 0 and run.stdout == b"4242\n", run.stderr
    args = (tmp_path / "args").read_bytes().split(b"\0")[:-1]
    fd3 = (tmp_path / "fd3").read_bytes().split(b"\0")[:-1]
    assert (tmp_path / "stdin").read_bytes() == b"#!/bin/bash\necho script\n"
    return [a.decode() for a in args], [d.decode() for d in fd3], (tmp_path / "own").read_bytes()


def test_sbatch_job_environment_goes_to_fd3_after_the_login_environment(tmp_path):
    env = (("PATH", "/nowhere"), ("LD_PRELOAD", "/nowhere.so"), ("SBATCH_WAIT", "1"), ("ODD", "a,b'c\"$(id) `x`;|"),
           ("LOGIN", "overridden"), ("EMPTY", ""))
    argv = sbatch.command(spec(env=env, name="n"), "m")
    args, fd3, own = _run_with_fake_sbatch(argv, tmp_path, LOGIN="from-login")
    assert argv[4:5 + len(env)] == [str(len(env)), *(f"{k}={v}" for k, v in env)]
    assert args == argv[6 + len(env):] and argv[5 + len(env)] == "sbatch" and "--job-name=n" in args
    # The login environment first (what --export=ALL exports), then the job's definitions in order.
    assert "LOGIN=from-login" in fd3 and fd3[-len(env):] == [f"{k}={v}" for k, v in env]
    # sbatch itself ran with the login environment, not the job's PATH, LD_PRELOAD or SBATCH_WAIT.
    assert own.startswith(str(tmp_path).encode()) and own.endswith(b"||")


def test_sbatch_without_definitions_exports_the_login_environment_only(tmp_path):
    args, fd3, _ = _run_with_fake_sbatch(sbatch.command(spec(env=()), "m"), tmp_path, LOGIN="x")
    assert "LOGIN=x" in fd3 and "" not in fd3 and args[0] == "--parsable"


def test_sbatch_script_path_comes_after_double_dash():
    argv = sbatch.command(spec(script=None, script_path="/home/alice/job.sh"), "m")
    assert argv[-2:] == ["--", "/home/alice/job.sh"]


def test_sbatch_parse_captured_output():
    assert sbatch.parse(read("sbatch_parsable.txt")) == "4442"


@pytest.mark.parametrize("out,expected", [("4242\n", "4242"), ("4242;local\n", "4242"), ("", None),
                                          ("Submitted batch job 1\n", None)])
def test_sbatch_parse(out, expected):
    assert sbatch.parse(out) == expected
