"""Status API through the gateway: `/status/systems` (no SSH), `/status/local/partitions` (one SSH
command on a warm pooled connection), `/status/liveness/` (public, no JWT), at concurrency 1/8/32.

    .venv/bin/python bench/status.py [--requests N]

Saves bench/results/status.md. Needs a running mesh (`make up`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import measure, save  # noqa: E402

from services.common.config import load_config  # noqa: E402
from services.common.oidc_client import fetch_token  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=400)
    args = parser.parse_args()
    config = load_config()
    base = f"http://{config.gateway.listen}"
    token = fetch_token(config.identity.token_url, "firecrest-alice", "alice-secret")
    headers = {"Authorization": f"Bearer {token}"}

    def client():
        return httpx.Client(base_url=base, headers=headers, timeout=60)

    def expect_ok(path):
        def request(c):
            r = c.get(path)
            if r.status_code != 200:
                raise RuntimeError(f"{path}: {r.status_code} {r.text[:200]}")
        return request

    rows = []
    for name, path in [("GET /status/systems", "/status/systems"),
                       ("GET /status/local/partitions (SSH)", "/status/local/partitions"),
                       ("GET /status/liveness/ (public)", "/status/liveness/")]:
        for concurrency in (1, 8, 32):
            rows.append(measure(name, expect_ok(path), client, concurrency, args.requests))
    save("status", rows, notes="Through Envoy (JWT RS256 + transcoding + Lua) to the status service; "
                               "one httpx client (keep-alive) per worker thread; alice's token.")


if __name__ == "__main__":
    main()
