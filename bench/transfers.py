"""Benchmark of large transfers through the running mesh (`make up`): the S3 staging path of the
storage service against `scp` over the same sshd as the floor.

1. For 100 MiB and 1 GiB of random data, as alice: `scp` to and from /scratch/alice (an SSH
   certificate from the certificator, like the services', over the local sshd), then pyfirecrest's
   v2 client, unchanged: `upload` (POST /transfer/upload, the parts PUT to SeaweedFS, the completion,
   the job that probes the object and downloads it on the cluster, pyfirecrest's wait for the job) and
   `download` (stat, the job that uploads the parts, the wait, the GET). Every copy is checked
   (SHA-256). MB/s = 10^6 bytes per second of end-to-end time.
2. pyfirecrest's 50 MiB upload, end to end, several times, beside FirecREST v2's minimum: its upload
   job probes the staged object every 60 s and is submitted before the client uploads, so its first
   probe misses and the file lands after at least one 60 s sleep.
3. SeaweedFS alone: one curl PUT and GET of 256 MiB with presigned URLs (each hop's best case).
4. RSS of the storage service and of SeaweedFS after the transfers, and their CPU at rest then.

5. Direct streaming through the gateway (REST, the storage service's UploadStream/DownloadStream: no S3,
   no job): `PUT .../transfer/stream` of the file with its SHA-256 declared, `GET` of it back, checked.

    .venv/bin/python bench/transfers.py [--quick] [--sizes MIB ...] [--streaming-only]
      --quick: 100 MiB only, 2 rounds of 50 MiB; --sizes: other sizes; --streaming-only: scp and
      direct streaming only (no S3 path, no 50 MiB rounds, no SeaweedFS floor)
Results: bench/results/transfers.md and transfers.json. Nothing here asserts on time.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import RESULTS, cpu_at_rest, process_rss  # noqa: E402
from firecrest_mesh.certificator.v1 import certificator_pb2, certificator_pb2_grpc  # noqa: E402
from services.common import mesh_tls  # noqa: E402
from services.common.config import load_config  # noqa: E402
from services.common.oidc_client import fetch_token  # noqa: E402

MIB = 1 << 20
SYSTEM = "local"
V2_PROBE_SECONDS = 60


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(8 * MIB):
            h.update(chunk)
    return h.hexdigest()


def random_file(path: Path, size: int) -> None:
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 8 * MIB)
            f.write(os.urandom(n))
            left -= n


def ssh_identity(config, token: str, folder: Path) -> Path:
    """A key and its certificate for alice from the certificator (as the storage service asks)."""
    private = ed25519.Ed25519PrivateKey.generate()
    key = folder / "id_ed25519"
    key.write_bytes(private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                          serialization.NoEncryption()))
    key.chmod(0o600)
    public = private.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                               serialization.PublicFormat.OpenSSH).decode()
    with mesh_tls.channel(config, "storage", "certificator") as channel:
        reply = certificator_pb2_grpc.CertificatorServiceStub(channel).SignCertificate(
            certificator_pb2.SignCertificateRequest(access_token=token, username="alice", public_key=public),
            timeout=10)
    (folder / "id_ed25519-cert.pub").write_text(reply.certificate)
    return key


def ssh_run(argv: list[str], **kwargs) -> subprocess.CompletedProcess:
    """`argv` (ssh or scp), tried again when the connection itself failed (exit 255: the shared
    machine's fault tests restart sshd now and then)."""
    for attempt in range(3):
        result = subprocess.run(argv, timeout=1800, **kwargs)
        if result.returncode != 255:
            break
        time.sleep(2)
    result.check_returncode()
    return result


def fresh_key(config, folder: Path) -> Path:
    """A certificate for this command (they live 5 minutes: one per scp or ssh)."""
    return ssh_identity(config, fetch_token(config.identity.token_url, "firecrest-alice", "alice-secret"), folder)


def scp(config, folder: Path, source: str, target: str) -> float:
    system = config.system(SYSTEM)
    key = fresh_key(config, folder)
    start = time.perf_counter()
    ssh_run(["scp", "-q", "-i", str(key), "-P", str(system.ssh.port), "-o", "BatchMode=yes",
             "-o", f"UserKnownHostsFile={system.ssh.known_hosts}", "-o", "StrictHostKeyChecking=yes",
             source, target])
    return time.perf_counter() - start


def remote_sha256(config, folder: Path, path: str) -> str:
    """sha256sum over SSH as alice (the ops route's 10 s command limit is too short for 1 GiB)."""
    system = config.system(SYSTEM)
    key = fresh_key(config, folder)
    out = ssh_run(["ssh", "-i", str(key), "-p", str(system.ssh.port), "-o", "BatchMode=yes",
                   "-o", f"UserKnownHostsFile={system.ssh.known_hosts}", "alice@127.0.0.1",
                   shlex.join(["sha256sum", "--", path])], capture_output=True, text=True).stdout
    return out.split()[0]


def s3_floor(config, folder: Path, size: int = 256 * MIB) -> tuple[float, float]:
    """MB/s of one curl PUT and one curl GET of `size` bytes to SeaweedFS alone (presigned, private
    URL, a bucket of its own): what each of the S3 path's two hops could reach at best."""
    from services.storage import settings
    from services.storage.staging import S3Staging
    s3 = settings.load(config)
    staging = S3Staging(s3, settings.read_credentials(s3))
    bucket, src, back = f"bench-floor-{os.getpid()}", folder / "floor", folder / "floor-back"
    random_file(src, size)
    staging.ensure_bucket(bucket)
    try:
        put = staging.private.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "x"},
                                                     ExpiresIn=600, HttpMethod="PUT")
        get = staging.private.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "x"},
                                                     ExpiresIn=600)
        start = time.perf_counter()
        subprocess.run(["curl", "-sS", "--fail", "-o", "/dev/null", "--upload-file", str(src), put], check=True)
        up = time.perf_counter() - start
        start = time.perf_counter()
        subprocess.run(["curl", "-sS", "--fail", "-o", str(back), get], check=True)
        down = time.perf_counter() - start
        assert sha256_file(back) == sha256_file(src)
    finally:
        staging.private.delete_object(Bucket=bucket, Key="x")
        staging.private.delete_bucket(Bucket=bucket)
        src.unlink(missing_ok=True)
        back.unlink(missing_ok=True)
    return mbps(size, up), mbps(size, down)


