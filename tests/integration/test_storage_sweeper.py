"""The staging area's sweeper against the embedded SeaweedFS: objects older than the lifecycle go,
newer ones stay; multipart uploads older than the URL lifetime are aborted. It works on a bucket of
its own (never a user's), with the mesh's S3 identity from the state folder, and a `now` in the
future instead of waiting days."""

from __future__ import annotations

import datetime
import uuid

import pytest

from services.storage import settings
from services.storage.staging import S3Staging
from services.storage.sweeper import Sweeper


@pytest.fixture
def staging(config):
    s3 = settings.load(config)
    return S3Staging(s3, settings.read_credentials(s3))


def test_sweeper_deletes_expired_objects_and_aborts_stale_uploads(staging):
    s3, bucket = staging.private, f"sweeper-test-{uuid.uuid4().hex[:12]}"
    staging.ensure_bucket(bucket)
    try:
        lifecycle = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"][0]
        assert lifecycle["ID"] == "ExpireObjects" and lifecycle["Expiration"]["Days"] == 10
        s3.put_object(Bucket=bucket, Key="a/old.bin", Body=b"x")
        upload = s3.create_multipart_upload(Bucket=bucket, Key="b/partial.bin")["UploadId"]
        now = datetime.datetime.now(datetime.timezone.utc)
        sweeper = Sweeper(staging)
        assert sweeper.sweep(now, buckets=[bucket]) == (0, 0)  # everything is fresh
        later = now + datetime.timedelta(days=staging.settings.lifecycle_days, hours=1)
        assert sweeper.sweep(later, buckets=[bucket]) == (1, 1)
        assert s3.list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0
        assert upload not in [u["UploadId"] for u in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])]
    finally:
        for o in s3.list_objects_v2(Bucket=bucket).get("Contents", []):
            s3.delete_object(Bucket=bucket, Key=o["Key"])
        s3.delete_bucket(Bucket=bucket)
