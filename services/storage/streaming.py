"""Direct streaming of files through the storage service (UploadStream, DownloadStream,
GetUploadStreamStatus): the bytes pass between the gRPC stream and one SSH channel as the caller
(`services.common.ssh.stream`), never more than a few chunks in memory; the remote side is one
script per operation (`stream_commands`). Called by the servicer's three handlers.

Upload: the first message names the target; the command checks it, locks and prepares the partial and
prints `ready`; then the messages' bytes are gathered into chunks of `SEND_CHUNK` and each is handed
to the channel before the next message is read (gRPC's flow control and the SSH window hold the rest
back). When the client's stream ends normally the command gets EOF and commits (size, SHA-256, rename);
when it is cut (the client or the gateway gone: the handler is cancelled) or nothing arrives for
`IDLE_SECONDS`, the command is killed: the partial stays, the target is untouched.

Download: the command prints the file's size and SHA-256 before its bytes; they go out as initial
metadata (response headers through the gateway) before the first byte, then the bytes in messages of
`DOWNLOAD_CHUNK`. A download that ends short of the announced length ends with an error status.
"""

from __future__ import annotations

import asyncio
from typing import AsyncIterator

from google.api import httpbody_pb2

from services.common.config import SystemConfig
from services.common.errors import InternalError, RequestTimeout
from services.common.identity import Caller
from services.common.ssh.stream import RemoteStreams
from services.storage import stream_commands as commands

SEND_CHUNK = 1 << 20  # bytes gathered from the client's messages before one send to the system
DOWNLOAD_CHUNK = 1 << 20  # bytes per DownloadStream message
# A transfer that moves nothing for this long ends (408): the client's next message, the system's next
# output (including the SHA-256 of a whole file before a download's first byte or an upload's answer,
# ~3 s per GiB here), a window to send into. The gateway's idle timeout on these routes is longer.
IDLE_SECONDS = 300
OCTET_STREAM = "application/octet-stream"
SIZE_HEADER, SHA256_HEADER = "x-firecrest-size", "x-firecrest-sha256"
OFFSET_HEADER, LENGTH_HEADER = "x-firecrest-offset", "x-firecrest-length"


async def _next(messages: AsyncIterator, what: str):
    """The next message of the client's stream, None at its end; 408 after IDLE_SECONDS of nothing."""
    try:
        async with asyncio.timeout(IDLE_SECONDS):
            return await anext(messages, None)
    except TimeoutError:
        raise RequestTimeout(f"No {what} arrived for {IDLE_SECONDS} seconds: the upload was stopped "
                             "(resume it from the offset GetUploadStreamStatus reports).") from None


async def upload(streams: RemoteStreams, who: Caller, system: SystemConfig, target: str, first,
                 messages: AsyncIterator) -> commands.FileDigest:
    """Writes the stream's bytes (the first message's and the rest's) to `target`; the file's size
    and SHA-256 once it replaced the target."""
    size = first.size if first.HasField("size") else None
    argv = commands.upload_command(target, first.offset, first.sha256, size)
    async with streams.open(who, system, argv) as remote:
        if await remote.read_line() != commands.READY:
            raise commands.error_for(await remote.finish(send_input_eof=False))
        pending = bytearray(first.data.data)
        while True:
            message = await _next(messages, "data")
            if message is not None:
                pending += message.data.data
                if len(pending) < SEND_CHUNK:
                    continue
            if pending and not await remote.send(bytes(pending)):
                break  # the command stopped reading: its exit status says why
            pending.clear()
            if message is None:
                break
        result = await remote.finish()
    if not result.ok:
        raise commands.error_for(result)
    return commands.parse_digest(result.stdout)


async def status(streams: RemoteStreams, who: Caller, system: SystemConfig, target: str) -> commands.PartialStatus:
    async with streams.open(who, system, commands.status_command(target)) as remote:
        result = await remote.finish()
    if not result.ok:
        raise commands.error_for(result)
    return commands.parse_status(result.stdout)


async def download(streams: RemoteStreams, who: Caller, system: SystemConfig, path: str, offset: int,
                   context) -> AsyncIterator[httpbody_pb2.HttpBody]:
    """The file's bytes from `offset` on; its size and SHA-256 sent as initial metadata first."""
    argv = commands.download_command(path, offset)
    async with streams.open(who, system, argv) as remote:
        line = await remote.read_line()
        if not line.endswith(b"\n"):
            raise commands.error_for(await remote.finish(send_input_eof=False))
        digest = commands.parse_digest(line)
        length = digest.size - offset
        await context.send_initial_metadata(((SIZE_HEADER, str(digest.size)), (SHA256_HEADER, digest.sha256),
                                             (OFFSET_HEADER, str(offset)), (LENGTH_HEADER, str(length))))
        sent = 0
        chunk = bytearray()
        while True:
            data = await remote.read(DOWNLOAD_CHUNK - len(chunk))
            chunk += data
            if chunk and (len(chunk) >= DOWNLOAD_CHUNK or not data):
                sent += len(chunk)
                yield httpbody_pb2.HttpBody(content_type=OCTET_STREAM, data=bytes(chunk))
                chunk.clear()
            if not data:
                break
        if sent == 0:
            yield httpbody_pb2.HttpBody(content_type=OCTET_STREAM)
        result = await remote.finish(send_input_eof=False)
    if not result.ok or sent != length:
        raise InternalError(f"The download ended after {sent} of {length} bytes "
                            f"({result.error_text() or 'the file changed while it was read'}): "
                            f"resume from offset {offset + sent}.")

