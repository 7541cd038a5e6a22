"""HTTP clients that carry a user's bearer token, for the fixtures that hand them out (`api` on the
shared gateway, tests/conftest.py; `redis_tasks_api` on the Redis deployment's,
tests/integration/conftest.py)."""

from __future__ import annotations

import contextlib

import httpx


@contextlib.contextmanager
def bearer_clients(base_url: str, token):
    """Yields make(user="alice") -> an httpx.Client on `base_url` that sends `token(user)` as its bearer
    token; every client made is closed on exit."""
    clients: list[httpx.Client] = []

    def make(user: str = "alice") -> httpx.Client:
        client = httpx.Client(base_url=base_url, timeout=60, headers={"Authorization": f"Bearer {token(user)}"})
        clients.append(client)
        return client
    try:
        yield make
    finally:
        for client in clients:
            client.close()
