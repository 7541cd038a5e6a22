"""The storage service's S3 calls, made in a helper process of its own (`StagingWorker`).

boto3 and its S3 clients hold ~23 MiB (the S3 service model) for the life of the process that loads
them. The service itself stays small for direct streaming (peak RSS under 100 MB during a 1 GiB
transfer) by never loading them: `start_upload`/`start_download` (services.storage.staging) run in a
worker process, spawned on the first S3 transfer (a fresh interpreter, not a fork of the gRPC
server) and kept for the next ones. Arguments and answers are plain data; an `ApiError` raised there
(S3 unreachable: 503, too many parts: 400) reaches the caller as it is. A worker that died is
replaced on the next call; the call that saw it die answers 503. The helper dies with the service
(PR_SET_PDEATHSIG), also when the service is killed.
"""

from __future__ import annotations

import asyncio
import ctypes
import multiprocessing
import os
import signal
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from services.common.errors import ServiceUnavailable
from services.storage.settings import S3Credentials, S3Settings
from services.storage.staging import S3Staging, StagedDownload, StagedUpload

_staging: S3Staging | None = None  # the worker process's own (made on its first call)


_PR_SET_PDEATHSIG = 1


def _die_with(parent: int) -> None:
    """The helper process's initializer: SIGKILL when the service's process ends."""
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # it ended before the line above
        os._exit(1)


def _in_worker(settings: S3Settings, credentials: S3Credentials, operation: str, *args):
    global _staging
    if _staging is None:
        _staging = S3Staging(settings, credentials)
    return getattr(_staging, operation)(*args)


class StagingWorker:
    """S3 staging for the servicer, awaited; the work done by the helper process."""

    def __init__(self, settings: S3Settings, credentials: S3Credentials):
        self.settings = settings
        self._credentials = credentials
        self._executor: ProcessPoolExecutor | None = None

    async def _call(self, operation: str, *args):
        if self._executor is None:
            self._executor = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                                                 initializer=_die_with, initargs=(os.getpid(),))
        try:
            return await asyncio.get_running_loop().run_in_executor(
                self._executor, _in_worker, self.settings, self._credentials, operation, *args)
        except BrokenProcessPool:
            self._executor = None
            raise ServiceUnavailable("The staging area's helper process ended: try again.") from None

    async def start_upload(self, username: str, target: str, size: int) -> StagedUpload:
        return await self._call("start_upload", username, target, size)

    async def start_download(self, username: str, source: str, size: int) -> StagedDownload:
        return await self._call("start_download", username, source, size)

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
