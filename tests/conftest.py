"""Shared fixtures: the running mesh (started by `make up`), real tokens, REST and gRPC clients; and
the test kinds.

Tests live by kind, each folder a pytest marker of the same name (`pytest -m faults` runs one kind):
- `unit/`: no running processes (parsers, validation, config, the gateway's rendering, the server's
  error path in process);
- `integration/`: the running stack through the real gateway, sshd, Slurm and identity provider;
- `security/`: integration tests of the trust boundaries (mutual TLS, tokens, hostile input);
- `faults/`: stop and start shared processes (run last; alone with `-m faults`).
Integration tests fail (not skip) when the mesh is down: `make test` starts it first.
"""

from __future__ import annotations

import os
import urllib.request
import uuid

import grpc
import httpx
import pytest

from services.common.config import load_config
from services.common.oidc_client import fetch_token
from tests.clients import bearer_clients

DEV_SECRETS = {"alice": "alice-secret", "bob": "bob-secret"}


@pytest.fixture(scope="session")
def config():
    return load_config()


@pytest.fixture(scope="session")
def gateway_url(config) -> str:
    url = f"http://{config.gateway.listen}"
    try:
        urllib.request.urlopen(url + "/status/liveness/", timeout=5)
    except OSError as exc:
        pytest.fail(f"the mesh is not running at {url} ({exc}); start it with `make up`")
    return url


@pytest.fixture(scope="session")
def token(config):
    """token(user) -> a fresh access token for the dev client of `user` (alice or bob)."""
    def get(user: str = "alice") -> str:
        return fetch_token(config.identity.token_url, f"firecrest-{user}", DEV_SECRETS[user])
    return get


@pytest.fixture(scope="session")
def caller_of(config, token):
    """caller_of(user) -> a verified caller (what a service hands its SSH pool) for a fresh token."""
    from services.common.token_verifier import TokenVerifier
    verifier = TokenVerifier(config.identity)
    return lambda user="alice": verifier.verify(token(user))


@pytest.fixture(scope="session")
def api(gateway_url, token):
    """api(user) -> an httpx.Client on the gateway that sends `user`'s bearer token."""
    with bearer_clients(gateway_url, token) as make:
        yield make


@pytest.fixture(scope="session")
def anonymous(gateway_url):
    with httpx.Client(base_url=gateway_url, timeout=30) as client:
        yield client


@pytest.fixture(scope="session")
def firecrest_client(gateway_url, config):
    """firecrest_client(user) -> pyfirecrest's v2 client, unchanged, against the gateway."""
    from firecrest import ClientCredentialsAuth
    from firecrest.v2 import Firecrest

    def make(user: str = "alice") -> Firecrest:
        auth = ClientCredentialsAuth(f"firecrest-{user}", DEV_SECRETS[user], config.identity.token_url)
        return Firecrest(firecrest_url=gateway_url, authorization=auth)
    return make


@pytest.fixture(scope="session")
def grpc_channel(gateway_url, config):
    """A native gRPC channel to the gateway (h2c); pass the token as `authorization` metadata."""
    channel = grpc.insecure_channel(str(config.gateway.listen))
    yield channel
    channel.close()


@pytest.fixture
def workdir(api, request, config):
    """workdir(user="alice") -> a fresh folder /scratch/<user>/<test module>-<test>-<id>, made and
    removed through the gateway (ops mkdir and rm) as that user."""
    ops = f"/filesystem/{config.systems[0].name}/ops"
    made = []

    def make(user: str = "alice") -> str:
        module = request.node.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")
        path = f"/scratch/{user}/{module}-{request.node.name[:40]}-{uuid.uuid4().hex[:8]}"
        path = path.replace("[", "_").replace("]", "_")
        r = api(user).post(f"{ops}/mkdir", json={"sourcePath": path})
        assert r.status_code == 201, r.text
        made.append((user, path))
        return path
    yield make
    for user, path in made:
        r = api(user).delete(f"{ops}/rm", params={"path": path})
        assert r.status_code in (204, 404), r.text


@pytest.fixture
def grpc_metadata(token):
    def make(user: str = "alice"):
        return (("authorization", f"Bearer {token(user)}"),)
    return make


KINDS = ("unit", "integration", "security", "faults")


def _kind(item) -> str:
    parts = item.path.relative_to(item.config.rootpath / "tests").parts
    return parts[0] if parts[0] in KINDS else "integration"


def pytest_configure(config):
    for kind in KINDS:
        config.addinivalue_line("markers", f"{kind}: tests of the tests/{kind}/ folder")
    config.addinivalue_line("markers", "large: moves a gigabyte or more (deselect with -m 'not large')")


def pytest_collection_modifyitems(config, items):
    """Marks every test with its kind. Order: integration and security first, then unit, fault tests
    (they stop shared processes) last. Under `make test`'s parallel workers (one file each, files
    handed out in this order: scripts/test.sh) the slow files of the running stack start first and
    the many quick unit files fill the workers' ends."""
    for item in items:
        item.add_marker(_kind(item))
    items.sort(key=lambda item: {"unit": 1, "faults": 2}.get(_kind(item), 0))


def pytest_terminal_summary(terminalreporter):
    """One line per kind: how many passed, failed, errored or were skipped."""
    counts: dict[str, dict[str, int]] = {}
    for outcome in ("passed", "failed", "error", "skipped"):
        for report in terminalreporter.stats.get(outcome, []):
            if getattr(report, "when", "call") != "call" and outcome == "passed":
                continue
            kind = next((k for k in KINDS if f"tests/{k}/" in report.nodeid), "integration")
            counts.setdefault(kind, {}).setdefault(outcome, 0)
            counts[kind][outcome] += 1
    if counts:
        terminalreporter.section("tests by kind")
        for kind in KINDS:
            if kind in counts:
                terminalreporter.write_line(f"{kind:12} " + ", ".join(f"{n} {o}" for o, n in counts[kind].items()))


def pytest_report_header(config):
    return f"firecrest-mesh config: {os.environ.get('FIRECREST_MESH_CONFIG', 'config/local.yaml')}"
