"""A second real Envoy beside the shared gateway, for the security tests that need other gateway
settings (TLS for clients: test_gateway_client_tls.py; strict policies: test_gateway_policies.py)
without changing the shared one: rendered by gateway/render.py from a copy of the running
configuration, in front of the same services and identity provider, with a base id (shared memory)
Envoy picks unused, as the Redis deployment's Envoy does (tests/integration/conftest.py)."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from pathlib import Path

import httpx
import yaml

from services.common.config import REPO_ROOT, read_config_file

ENVOY = Path(sys.executable).parent / "envoy"
START_SECONDS = 30  # bound on start-up, never an assertion on time


@contextlib.contextmanager
def second_gateway(config, folder: Path, gateway: dict, ready_url: str, verify=True):
    """Runs an Envoy whose configuration is the running one with `gateway` merged into its `gateway:`
    section, until `ready_url` answers 200 (bounded); stops it on exit. Its log: `folder`/envoy.log."""
    data = read_config_file(config.path)  # `extends:` followed (make test runs config/unlimited.yaml)
    data["state_dir"] = str(config.state_dir)
    data["gateway"].update(gateway)
    (folder / "config.yaml").write_text(yaml.safe_dump(data))
    out = folder / "envoy.yaml"
    subprocess.run([sys.executable, "-m", "gateway.render", "--config", str(folder / "config.yaml"),
                    "--out", str(out)], check=True, cwd=REPO_ROOT, capture_output=True)
    with open(folder / "envoy.log", "wb") as log:
        envoy = subprocess.Popen([str(ENVOY), "-c", str(out), "--use-dynamic-base-id", "--concurrency", "1",
                                  "--log-level", "warn"], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + START_SECONDS
        while True:
            try:
                if httpx.get(ready_url, verify=verify, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert envoy.poll() is None, (folder / "envoy.log").read_text()
            assert time.monotonic() < deadline, f"the second gateway did not answer {ready_url}"
            time.sleep(0.2)
        yield
    finally:
        envoy.terminate()
        envoy.wait(10)