def forget_staged(config, names: set[str]) -> None:
    """Deletes the objects this run staged in alice's bucket (<uuid>/<name>), instead of leaving
    gigabytes to the 10-day lifecycle."""
    from services.storage import settings
    from services.storage.staging import S3Staging
    s3 = settings.load(config)
    client = S3Staging(s3, settings.read_credentials(s3)).private
    for page in client.get_paginator("list_objects_v2").paginate(Bucket="alice"):
        for o in page.get("Contents", []):
            if o["Key"].split("/", 1)[-1] in names:
                client.delete_object(Bucket="alice", Key=o["Key"])


def stream_up(gateway: str, auth, src: Path, path: str, digest: str) -> float:
    """Seconds of a direct streamed upload (PUT, the file streamed from disk, its SHA-256 declared)."""
    start = time.perf_counter()
    with open(src, "rb") as f:
        r = httpx.put(f"{gateway}/filesystem/{SYSTEM}/transfer/stream", params={"path": path, "sha256": digest},
                      content=f, headers={"Authorization": f"Bearer {auth.get_access_token()}",
                                          "content-type": "application/octet-stream"}, timeout=1800)
    seconds = time.perf_counter() - start
    r.raise_for_status()
    assert r.json()["sha256"] == digest
    return seconds


def stream_down(gateway: str, auth, path: str, back: Path, digest: str) -> float:
    """Seconds of a direct streamed download into `back`, checked against the announced SHA-256."""
    start = time.perf_counter()
    with httpx.stream("GET", f"{gateway}/filesystem/{SYSTEM}/transfer/stream", params={"path": path},
                      headers={"Authorization": f"Bearer {auth.get_access_token()}"}, timeout=1800) as r, \
            open(back, "wb") as f:
        r.raise_for_status()
        for chunk in r.iter_raw(MIB):
            f.write(chunk)
    seconds = time.perf_counter() - start
    assert r.headers["x-firecrest-sha256"] == digest == sha256_file(back)
    return seconds


