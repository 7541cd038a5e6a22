"""The API's description through the real gateway: /openapi.json and Swagger UI at /docs, no token.

/docs is loaded in headless Chromium (Debian's `chromium`, installed by cluster/install-packages.sh):
Swagger UI, served by the gateway from the swagger-ui-bundle package, fetches /openapi.json and must
show one block per operation of the document. The page's screenshot is kept in the test's tmp_path.
"""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
from openapi_spec_validator import validate

CHROMIUM = shutil.which("chromium")
PAGES = {"/docs": "text/html", "/docs/": "text/html", "/docs/swagger-ui-bundle.js": "text/javascript",
         "/docs/swagger-initializer.js": "text/javascript", "/docs/swagger-ui.css": "text/css",
         "/docs/favicon-32x32.png": "image/png"}


def _chromium(url: str, profile, *args: str) -> subprocess.CompletedProcess:
    """Headless Chromium on `url`; virtual time lets the page's scripts and fetches finish first."""
    assert CHROMIUM, "chromium is missing: run cluster/install-packages.sh (make install)"
    return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                           f"--user-data-dir={profile}", "--virtual-time-budget=20000", *args, url],
                          capture_output=True, text=True, timeout=180)


@pytest.fixture(scope="module")
def served_document(anonymous) -> dict:
    response = anonymous.get("/openapi.json")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    return response.json()


def test_openapi_json_is_public_and_valid(served_document):
    validate(served_document)
    assert "/status/systems" in served_document["paths"]


@pytest.mark.parametrize("path", sorted(PAGES))
def test_swagger_ui_files_are_public(anonymous, path):
    response = anonymous.get(path)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith(PAGES[path])
    assert response.content


def test_other_routes_still_need_a_token(anonymous):
    for path in ("/status/systems", "/docs/swagger-ui.js.map", "/openapi.yaml", "/favicon.ico"):
        response = anonymous.get(path)
        assert response.status_code == 401, (path, response.text)
        assert response.json()["message"] == "Jwt is missing"


def test_only_get_and_head(anonymous):
    assert anonymous.head("/openapi.json").status_code == 200
    response = anonymous.post("/openapi.json", json={})
    assert response.status_code == 404
    assert response.json()["message"] == "Not Found"


def test_swagger_ui_shows_every_operation(gateway_url, served_document, tmp_path):
    dom = _chromium(f"{gateway_url}/docs", tmp_path / "profile", "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    operations = {(method, path) for path, ops in served_document["paths"].items() for method in ops}
    blocks = set(re.findall(r'<div class="opblock opblock-(get|post|put|delete|patch)[^"]*" id="[^"]*">'
                            r'.*?data-path="([^"]+)"', dom.stdout))
    assert blocks == operations, dom.stdout[:2000]
    assert "firecrest-mesh API" in dom.stdout
    liveness = served_document["paths"]["/status/liveness"]["get"]["summary"]
    assert liveness.replace("'", "&#39;") in dom.stdout or liveness in dom.stdout

    shot = tmp_path / "docs.png"
    result = _chromium(f"{gateway_url}/docs", tmp_path / "profile", "--window-size=1280,2000",
                       f"--screenshot={shot}")
    assert result.returncode == 0, result.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    print(f"screenshot of /docs: {shot}")
