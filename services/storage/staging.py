"""S3 staging of external transfers (FirecREST v2's `s3_datatransfer.py`), through boto3 against any
S3 endpoint: a bucket per user (named after the user) with v2's lifecycle rule, one object per
transfer at `<uuid4>/<basename>`, multipart uploads and presigned URLs.

Two clients sign: the private one (`private_url`) talks to S3 for the service and signs the URLs the
transfer jobs on the system use; the public one (`public_url`) signs the URLs handed to the client.
Presigning is local; creating a bucket or a multipart upload is a call to S3. S3 unreachable or
refusing → 503.

An `S3Staging` is made only where S3 is called: the storage service's helper process
(`staging_worker`) and the sweeper's child process. boto3 is imported then, not with this module:
its clients hold ~23 MiB (the S3 service model), which the service process, importing this module for
its types, never loads.
"""

from __future__ import annotations

import math
import posixpath
import uuid
from dataclasses import dataclass

from services.common.errors import BadRequest, ServiceUnavailable
from services.storage.settings import S3Credentials, S3Settings

MAX_PARTS = 10000  # S3's limit of parts per multipart upload


@dataclass(frozen=True)
class StagedUpload:
    """An upload prepared in S3: the client's URLs (public) and the job's (private)."""
    bucket: str
    key: str
    part_urls: list[str]
    complete_url: str
    head_url: str
    get_url: str


@dataclass(frozen=True)
class StagedDownload:
    """A download prepared in S3: the job's URLs (private) and the client's (public)."""
    bucket: str
    key: str
    part_urls: list[str]
    complete_url: str
    download_url: str


def part_count(size: int, part_size: int) -> int:
    """Parts of `part_size` bytes (the last shorter) that hold `size` bytes; at least one. 400 when
    that exceeds S3's 10000 parts or the size is negative."""
    if size < 0:
        raise BadRequest("The file size must not be negative.")
    parts = max(1, math.ceil(size / part_size))
    if parts > MAX_PARTS:
        raise BadRequest(f"The file is too large for the staging area: it needs {parts} parts of "
                         f"{part_size} bytes, at most {MAX_PARTS} are possible.")
    return parts


def object_key(path: str) -> str:
    """`<uuid4>/<basename>` (FirecREST v2's key)."""
    return f"{uuid.uuid4()}/{posixpath.basename(path.rstrip('/'))}"


def lifecycle(days: int) -> dict:
    """FirecREST v2's bucket lifecycle: every object expires after `days` days."""
    return {"Rules": [{"ID": "ExpireObjects", "Prefix": "", "Status": "Enabled", "Expiration": {"Days": days}}]}


def _client(url: str, settings: S3Settings, credentials: S3Credentials):
    import boto3  # lazy: see the module's docstring
    from botocore.config import Config as BotoConfig

    config = BotoConfig(signature_version="s3v4", s3={"addressing_style": "path"},
                        connect_timeout=5, read_timeout=30, retries={"max_attempts": 3, "mode": "standard"})
    return boto3.client("s3", endpoint_url=url, region_name=settings.region, config=config,
                        aws_access_key_id=credentials.access_key_id,
                        aws_secret_access_key=credentials.secret_access_key)


class S3Staging:
    """Blocking: made and called in a process of its own (`staging_worker`, the sweeper's child)."""

    def __init__(self, settings: S3Settings, credentials: S3Credentials):
        self.settings = settings
        self.private = _client(settings.private_url, settings, credentials)  # the service's calls, the jobs' URLs
        self.public = _client(settings.public_url, settings, credentials)  # the URLs handed to clients

    def _sign(self, client, operation: str, method: str | None = None, **params) -> str:
        return client.generate_presigned_url(operation, Params=params, HttpMethod=method,
                                             ExpiresIn=self.settings.url_lifetime_seconds)

    def ensure_bucket(self, bucket: str) -> None:
        """Creates the user's bucket with v2's lifecycle rule; an existing one of ours is kept as is."""
        from botocore.exceptions import ClientError
        try:
            self.private.create_bucket(Bucket=bucket)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "BucketAlreadyOwnedByYou":
                return
            raise
        self.private.put_bucket_lifecycle_configuration(
            Bucket=bucket, LifecycleConfiguration=lifecycle(self.settings.lifecycle_days))

    def _multipart(self, bucket: str, key: str, parts: int, signer) -> tuple[list[str], str]:
        upload_id = self.private.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
        urls = [self._sign(signer, "upload_part", Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=n)
                for n in range(1, parts + 1)]
        complete = self._sign(signer, "complete_multipart_upload", "POST", Bucket=bucket, Key=key,
                              UploadId=upload_id)
        return urls, complete

    def start_upload(self, username: str, target: str, size: int) -> StagedUpload:
        """Client → S3 (public URLs) → the job (private GET and HEAD)."""
        parts = part_count(size, self.settings.max_part_size)
        key = object_key(target)
        with _s3_errors():
            self.ensure_bucket(username)
            urls, complete = self._multipart(username, key, parts, self.public)
        return StagedUpload(username, key, urls, complete,
                            self._sign(self.private, "head_object", Bucket=username, Key=key),
                            self._sign(self.private, "get_object", Bucket=username, Key=key))

    def start_download(self, username: str, source: str, size: int) -> StagedDownload:
        """The job → S3 (private URLs) → the client (public GET)."""
        parts = part_count(size, self.settings.max_part_size)
        key = object_key(source)
        with _s3_errors():
            self.ensure_bucket(username)
            urls, complete = self._multipart(username, key, parts, self.private)
        return StagedDownload(username, key, urls, complete,
                              self._sign(self.public, "get_object", Bucket=username, Key=key))


class _s3_errors:
    """S3 failures as the API's 503 (the message names the S3 error code, never a key or URL)."""

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        if exc is None:
            return False
        from botocore.exceptions import BotoCoreError, ClientError
        if isinstance(exc, ClientError):
            code = exc.response.get("Error", {}).get("Code", "unknown")
            raise ServiceUnavailable(f"The staging area (S3) refused the request: {code}.") from None
        if isinstance(exc, BotoCoreError):
            raise ServiceUnavailable("The staging area (S3) is unavailable.") from None
        return False
