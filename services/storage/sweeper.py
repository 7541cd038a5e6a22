"""The staging area's sweeper: what the S3 lifecycle rule promises, done by the mesh itself (the
embedded SeaweedFS stores the rule but does not enforce it).

Every `sweep_interval_seconds` the storage service deletes, in every bucket of the mesh's S3
identity, the objects older than `lifecycle_days` days, and aborts the multipart uploads started
longer ago than the URL lifetime (their URLs have expired: nobody can complete them). Replicas may
sweep at the same time; deleting twice is harmless.

Each pass runs in a short-lived child process (`python -m services.storage.sweeper --config FILE`), so
that the service itself loads boto3 only when a client asks for an S3 transfer (its memory stays low
for direct streaming).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import logging
import sys
from pathlib import Path
from typing import Iterable

from services.storage.staging import S3Staging

log = logging.getLogger(__name__)


def older_than(items: Iterable[dict], field: str, cutoff: datetime.datetime) -> list[dict]:
    """The items whose timestamp `field` lies before `cutoff`."""
    return [item for item in items if item[field] < cutoff]


class Sweeper:
    def __init__(self, staging, config_file: Path | None = None):
        """`staging`: an S3Staging (sweep()) or anything with its `settings` (the loop's child sweeps)."""
        self._staging = staging
        self._config_file = config_file  # of the child process that sweeps (_loop)
        self._task: asyncio.Task | None = None

    def sweep(self, now: datetime.datetime | None = None, buckets: list[str] | None = None) -> tuple[int, int]:
        """One pass (blocking) over every bucket, or over `buckets`: (objects deleted, multipart
        uploads aborted)."""
        s3, settings = self._staging.private, self._staging.settings
        now = now or datetime.datetime.now(datetime.timezone.utc)
        object_cutoff = now - datetime.timedelta(days=settings.lifecycle_days)
        upload_cutoff = now - datetime.timedelta(seconds=settings.url_lifetime_seconds)
        deleted = aborted = 0
        for name in buckets if buckets is not None else [b["Name"] for b in s3.list_buckets().get("Buckets", [])]:
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=name):
                old = older_than(page.get("Contents", []), "LastModified", object_cutoff)
                if old:
                    s3.delete_objects(Bucket=name, Delete={"Objects": [{"Key": o["Key"]} for o in old],
                                                           "Quiet": True})
                    deleted += len(old)
            uploads = s3.list_multipart_uploads(Bucket=name).get("Uploads", [])
            for upload in older_than(uploads, "Initiated", upload_cutoff):
                s3.abort_multipart_upload(Bucket=name, Key=upload["Key"], UploadId=upload["UploadId"])
                aborted += 1
        return deleted, aborted

    async def _sweep_in_child(self) -> dict:
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "services.storage.sweeper", "--config", str(self._config_file),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await child.communicate()
        if child.returncode != 0:
            raise RuntimeError(err.decode(errors="replace").strip().splitlines()[-1:] or child.returncode)
        return json.loads(out)

    async def _loop(self) -> None:
        interval = self._staging.settings.sweep_interval_seconds
        while True:
            try:
                found = await self._sweep_in_child()
                if found["deleted"] or found["aborted"]:
                    log.info("staging area swept", extra={"fields": found})
            except (OSError, ValueError, KeyError, RuntimeError) as exc:
                log.warning("staging area sweep failed", extra={"fields": {"error": str(exc)[:300]}})
            await asyncio.sleep(interval)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


def main(argv: list[str] | None = None) -> int:
    """One pass over the configuration's staging area; prints {"deleted": n, "aborted": n}."""
    from botocore.exceptions import BotoCoreError, ClientError

    from services.common.config import load_config
    from services.storage import settings

    parser = argparse.ArgumentParser(description="One pass of the staging area's sweeper")
    parser.add_argument("--config", help="configuration file (default: FIRECREST_MESH_CONFIG or config/local.yaml)")
    args = parser.parse_args(argv)
    s3 = settings.load(load_config(args.config))
    try:
        deleted, aborted = Sweeper(S3Staging(s3, settings.read_credentials(s3))).sweep()
    except (BotoCoreError, ClientError) as exc:
        print(f"sweep failed: {type(exc).__name__}", file=sys.stderr)
        return 1
    print(json.dumps({"deleted": deleted, "aborted": aborted}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