def mbps(size: int, seconds: float) -> float:
    return round(size / seconds / 1e6, 1)


def row(label: str, path: str, direction: str, size: int, seconds: float) -> dict:
    """One line of the results table."""
    return {"size": label, "path": path, "direction": direction, "seconds": round(seconds, 2), "MB/s": mbps(size, seconds)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--sizes", type=int, nargs="+", metavar="MIB", help="file sizes in MiB (default 100 1024)")
    parser.add_argument("--streaming-only", action="store_true", help="scp and direct streaming only")
    args = parser.parse_args()
    from firecrest import ClientCredentialsAuth
    from firecrest.v2 import Firecrest

    config = load_config()
    gateway = f"http://{config.gateway.listen}"
    auth = ClientCredentialsAuth("firecrest-alice", "alice-secret", config.identity.token_url)
    client = Firecrest(firecrest_url=gateway, authorization=auth)
    api = httpx.Client(base_url=gateway, headers={"Authorization": f"Bearer {auth.get_access_token()}"})
    remote = f"/scratch/alice/bench-transfers-{os.getpid()}"
    api.post(f"/filesystem/{SYSTEM}/ops/mkdir", json={"path": remote}).raise_for_status()
    sizes = [100 * MIB] if args.quick else [100 * MIB, 1024 * MIB]
    if args.sizes:
        sizes = [s * MIB for s in args.sizes]
    s3_alone = None
    rows, small = [], []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        try:
            for size in sizes:
                src = folder / f"src-{size}"
                random_file(src, size)
                digest = sha256_file(src)
                label = f"{size // MIB} MiB"
                seconds = scp(config, folder, str(src), f"alice@127.0.0.1:{remote}/scp-{size}")
                assert remote_sha256(config, folder, f"{remote}/scp-{size}") == digest
                rows.append(row(label, "scp (floor)", "upload", size, seconds))
                back = folder / f"scp-back-{size}"
                seconds = scp(config, folder, f"alice@127.0.0.1:{remote}/scp-{size}", str(back))
                assert sha256_file(back) == digest
                back.unlink()
                rows.append(row(label, "scp (floor)", "download", size, seconds))
                seconds = stream_up(gateway, auth, src, f"{remote}/stream-{size}", digest)
                rows.append(row(label, "direct streaming (REST)", "upload", size, seconds))
                seconds = stream_down(gateway, auth, f"{remote}/stream-{size}", back, digest)
                back.unlink()
                rows.append(row(label, "direct streaming (REST)", "download", size, seconds))
                if args.streaming_only:
                    src.unlink()
                    continue
                start = time.perf_counter()
                client.upload(SYSTEM, str(src), remote, f"s3-{size}")
                seconds = time.perf_counter() - start
                assert remote_sha256(config, folder, f"{remote}/s3-{size}") == digest
                rows.append(row(label, "S3 staging (pyfirecrest)", "upload", size, seconds))
                start = time.perf_counter()
                client.download(SYSTEM, f"{remote}/s3-{size}", str(back))
                seconds = time.perf_counter() - start
                assert sha256_file(back) == digest
                back.unlink()
                rows.append(row(label, "S3 staging (pyfirecrest)", "download", size, seconds))
                src.unlink()
            if not args.streaming_only:
                s3_alone = s3_floor(config, folder)
            src = folder / "src-50"
            random_file(src, 50 * MIB)
            for i in range(0 if args.streaming_only else 2 if args.quick else 5):
                start = time.perf_counter()
                client.upload(SYSTEM, str(src), remote, f"small-{i}")
                small.append(time.perf_counter() - start)
        finally:
            try:
                client.rm(SYSTEM, remote)  # pyfirecrest refreshes its token (the run outlives one)
                if not args.streaming_only:
                    forget_staged(config, {f"s3-{size}" for size in sizes} | {f"small-{i}" for i in range(5)})
            except Exception as exc:  # the mesh restarting: the folder stays, the figures stand
                print(f"cleanup of {remote} failed: {exc}", file=sys.stderr)
    rss = {k: v for k, v in process_rss().items() if k in ("storage", "s3")}
    write(rows, small, rss, s3_alone, cpu_at_rest(("storage", "s3")))


def write(rows: list[dict], small: list[float], rss: dict[str, int], s3_alone: tuple[float, float] | None,
          idle_cpu: dict[str, float]) -> None:
    lines = ["| size | path | direction | seconds | MB/s | ratio to scp |", "|---|---|---|---:|---:|---:|"]
    floor = {(r["size"], r["direction"]): r["seconds"] for r in rows if r["path"].startswith("scp")}
    for r in rows:
        ratio = r["seconds"] / floor[(r["size"], r["direction"])]
        lines.append(f"| {r['size']} | {r['path']} | {r['direction']} | {r['seconds']} | {r['MB/s']} | {ratio:.2f}x |")
    median = statistics.median(small) if small else float("nan")
    text = "\n".join([
        "# transfers", "", time.strftime("%Y-%m-%d %H:%M:%S %Z"), "",
        "Through the gateway on the shared 2-core machine (other engineers' load present), as alice; "
        "SeaweedFS, the cluster and the client on the same host. End-to-end times: API call, S3 parts, "
        "the transfer job on the xfer partition (queue wait included), pyfirecrest's wait for the job "
        "(its sleeps: 0.2, 0.5, 1, 2, 4, 8 s ...).", "",
        *lines, "",
        (f"pyfirecrest upload of 50 MiB, end to end, {len(small)} runs: median {median:.1f} s "
         f"(min {min(small):.1f}, max {max(small):.1f}); FirecREST v2's minimum is one {V2_PROBE_SECONDS} s "
         f"probe interval plus the transfer, i.e. > {V2_PROBE_SECONDS} s "
         f"({V2_PROBE_SECONDS / median:.0f}x the median here)." if small else "(no 50 MiB rounds in this run)"), "",
        (f"SeaweedFS alone (one curl PUT / GET of 256 MiB, presigned): {s3_alone[0]} / {s3_alone[1]} MB/s; the "
         "S3 path makes two such hops (client → S3, S3 → the system's disk, or the reverse)."
         if s3_alone else "(SeaweedFS floor not measured in this run)"), "",
        "RSS after the transfers (KiB): " + ", ".join(f"{k} {v}" for k, v in sorted(rss.items())), "",
        "CPU at rest after the transfers (% of one core over 20 s, nobody calling): "
        + ", ".join(f"{k} {v}" for k, v in sorted(idle_cpu.items())), "",
        "Direct streaming (REST through the gateway, one SSH channel as the user; the upload's time includes "
        "the SHA-256 of the whole file on the system before the answer, the download's the SHA-256 before "
        "the first byte).", ""])
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "transfers.md").write_text(text)
    (RESULTS / "transfers.json").write_text(json.dumps({"rows": rows, "upload_50mib_seconds": small, "rss_kib": rss,
                                                        "cpu_at_rest_percent": idle_cpu,
                                                        "seaweedfs_curl_put_get_mbps": s3_alone},
                                                       indent=1))


if __name__ == "__main__":
    main()
