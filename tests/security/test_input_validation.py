"""Input validation through the real gateway (issue 7): out-of-range numbers of head/tail/view, control
characters in job fields, and the working directory's file-system rules. Each input used to reach a
500 (a Python repr such as `('Value out of range: …',)` in the body) or was silently cut by Slurm;
now it answers 200 or a 400 naming the parameter, and nothing is submitted.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid

import pytest

SYSTEM = "local"
OPS = f"/filesystem/{SYSTEM}/ops"
JOBS = f"/compute/{SYSTEM}/jobs"
SCRIPT = "#!/bin/bash\necho validation\n"
INT32_MAX, INT64_MAX = 2**31 - 1, 2**63 - 1


@pytest.fixture(scope="module")
def alice(api):
    return api("alice")


@pytest.fixture(scope="module")
def textfile(alice):
    """A small file of alice's, in a folder removed afterwards."""
    folder = f"/scratch/alice/validation-{uuid.uuid4().hex[:8]}"
    assert alice.post(f"{OPS}/mkdir", json={"path": folder, "parent": True}).status_code == 201
    r = alice.post(f"{OPS}/upload", params={"path": folder}, files={"file": ("t.txt", b"one\ntwo\nthree\n")})
    assert r.status_code == 204, r.text
    yield f"{folder}/t.txt"
    alice.delete(f"{OPS}/rm", params={"path": folder})


def assert_400_naming(r, *names: str) -> None:
    assert r.status_code == 400, (r.status_code, r.text)
    message = r.json()["message"]
    assert any(n in message for n in names), message
    assert "('" not in message and "Traceback" not in message, message


# -- head / tail / view numbers ------------------------------------------------------------------------------

@pytest.mark.parametrize("route", ["head", "tail"])
@pytest.mark.parametrize("unit", ["lines", "bytes"])
@pytest.mark.parametrize("value", [str(INT32_MAX + 1), "1000000000000", str(INT64_MAX), str(INT64_MAX + 1),
                                   str(2**64 - 1), str(2**64), "-1", str(-(2**31)), str(-(2**63)),
                                   str(-(2**63) - 1), "1e3", "1.5", "", "abc"])
def test_out_of_range_counts_are_400_naming_the_parameter(alice, textfile, route, unit, value):
    r = alice.get(f"{OPS}/{route}", params={"path": textfile, unit: value})
    assert_400_naming(r, unit)


@pytest.mark.parametrize("route, skip", [("head", "skipTrailing"), ("tail", "skipHeading")])
@pytest.mark.parametrize("unit", ["lines", "bytes"])
def test_the_largest_count_is_answered(alice, textfile, route, skip, unit):
    r = alice.get(f"{OPS}/{route}", params={"path": textfile, unit: str(INT32_MAX)})
    assert r.status_code == 200, r.text
    assert r.json()["output"]["content"] == "one\ntwo\nthree\n"
    r = alice.get(f"{OPS}/{route}", params={"path": textfile, unit: str(INT32_MAX), skip: "true"})
    assert r.status_code == 200 and r.json()["output"]["content"] == ""


@pytest.mark.parametrize("offset", [str(INT64_MAX), str(2**44), str(2**62)])
def test_an_offset_the_file_cannot_be_read_from_is_400_naming_offset(alice, textfile, offset):
    assert_400_naming(alice.get(f"{OPS}/view", params={"path": textfile, "offset": offset}), "offset")


def test_an_offset_past_the_end_is_an_empty_view(alice, textfile):
    r = alice.get(f"{OPS}/view", params={"path": textfile, "offset": str(2**40)})
    assert r.status_code == 200 and r.json()["output"] == ""


@pytest.mark.parametrize("size", [str(INT64_MAX), str(INT64_MAX + 1), "0", "-1"])
def test_view_sizes_out_of_range_are_400_naming_size(alice, textfile, size):
    assert_400_naming(alice.get(f"{OPS}/view", params={"path": textfile, "size": size}), "size")


# -- other utilities parameters ------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["17777", "u+x;id", "--reference=/etc/passwd", "7" * 300, "777\n", "777\x00"])
def test_invalid_chmod_modes_are_400(alice, textfile, mode):
    assert_400_naming(alice.put(f"{OPS}/chmod", json={"path": textfile, "mode": mode}), "mode")


