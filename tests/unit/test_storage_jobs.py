"""The storage service's pure logic: transfer job scripts (header, quoting, success lines, run with
bash on hostile names in a temporary folder), S3 staging arithmetic, the storage settings, the
sweeper's selection and the embedded S3 server's command line and generated files."""

from __future__ import annotations

import datetime
import json
import os
import subprocess
from dataclasses import replace

import pytest

from services.common.config import ConfigError, load_config
from services.common.errors import BadRequest
from services.common.identity import Caller
from services.storage import s3_server, settings, staging, sweeper
from services.storage.jobs import file_ops, header, s3_egress, s3_ingress

HOSTILE = ["a b", "it's", 'q"uote', "$(touch PWNED)", "`touch PWNED`", "semi;touch PWNED", "-rf", "new\nline",
           "star*", "back\\slash", "ünï"]


@pytest.fixture(scope="module")
def system():
    return load_config().system("local")


def _caller(name="alice"):
    return Caller(username=name, access_token="t", expires_at=0)


def _run(body: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", "set -u\n" + body], cwd=cwd, capture_output=True, text=True, timeout=30)


def test_directives_substitute_the_account_or_drop_its_line(system):
    sys_ = replace(system, datatransfer_jobs_directives=("#SBATCH --partition=xfer", "#SBATCH --account={account}"))
    assert header.directives(sys_, "proj-a") == ["#SBATCH --partition=xfer", "#SBATCH --account=proj-a"]
    assert header.directives(sys_, "") == ["#SBATCH --partition=xfer"]
    for bad in ("proj a", "x\n#SBATCH --uid=0", "A;B", "$(id)"):
        with pytest.raises(BadRequest):
            header.directives(sys_, bad)


def test_job_plan_and_spec(system):
    who = _caller()
    plan = header.plan(system, who)
    assert plan.working_directory == "/home/alice"
    assert plan.output_log.startswith("/home/alice/.f7t_file_handling_job_") and plan.output_log.endswith(".log")
    assert plan.error_log.startswith("/home/alice/.f7t_file_handling_job_error_")
    spec = header.job_spec(system, plan, "CopyFiles", "shared", file_ops.copy("/a", "/b", False))
    lines = spec.script.splitlines()
    assert lines[0] == "#!/bin/bash" and "#SBATCH --account=shared" in lines and "#SBATCH --partition=xfer" in lines
    assert spec.standard_input == "/dev/null" and spec.standard_output == plan.output_log
    assert dict(spec.env)["PATH"] == header.JOB_PATH
    answer = plan.answer("4242")
    assert answer.job_id == "4242" and answer.logs.error_log == plan.error_log


def test_directive_lines_are_checked(system):
    settings.check_directives(system)
    with pytest.raises(ConfigError):
        settings.check_directives(replace(system, datatransfer_jobs_directives=("--partition=xfer",)))
    with pytest.raises(ConfigError):
        settings.check_directives(replace(system, datatransfer_jobs_directives=("#SBATCH -p x\nrm -rf /",)))


@pytest.mark.parametrize("name", HOSTILE)
def test_file_op_scripts_act_on_hostile_names_literally(tmp_path, name):
    src, dst = tmp_path / name, tmp_path / (name + ".copy")
    src.write_text("data")
    r = _run(file_ops.copy(str(src), str(dst), False), tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == file_ops.COPIED and dst.read_text() == "data"
    moved = tmp_path / (name + ".moved")
    r = _run(file_ops.move(str(dst), str(moved)), tmp_path)
    assert r.stdout.strip() == file_ops.MOVED and moved.exists() and not dst.exists()
    archive = tmp_path / (name + ".tar.gz")
    r = _run(file_ops.compress(str(src), str(archive), "", False, "gzip"), tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == file_ops.COMPRESSED
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    r = _run(file_ops.extract(str(archive), str(out), "gzip"), tmp_path)
    assert r.stdout.strip() == file_ops.EXTRACTED and (out / name).read_text() == "data"
    r = _run(file_ops.delete(str(moved)), tmp_path)
    assert r.stdout.strip() == file_ops.DELETED and not moved.exists()
    assert not (tmp_path / "PWNED").exists() and not os.path.exists("PWNED")


def test_a_failing_step_reports_and_exits_without_the_success_line(tmp_path):
    r = _run(file_ops.copy(str(tmp_path / "missing"), str(tmp_path / "x"), False), tmp_path)
    assert r.returncode != 0 and "Unable to copy files, exit code:" in r.stderr
    assert file_ops.COPIED not in r.stdout


def test_s3_scripts_are_valid_bash_and_quote_every_value(tmp_path):
    url = "http://127.0.0.1:1/b/k?X-Amz-Signature=abc&X-Amz-Date=1' ; touch PWNED ; '"
    body = s3_ingress.script("/home/alice/it's $(x)", url, url, 60)
    assert subprocess.run(["bash", "-n", "-c", body]).returncode == 0
    assert "target='/home/alice/it'\"'\"'s $(x)'" in body
    body = s3_egress.script("/home/alice/`id`", 5 << 20, [url, url], url)
    assert subprocess.run(["bash", "-n", "-c", body]).returncode == 0
    assert s3_egress.SUCCESS in body and s3_ingress.SUCCESS in s3_ingress.script("/t", url, url, 1)


def test_ingress_refuses_a_directory_and_gives_up_on_a_missing_object(tmp_path):
    dead = "http://127.0.0.1:9/none"  # discard port: nothing answers
    r = _run(s3_ingress.script(str(tmp_path), dead, dead, 0), tmp_path)
    assert r.returncode == 3 and "is a directory" in r.stderr
    target = tmp_path / "t.bin"
    r = _run(s3_ingress.script(str(target), dead, dead, 0), tmp_path)
    assert r.returncode == 4 and s3_ingress.SUCCESS not in r.stdout and not target.exists()
    assert not list(tmp_path.glob(".t.bin.*"))


def test_egress_refuses_a_missing_file_and_a_grown_one(tmp_path):
    dead = "http://127.0.0.1:9/none"
    r = _run(s3_egress.script(str(tmp_path / "missing"), 5 << 20, [dead], dead), tmp_path)
    assert r.returncode == 34
    big = tmp_path / "big"
    big.write_bytes(b"x" * (5 << 20) + b"y")
    r = _run(s3_egress.script(str(big), 5 << 20, [dead], dead), tmp_path)
    assert r.returncode == 27


def test_part_count_and_keys():
    mib = 1 << 20
    assert staging.part_count(0, 16 * mib) == 1
    assert staging.part_count(16 * mib, 16 * mib) == 1
    assert staging.part_count(16 * mib + 1, 16 * mib) == 2
    assert staging.part_count(50 * mib, 16 * mib) == 4
    with pytest.raises(BadRequest):
        staging.part_count(-1, 16 * mib)
    with pytest.raises(BadRequest):
        staging.part_count(10001 * 5 * mib, 5 * mib)
    key = staging.object_key("/home/alice/dir/file.bin")
    uid, name = key.split("/")
    assert name == "file.bin" and len(uid) == 36
    assert staging.lifecycle(10)["Rules"][0] == {"ID": "ExpireObjects", "Prefix": "", "Status": "Enabled",
                                                "Expiration": {"Days": 10}}


def test_settings_validation(tmp_path):
    base = {"s3": {"private_url": "http://127.0.0.1:38333", "public_url": "https://s3.example.org"}}
    s = settings.parse(base, tmp_path)
    assert s.credentials_file == tmp_path / "s3" / "credentials.json" and s.embedded is None
    assert s.max_part_size == 1 << 30 and s.lifecycle_days == 10
    for bad in ({"max_part_size": 1 << 20}, {"max_part_size": 1 << 32}, {"private_url": "s3.example.org"},
                {"public_url": "http://x/path"}, {"url_lifetime_seconds": 604801}, {"lifecycle_days": 0}):
        with pytest.raises(ConfigError):
            settings.parse({"s3": {**base["s3"], **bad}}, tmp_path)
    with pytest.raises(ConfigError):
        settings.parse({}, tmp_path)
    assert "secret" not in repr(settings.S3Credentials("AK", "secret"))


def test_sweeper_selects_by_age():
    now = datetime.datetime(2026, 1, 11, tzinfo=datetime.timezone.utc)
    items = [{"Key": "old", "LastModified": now - datetime.timedelta(days=11)},
             {"Key": "new", "LastModified": now - datetime.timedelta(days=9)}]
    assert [i["Key"] for i in sweeper.older_than(items, "LastModified", now - datetime.timedelta(days=10))] == ["old"]


def test_embedded_server_files_and_command_line(tmp_path):
    s = settings.parse({"s3": {"private_url": "http://127.0.0.1:38333", "public_url": "http://127.0.0.1:38333",
                               "embedded": {}}}, tmp_path)
    assert s3_server.prepare(s) is True
    assert s3_server.prepare(s) is False  # nothing changed: no restart
    folder = tmp_path / "s3"
    assert oct(folder.stat().st_mode & 0o777) == "0o700"
    for name in ("credentials.json", "identities.json", "security.toml"):
        assert oct((folder / name).stat().st_mode & 0o777) == "0o600"
    creds = json.loads((folder / "credentials.json").read_text())
    assert creds["secret_access_key"] in (folder / "identities.json").read_text()
    toml = (folder / "security.toml").read_text()
    assert toml.count("[jwt.") == 4 and "[grpc.filer]" in toml
    argv = s3_server.argv(s.embedded)
    assert "-ip.bind=127.0.0.1" in argv and "-master.telemetry=false" in argv and "-webdav=false" in argv
    assert argv[3] == str(folder)  # started in its folder, where SeaweedFS reads security.toml
