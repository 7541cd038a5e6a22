"""Opening an SSH connection to a system as a user: TCP (TCP_NODELAY), the pinned host key, and a
certificate login; blocking (the pool calls it on a worker thread). A refusal (user, certificate,
host key) is a `LoginRefused`; every other failure may pass and the pool tries again (`retry`).

Without TCP_NODELAY a warm command costs ~48 ms instead of ~3 ms (Nagle + delayed ACK).

AES-GCM is offered first (`prefer_aead_ciphers`): paramiko's own first choice, aes128-ctr with
hmac-sha2-256, computes each packet's HMAC and compares it byte by byte in Python; with an AEAD cipher
the tag is checked inside `cryptography`. A command of `true` then costs ~12 % less client CPU (~900
instead of ~1,020 µs here) and ~0.17 ms less time. A server without GCM gets the other ciphers, as before.

Connections are `KexSafeTransport`s: paramiko's transport thread, answering the server's CLOSE of a
channel whose command ended, waited for the end of a key re-exchange that only it could finish
(paramiko issue #822), and after 30 s the connection died with every channel on it.
"""

from __future__ import annotations

import socket
import threading

import paramiko

from services.common.config import SystemConfig
from services.common.errors import RequestTimeout, SshConnectionFailed
from services.common.ssh.certificates import UserCertificate
from services.common.ssh.retry import LoginRefused

WINDOW_SIZE = 8 * 1024 * 1024  # large windows: multi-MiB outputs (downloads) in few round trips
AEAD_CIPHERS = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com")  # offered before paramiko's defaults


class KexSafeTransport(paramiko.Transport):
    """A paramiko Transport whose own thread never waits for a key exchange to end.

    paramiko renegotiates keys every 512 MiB of a connection; between its KEXINIT and the server's
    NEWKEYS no channel message may be sent, and `_send_user_message` waits for the exchange to end.
    The transport thread itself sends a few such messages: our CLOSE answering the server's
    (`Channel._handle_close`, every time a command ends), replies to channel requests, keepalives. Waiting
    there deadlocks (that thread is the one reading the exchange's next packets) until
    `clear_to_send_timeout`, then the connection dies: a 1 GiB download failed so whenever another
    command on the same connection ended during the exchange. Here the transport thread holds those
    messages instead and sends them, in order, as soon as the server's NEWKEYS is in.
    """

    def __init__(self, sock, **kwargs):
        super().__init__(sock, **kwargs)
        self._held_during_kex: list[paramiko.Message] = []  # touched only by the transport thread

    def _send_user_message(self, data) -> None:
        if threading.current_thread() is self and not self.clear_to_send.is_set():
            self._held_during_kex.append(data)  # only this thread sets clear_to_send again, below
            return
        super()._send_user_message(data)

    def _parse_newkeys(self, m) -> None:
        super()._parse_newkeys(m)  # sets clear_to_send
        held, self._held_during_kex = self._held_during_kex, []
        for data in held:
            super()._send_user_message(data)


def prefer_aead_ciphers(transport: paramiko.Transport) -> None:
    """Offers the AEAD ciphers first, then paramiko's other ciphers in its own order (before the
    handshake: the client's order decides)."""
    options = transport.get_security_options()
    options.ciphers = AEAD_CIPHERS + tuple(c for c in options.ciphers if c not in AEAD_CIPHERS)


def _load_known_host_key(system: SystemConfig) -> paramiko.HostKeys:
    keys = paramiko.HostKeys()
    try:
        keys.load(str(system.ssh.known_hosts))
    except OSError as exc:
        raise LoginRefused(f"Known hosts file of system {system.name} unreadable: {exc}") from None
    return keys


def _host_entry(system: SystemConfig) -> str:
    host, port = system.ssh.host, system.ssh.port
    return host if port == 22 else f"[{host}]:{port}"


def open_transport(system: SystemConfig, username: str, cert: UserCertificate) -> paramiko.Transport:
    """Connects, verifies the pinned host key, authenticates with the certificate (blocking)."""
    timeouts = system.ssh.timeouts
    try:
        sock = socket.create_connection((system.ssh.host, system.ssh.port), timeout=timeouts.connection)
    except socket.timeout:
        raise RequestTimeout("SSH connection timeout limit exceeded.") from None
    except OSError as exc:
        raise SshConnectionFailed(f"Unable to connect to system {system.name}: {exc.strerror or exc}") from None
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    transport = KexSafeTransport(sock, default_window_size=WINDOW_SIZE)
    prefer_aead_ciphers(transport)
    try:
        transport.start_client(timeout=timeouts.login)
        server_key = transport.get_remote_server_key()
        expected = _load_known_host_key(system).lookup(_host_entry(system)) or {}
        if expected.get(server_key.get_name()) != server_key:
            raise LoginRefused(f"Host key of system {system.name} does not match the pinned key")
        transport.auth_publickey(username, cert.key)
        if not transport.is_authenticated():
            raise LoginRefused("SSH authentication failed")
        transport.set_keepalive(timeouts.keep_alive)
        return transport
    except SshConnectionFailed:
        transport.close()
        raise
    except paramiko.AuthenticationException as exc:
        transport.close()
        if "timeout" in str(exc).lower():  # paramiko's "Authentication timeout.": slow, not refused
            raise RequestTimeout("SSH connection timeout limit exceeded.") from None
        raise LoginRefused(f"SSH login refused for user {username}") from None
    except (paramiko.SSHException, EOFError, OSError) as exc:
        transport.close()
        if isinstance(exc, socket.timeout) or "timeout" in str(exc).lower():
            raise RequestTimeout("SSH connection timeout limit exceeded.") from None
        raise SshConnectionFailed(f"SSH connection failed: {exc}") from None