@pytest.mark.parametrize("route", ["head", "view", "checksum"])
def test_reading_a_directory_is_400(alice, textfile, route):
    assert_400_naming(alice.get(f"{OPS}/{route}", params={"path": textfile.rsplit("/", 1)[0]}),
                      "Is a directory")


def test_a_file_used_as_a_directory_and_a_too_long_name_are_400(alice, textfile):
    assert_400_naming(alice.get(f"{OPS}/ls", params={"path": f"{textfile}/x"}), "Not a directory")
    assert_400_naming(alice.get(f"{OPS}/stat", params={"path": "/scratch/alice/" + "n" * 300}),
                      "File name too long")
    assert_400_naming(alice.get(f"{OPS}/stat", params={"path": "/scratch/alice/" + "n/" * 2100}),
                      "longer than 4095 bytes")


# -- job fields --------------------------------------------------------------------------------------------------

def slurm_has_job_named(fragment: str) -> bool:
    """True when the controller knows a job whose name contains `fragment` (as root: all users)."""
    out = subprocess.run(["squeue", "--noheader", "--states=all", "--format=%j"], capture_output=True,
                         text=True, check=True).stdout
    return fragment in out


def submit(alice, **job):
    body = {"workingDirectory": "/home/alice", "script": SCRIPT, **job}
    return alice.post(JOBS, json={"job": body})


@pytest.mark.parametrize("bad", ["\n", "\r", "\r\n", "\x00", "\x1b", "\u2028", "\x85", "\t"])
def test_a_job_name_with_a_control_character_is_400_and_nothing_is_submitted(alice, bad):
    tag = f"ctl-{uuid.uuid4().hex[:10]}"
    assert_400_naming(submit(alice, name=f"{tag}{bad}#SBATCH --output=/tmp/{tag}"), "job.name")
    assert not slurm_has_job_named(tag)


@pytest.mark.parametrize("field", ["account", "partition", "reservation", "constraints",
                                   "standardInput", "standardOutput", "standardError"])
@pytest.mark.parametrize("bad", ["\n", "\r", "\x00"])
def test_other_job_fields_with_control_characters_are_400_naming_the_field(alice, field, bad):
    value = f"/home/alice/x{bad}y" if field.startswith("standard") else f"x{bad}y"
    assert_400_naming(submit(alice, **{field: value}), f"job.{field}")


def test_a_script_path_with_a_newline_is_400(alice):
    r = alice.post(JOBS, json={"job": {"workingDirectory": "/home/alice", "scriptPath": "/home/alice/a\nb.sh"}})
    assert_400_naming(r, "job.scriptPath")


@pytest.mark.parametrize("env", [{"EVIL": "a\nb"}, {"EVIL": "a\rb"}, {"EVIL": "a\x00b"}, ["EVIL=a\nb"]])
def test_env_values_with_control_characters_are_400_naming_the_variable(alice, env):
    assert_400_naming(submit(alice, env=env), "EVIL")


@pytest.mark.parametrize("name", ["EVIL\n", "A\nB", "A B", "1A", "A=B", "$(id)"])
def test_bad_env_names_are_400(alice, name):
    assert_400_naming(submit(alice, env={name: "x"}), "environment variable name")


@pytest.mark.parametrize("wd, names", [
    ("/etc", ("workingDirectory", "does not match")),
    ("/tmp", ("workingDirectory",)),
    ("/", ("workingDirectory",)),
    ("/homework/alice", ("workingDirectory",)),
    ("/home/alice/../../etc", ("workingDirectory",)),
    ("home/alice", ("workingDirectory",)),
    ("/home/alice/x\x00y", ("workingDirectory",)),
    ("/home/alice/x\ny", ("workingDirectory",)),
    ("/home/" + "d" * 5000, ("workingDirectory",)),
])
def test_working_directory_obeys_the_file_operations_rules(alice, wd, names):
    assert_400_naming(submit(alice, workingDirectory=wd), *names)
    assert_400_naming(alice.post(JOBS, json={"job": {"current_working_directory": wd, "script": SCRIPT}}),
                      *names)


