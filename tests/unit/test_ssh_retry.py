"""The SSH pool's retries (services/common/ssh/retry.py, pool.py), with the SSH layer replaced at its
interface: `SshPool._run_once` (one attempt on a pooled connection) and `open_transport` (one login)
answer what each test scripts. What is retried: a command that never started, always, within the
deadline; a login that may pass, within its budget; a command whose channel ended without an exit
status, only when idempotent. And which reads are declared idempotent. Nothing asserts on time."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

import pytest

from services.common.config import load_config
from services.common.errors import RequestTimeout, ServiceUnavailable, SshConnectionFailed
from services.common.identity import Caller
from services.common.ssh import retry
from services.common.ssh.channel import ChannelRefused, ended_without_status
from services.common.ssh.command import CommandResult
from services.common.ssh.pool import SshPool
from services.common.ssh.retry import (MAX_RESTARTS, CommandInterrupted, CommandNotStarted, LoginRefused,
                                       NoExitStatus, login_with_retries)

OK = CommandResult(0, b"ok\n", b"")


class ScriptedPool(SshPool):
    """An SshPool whose attempts answer `script` in turn (an exception is raised, a result returned)."""

    def __init__(self, *script):
        super().__init__(certificates=None)
        self.script = list(script)
        self.attempts = 0

    async def _run_once(self, caller, system, command, stdin, timeout, max_output, stdout_sink=None):
        self.attempts += 1
        answer = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if isinstance(answer, BaseException):
            raise answer
        return answer


def run(pool: ScriptedPool, timeout: float = 30, idempotent: bool = False):
    caller = Caller("alice", "token", time.time() + 300)
    system = load_config().system("local")

    async def go():
        try:
            return await pool.run(caller, system, "true", timeout=timeout, idempotent=idempotent)
        finally:
            pool._executor.shutdown(wait=False)
            pool._stopper.shutdown(wait=False)
            if pool._janitor:
                pool._janitor.cancel()
    return asyncio.run(go())


def test_refused_channels_are_tried_again_until_one_opens():
    pool = ScriptedPool(ChannelRefused("administratively prohibited"), ChannelRefused("open failed"),
                        CommandNotStarted("session not active"), OK)
    assert run(pool) == OK
    assert pool.attempts == 4


def test_channels_refused_until_the_deadline_are_a_503_not_a_424():
    pool = ScriptedPool(ChannelRefused("Unable to open a new SSH channel: administratively prohibited"))
    with pytest.raises(ServiceUnavailable) as err:
        run(pool, timeout=0.3)
    assert err.value.http_status == 503
    assert "refused new sessions" in err.value.message
    assert pool.attempts > 1


def test_a_read_whose_channel_closed_without_exit_status_is_run_again():
    pool = ScriptedPool(NoExitStatus("no exit status"), OK)
    assert run(pool, idempotent=True) == OK
    assert pool.attempts == 2


def test_a_read_is_run_again_a_bounded_number_of_times():
    pool = ScriptedPool(NoExitStatus("The SSH channel closed without the command's exit status"))
    with pytest.raises(NoExitStatus) as err:
        run(pool, idempotent=True)
    assert pool.attempts == 1 + MAX_RESTARTS
    assert err.value.http_status == 503


@pytest.mark.parametrize("failure, status", [(NoExitStatus("no exit status"), 503),
                                             (CommandInterrupted("SSH connection lost"), 424)])
def test_a_command_that_is_not_idempotent_is_never_run_twice(failure, status):
    pool = ScriptedPool(failure, OK)
    with pytest.raises(CommandInterrupted) as err:
        run(pool, idempotent=False)
    assert pool.attempts == 1
    assert err.value.http_status == status  # never 500


# --- how a channel that closed without exit status is read -------------------------------------------

def fake_channel(event_ready: bool, transport_active: bool):
    return SimpleNamespace(event_ready=event_ready,
                           transport=SimpleNamespace(is_active=lambda: transport_active))


def test_a_channel_closed_without_exit_status_is_classified_by_what_was_seen():
    assert type(ended_without_status(fake_channel(False, True))) is ChannelRefused  # exec refused: never ran
    assert type(ended_without_status(fake_channel(False, False))) is CommandInterrupted  # connection lost
    no_status = ended_without_status(fake_channel(True, True))
    assert type(no_status) is NoExitStatus and no_status.http_status == 503


# --- logins -------------------------------------------------------------------------------------------

class ScriptedLogin:
    def __init__(self, *script):
        self.script = list(script)
        self.calls = 0

    def __call__(self):
        self.calls += 1
        answer = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if isinstance(answer, BaseException):
            raise answer
        return answer


@pytest.mark.parametrize("transient", [RequestTimeout("SSH connection timeout limit exceeded."),
                                       SshConnectionFailed("SSH connection failed: Error reading SSH protocol banner"),
                                       SshConnectionFailed("Key-exchange timed out waiting for key negotiation")])
def test_a_login_that_may_pass_is_tried_again(transient):
    login = ScriptedLogin(transient, transient, "transport")
    assert login_with_retries(login, 30, sleep=lambda _s: None) == "transport"
    assert login.calls == 3


def test_a_refused_login_is_not_tried_again():
    login = ScriptedLogin(LoginRefused("SSH login refused for user alice"), "transport")
    with pytest.raises(LoginRefused):
        login_with_retries(login, 30, sleep=lambda _s: None)
    assert login.calls == 1


def test_a_login_failing_for_the_whole_budget_is_a_424_with_the_last_message():
    login = ScriptedLogin(RequestTimeout("SSH connection timeout limit exceeded."))
    with pytest.raises(SshConnectionFailed) as err:
        login_with_retries(login, 0.3)
    assert err.value.http_status == 424 and err.value.message == "SSH connection timeout limit exceeded."
    assert login.calls > 1


def test_a_caller_that_went_away_stops_the_login_retries():
    login = ScriptedLogin(SshConnectionFailed("Connection refused"))
    with pytest.raises(SshConnectionFailed):
        login_with_retries(login, 30, given_up=lambda: True, sleep=lambda _s: None)
    assert login.calls == 1


def test_backoff_grows_to_its_cap():
    backoff = retry.Backoff(first=0.1, cap=0.4)
    delays = [backoff.delay() for _ in range(6)]
    assert 0.05 <= delays[0] <= 0.1
    assert all(0.2 <= d <= 0.4 for d in delays[3:])
