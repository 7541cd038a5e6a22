"""`services.common.ssh.stream` against the real sshd as alice, in both certificate modes: input and
output of a few MiB through one held channel, a stream left without `finish()` stops its command, and
(marker `large`) more than 1 GiB each way, past paramiko's key re-exchanges every 512 MiB, which once
stalled a stream."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import time

import pytest

from services.common.ssh.certificates import CertificateCache
from services.common.ssh.pool import SshPool
from services.common.ssh.stream import RemoteStreams

MIB = 1 << 20


async def with_streams(config, body):
    certificates = CertificateCache.for_service(config, "storage")
    pool = SshPool(certificates)
    streams = RemoteStreams(pool, idle_seconds=60)
    try:
        return await body(streams)
    finally:
        streams.close()
        await pool.close()
        await certificates.close()


def system_in(config, mode: str):
    system = config.system("local")
    return dataclasses.replace(system, ssh=dataclasses.replace(system.ssh, certificate_mode=mode))


async def pipe_through_sha256sum(streams, caller, system, size: int) -> tuple[str, str]:
    """`size` bytes sent to `sha256sum` in 1 MiB chunks: (its digest, ours)."""
    ours = hashlib.sha256()
    async with streams.open(caller, system, ["sha256sum"]) as remote:
        for i in range(size // MIB):
            chunk = bytes([i % 251]) * MIB
            ours.update(chunk)
            assert await remote.send(chunk)
        result = await remote.finish()
    assert result.ok, result.stderr
    return result.stdout.split()[0].decode(), ours.hexdigest()


async def read_zeros(streams, caller, system, size: int) -> int:
    """How many bytes `head -c size /dev/zero` streamed back."""
    got = 0
    async with streams.open(caller, system, ["head", "-c", str(size), "/dev/zero"]) as remote:
        while data := await remote.read(MIB):
            got += len(data)
        assert (await remote.finish(send_input_eof=False)).ok
    return got


@pytest.mark.parametrize("mode", ["session", "command"])
def test_input_and_output_through_one_channel(config, caller_of, mode):
    caller, system = caller_of("alice"), system_in(config, mode)

    async def body(streams):
        theirs, ours = await pipe_through_sha256sum(streams, caller, system, 5 * MIB)
        return theirs == ours, await read_zeros(streams, caller, system, 7 * MIB + 3)

    assert asyncio.run(with_streams(config, body)) == (True, 7 * MIB + 3)


def test_a_stream_left_early_stops_its_command(config, caller_of, workdir):
    """Leaving the `with` without finish() (the caller gone, an error) kills the command: it never sees
    the EOF it could take for a complete input."""
    caller, system = caller_of("alice"), config.system("local")
    marker = f"{workdir()}/finished"

    async def body(streams):
        async with streams.open(caller, system, ["sh", "-c", 'cat > /dev/null && touch "$1"', "sh", marker]) as remote:
            assert await remote.send(b"partial input")
        await asyncio.sleep(1)
        async with streams.open(caller, system, ["test", "-e", marker]) as remote:
            return (await remote.finish()).exit_status

    assert asyncio.run(with_streams(config, body)) == 1  # the marker was never made


@pytest.mark.large
def test_more_than_a_gib_each_way_past_key_re_exchanges(config, caller_of):
    caller, system = caller_of("alice"), config.system("local")
    size = 1100 * MIB

    async def body(streams):
        start = time.monotonic()
        theirs, ours = await pipe_through_sha256sum(streams, caller, system, size)
        got = await read_zeros(streams, caller, system, size)
        return theirs == ours, got, time.monotonic() - start

    same, got, seconds = asyncio.run(with_streams(config, body))
    print(f"\n1100 MiB each way through one channel in {seconds:.1f} s")
    assert (same, got) == (True, size)
