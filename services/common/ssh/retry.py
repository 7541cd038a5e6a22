"""When the SSH pool tries again, and how long it waits in between (issue 13: a burst waits, it does
not fail).

What is retried (services/common/ssh/pool.py):
- a command that never started (`CommandNotStarted`: sshd refused the channel, e.g. MaxSessions still
  counting sessions we closed, or refused `exec`; or the connection was gone before the channel
  opened): always, until the command's deadline;
- a login that failed for a reason that passes (`login_retryable`: key exchange or login timed out,
  sshd dropped the connection during the handshake as MaxStartups does under a burst, the port
  refused while sshd restarts): until the login budget (the system's connection + login timeouts) is
  spent; a refused login (certificate or user refused, host key mismatch) is never retried;
- a command that started and whose channel ended without an exit status (`CommandInterrupted`): only
  when the caller declared it idempotent (reads), at most MAX_RESTARTS times, within the deadline.

Delays grow exponentially from FIRST_DELAY to MAX_DELAY with jitter (callers of a burst refused
together do not come back together).
"""

from __future__ import annotations

import logging
import random
import time

from services.common.errors import RequestTimeout, SshConnectionFailed

FIRST_DELAY = 0.02
MAX_DELAY = 1.0
log = logging.getLogger(__name__)
MAX_RESTARTS = 2  # an idempotent command whose channel ended without exit status runs at most 3 times


class CommandNotStarted(SshConnectionFailed):
    """The command never started on the system (its channel was refused or could not be opened, or
    `exec` was refused): trying again is always safe."""


class CommandInterrupted(SshConnectionFailed):
    """The command was started but its channel ended without an exit status (the connection was lost,
    or sshd closed the channel without one): whether it ran, and how far, is unknown. Retried only
    for idempotent commands."""


class NoExitStatus(CommandInterrupted):
    """sshd closed the channel without reporting an exit status (the process was killed by a signal,
    or the session ended abnormally)."""

    http_status = 503


class Backoff:
    """Successive delays: FIRST_DELAY, doubling up to MAX_DELAY, each scaled by a random 0.5-1."""

    def __init__(self, first: float = FIRST_DELAY, cap: float = MAX_DELAY, rng: random.Random | None = None):
        self._next = first
        self._cap = cap
        self._rng = rng or random.Random()

    def delay(self) -> float:
        delay = self._next * self._rng.uniform(0.5, 1.0)
        self._next = min(self._cap, self._next * 2)
        return delay


class LoginRefused(SshConnectionFailed):
    """The system refused this user's login (certificate, user or host key): never retried."""


def login_retryable(exc: BaseException) -> bool:
    """True for a login failure that may pass: timeouts, a handshake dropped, a refused port."""
    return isinstance(exc, (RequestTimeout, SshConnectionFailed)) and not isinstance(exc, LoginRefused)


def login_with_retries(login, budget_seconds: float, given_up=lambda: False, sleep=time.sleep):
    """login() (blocking), tried again after a retryable failure while `budget_seconds` last and
    `given_up()` is false; the last failure, with its own message, becomes a 424 (the login node
    is unreachable, not merely slow)."""
    deadline = time.monotonic() + budget_seconds
    backoff = Backoff(first=0.1)
    attempts = 0
    while True:
        attempts += 1
        try:
            return login()
        except Exception as exc:
            if not login_retryable(exc):
                raise
            delay = backoff.delay()
            if given_up() or time.monotonic() + delay >= deadline:
                if attempts > 1:
                    log.warning("SSH login failed %d times: %s", attempts, exc.message)
                if isinstance(exc, SshConnectionFailed):
                    raise
                raise SshConnectionFailed(exc.message) from None
            sleep(delay)
