"""The staging area's sweeper: what the S3 lifecycle rule promises, done by the mesh itself (the
embedded SeaweedFS stores the rule but does not enforce it).

Every `sweep_interval_seconds` the storage service deletes, in every bucket of the mesh's S3
identity, the objects older than `lifecycle_days` days, and aborts the multipart uploads started
longer ago than the URL lifetime (their URLs have expired: nobody can complete them). Replicas may
sweep at the same time; deleting twice is harmless.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from typing import Iterable

from botocore.exceptions import BotoCoreError, ClientError

from services.storage.staging import S3Staging

log = logging.getLogger(__name__)


def older_than(items: Iterable[dict], field: str, cutoff: datetime.datetime) -> list[dict]:
    """The items whose timestamp `field` lies before `cutoff`."""
    return [item for item in items if item[field] < cutoff]


class Sweeper:
    def __init__(self, staging: S3Staging):
        self._staging = staging
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

    async def _loop(self) -> None:
        interval = self._staging.settings.sweep_interval_seconds
        while True:
            try:
                deleted, aborted = await asyncio.to_thread(self.sweep)
                if deleted or aborted:
                    log.info("staging area swept", extra={"fields": {"deleted": deleted, "aborted": aborted}})
            except (BotoCoreError, ClientError) as exc:
                log.warning("staging area sweep failed", extra={"fields": {"error": type(exc).__name__}})
            await asyncio.sleep(interval)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
