"""Key re-exchanges on a pooled connection against the real sshd as alice (`KexSafeTransport`).

paramiko renegotiates keys every 512 MiB of a connection. When a command on another channel ended
during an exchange, paramiko's transport thread waited to send its CLOSE until the exchange was over,
which only that thread could finish: after 30 s the connection died with every channel on it (paramiko
issue #822; a 1 GiB download failed so with "Key-exchange timed out waiting for key negotiation").
Connections negotiate AES-GCM (`prefer_aead_ciphers`), so the re-exchange below runs under it too.
"""

from __future__ import annotations

import asyncio

import pytest

from services.common.ssh.certificates import CertificateCache
from services.common.ssh.transport import AEAD_CIPHERS, KexSafeTransport, open_transport
from tests.integration.test_ssh_streams import MIB, with_streams
from tests.polling import eventually


@pytest.fixture
def alices_connection(config, caller_of):
    async def sign():
        certificates = CertificateCache.for_service(config, "storage")
        try:
            return await certificates.session_certificate(caller_of("alice"))
        finally:
            await certificates.close()

    transport = open_transport(config.system("local"), "alice", asyncio.run(sign()))
    yield transport
    transport.close()


def _run(transport, command: str) -> tuple[int, bytes]:
    channel = transport.open_session(timeout=10)
    channel.exec_command(command)
    output = channel.makefile("rb").read()
    return channel.recv_exit_status(), output


def test_a_command_ending_during_a_key_exchange_keeps_the_connection(alices_connection):
    transport = alices_connection
    assert isinstance(transport, KexSafeTransport)
    transport.clear_to_send_timeout = 3  # the unfixed transport dies after this (paramiko's default: 30 s)
    channel = transport.open_session(timeout=10)
    channel.exec_command("sleep 0.5")
    # A key exchange in progress, as paramiko's own _send_kex_init leaves it until the server's NEWKEYS:
    # no channel message may be sent meanwhile.
    with transport.clear_to_send_lock:
        transport.clear_to_send.clear()
    # The command ends: the server sends its CLOSE, which the transport thread must answer.
    assert eventually(lambda: channel.closed, timeout=10, interval=0.02), "the server's CLOSE was not handled"
    assert not eventually(lambda: not transport.is_active(), timeout=transport.clear_to_send_timeout + 2,
                          interval=0.02), \
        "the connection died waiting for the key exchange"
    transport.renegotiate_keys()  # a real exchange: its NEWKEYS releases the held CLOSE
    assert channel.recv_exit_status() == 0
    assert _run(transport, "echo still here") == (0, b"still here\n")
    assert transport.is_active() and not transport._held_during_kex


@pytest.mark.large
def test_short_commands_ending_across_re_exchanges_of_a_long_download(config, caller_of):
    """1100 MiB read from one channel (two re-exchanges) while three loops start and end `true` on
    other channels of the same connection: every command and the whole download succeed (before the
    fix, 2 runs in 3 lost the connection)."""
    caller, system = caller_of("alice"), config.system("local")
    size = 1100 * MIB

    async def short_commands(streams, stop: asyncio.Event) -> int:
        ended = 0
        while not stop.is_set():
            async with streams.open(caller, system, ["true"]) as remote:
                assert (await remote.finish(send_input_eof=False)).ok
            ended += 1
        return ended

    async def body(streams):
        stop = asyncio.Event()
        loops = [asyncio.create_task(short_commands(streams, stop)) for _ in range(3)]
        got = 0
        try:
            async with streams.open(caller, system, ["head", "-c", str(size), "/dev/zero"]) as remote:
                while data := await remote.read(MIB):
                    got += len(data)
                    await asyncio.sleep(0.002)  # a paced reader, as a client behind the gateway
                assert (await remote.finish(send_input_eof=False)).ok
        finally:
            stop.set()
            ended = await asyncio.gather(*loops)
        return got, ended

    got, ended = asyncio.run(with_streams(config, body))
    assert got == size and all(n > 0 for n in ended), (got, ended)


def test_connections_negotiate_aes_gcm_with_sshd(alices_connection):
    """paramiko alone would pick aes128-ctr + hmac-sha2-256 (a MAC computed and compared in Python for
    every packet); the real sshd accepts the AEAD cipher offered first, both ways."""
    transport = alices_connection
    assert transport.local_cipher == transport.remote_cipher == AEAD_CIPHERS[0]
    assert _run(transport, "printf 'gcm %s' ok") == (0, b"gcm ok")
