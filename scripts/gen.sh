#!/usr/bin/env bash
# Regenerates gen/ from protos/: Python messages and gRPC stubs (gen/python) and the descriptor set
# the gateway's transcoder loads (gen/envoy/api_descriptor.pb).
#   scripts/gen.sh          write gen/
#   scripts/gen.sh --check  exit 1 when gen/ differs from what protos/ generate (stale gen/)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
py=${PYTHON:-$root/.venv/bin/python}
cd "$root"

generate() {  # $1: output folder
  local out=$1
  mkdir -p "$out/python" "$out/envoy"
  mapfile -t protos < <(cd protos && find . -name '*.proto' | sed 's#^\./##' | LC_ALL=C sort)
  "$py" -m grpc_tools.protoc -I protos -I third_party/googleapis \
    --python_out="$out/python" --pyi_out="$out/python" --grpc_python_out="$out/python" \
    "${protos[@]}"
  "$py" -m grpc_tools.protoc -I protos -I third_party/googleapis \
    --include_imports --include_source_info --descriptor_set_out="$out/envoy/api_descriptor.pb" \
    "${protos[@]}"
}

if [[ ${1:-} == --check ]]; then
  tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
  generate "$tmp"
  if ! diff -r -q -x __pycache__ "$tmp" gen; then
    echo "gen/ is stale: run 'make gen' and commit the result" >&2
    exit 1
  fi
  echo "gen/ is up to date"
else
  rm -rf gen/python gen/envoy
  generate gen
  echo "generated gen/python and gen/envoy/api_descriptor.pb"
fi