def test_accepted_odd_but_valid_fields_keep_metadata_exact(alice):
    # Text without control characters still reaches Slurm literally, and the metadata stays whole
    # (a newline in the name used to empty standardInput/Output/Error).
    name = f"odd $(x) `y` ; | {uuid.uuid4().hex[:6]}"
    out = f"/scratch/alice/odd out-{uuid.uuid4().hex[:6]}.txt"
    r = submit(alice, name=name, workingDirectory="/scratch/alice", standardOutput=out,
               env={"T": "tab\there"})
    assert r.status_code == 201, r.text
    job_id = r.json()["jobId"]
    try:
        meta = alice.get(f"{JOBS}/{job_id}/metadata").json()["jobs"][0]
        assert meta["standardOutput"] == out and meta["standardInput"] == "/dev/null"
        assert alice.get(f"{JOBS}/{job_id}").json()["jobs"][0]["name"] == name
    finally:
        alice.delete(f"{JOBS}/{job_id}")
        subprocess.run(["rm", "-f", out])


def _wait_for_file(path: str, bound: float = 60) -> str:
    """The file's text once it is non-empty (polls up to `bound` seconds; a bound, not an assertion)."""
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:
        if os.path.exists(path) and os.path.getsize(path):
            time.sleep(0.3)
            break
        time.sleep(0.3)
    with open(path) as f:
        return f.read()


def test_env_variables_that_would_steer_sbatch_only_reach_the_job(alice):
    # These used to be set on the sbatch process itself: PATH without sbatch was a 500, SLURM_CONF a
    # 408 after the timeout, SBATCH_PARTITION/ACCOUNT changed the submission.
    out = f"/scratch/alice/env-steer-{uuid.uuid4().hex[:8]}.out"
    env = {"PATH": "/nonexistent", "SLURM_CONF": "/nonexistent.conf", "LD_PRELOAD": "/nonexistent.so",
           "SBATCH_PARTITION": "nosuchpartition", "SBATCH_ACCOUNT": "proj-b", "SBATCH_WAIT": "1",
           "MULTI": "a,b'c\"$(id)"}
    script = '#!/bin/bash\necho "PATH=$PATH"\necho "CONF=$SLURM_CONF"\necho "MULTI=$MULTI"\n'
    r = alice.post(JOBS, json={"job": {"workingDirectory": "/scratch/alice", "script": script,
                                       "standardOutput": out, "env": env}})
    assert r.status_code == 201, r.text
    job_id = r.json()["jobId"]
    try:
        job = alice.get(f"{JOBS}/{job_id}").json()["jobs"][0]
        assert job["partition"] != "nosuchpartition" and job["account"] == "proj-a"  # alice's default
        text = _wait_for_file(out)
        assert "PATH=/nonexistent\n" in text and "MULTI=a,b'c\"$(id)\n" in text
    finally:
        alice.delete(f"{JOBS}/{job_id}")
        subprocess.run(["rm", "-f", out])


@pytest.mark.parametrize("odd", [",", "\u2603", "caf\u00e9"])
def test_listing_by_a_name_with_a_comma_or_non_ascii_finds_exactly_that_job(alice, odd):
    name = f"list{odd}{uuid.uuid4().hex[:8]}"
    r = submit(alice, name=name, workingDirectory="/scratch/alice", standardOutput="/dev/null")
    assert r.status_code == 201, r.text
    job_id = r.json()["jobId"]
    try:
        for params in ({"name": name}, {"name": name, "account": "proj-a"}):
            listed = alice.get(JOBS, params=params)
            assert listed.status_code == 200, listed.text
            assert [j["jobId"] for j in listed.json()["jobs"]] == [job_id]
        assert alice.get(JOBS, params={"name": name, "account": "\u2603"}).json()["jobs"] == []
    finally:
        alice.delete(f"{JOBS}/{job_id}")


@pytest.mark.parametrize("job_id", ["abc", "a" * 200])
def test_a_job_id_slurm_cannot_parse_is_job_not_found(alice, job_id):
    r = alice.get(f"{JOBS}/{job_id}")
    assert r.status_code == 404 and "Job not found" in r.json()["message"], r.text


def test_a_script_path_naming_a_directory_is_400(alice):
    r = alice.post(JOBS, json={"job": {"workingDirectory": "/home/alice", "scriptPath": "/home/alice/"}})
    assert_400_naming(r, "Batch script")


def test_a_long_url_never_trips_grpcs_metadata_limit(api):
    # The gateway admits URLs up to 16 KiB and forwards the whole URL to the service as metadata; gRPC
    # refused metadata above 8 KiB at random (its soft limit): about a quarter of these answered 413.
    alice = api("alice")
    answers = {alice.get(f"{OPS}/stat", params={"path": "/scratch/alice/" + "n/" * 2100}).status_code
               for _ in range(40)}
    assert answers == {400}
