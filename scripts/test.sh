#!/usr/bin/env bash
# The README's test command (`make test`), after `make up`: every test in two phases.
#  1. unit, integration and security tests in parallel workers (pytest-xdist), one test file per
#     worker: they share the running mesh but never stop any of it, and most of their time is spent
#     waiting on SSH and Slurm, so workers overlap that waiting;
#  2. one at a time: the `large` tests (they read the peak memory of shared processes, which the other
#     workers' requests move: Envoy buffers each unary response to transcode it), then
#     the fault tests (they stop and start shared processes).
# Extra arguments (PYTEST_ARGS) go to both phases; a phase that selects nothing is not a failure.
# The gateway runs with config/unlimited.yaml meanwhile (the rate limits lifted: parallel workers would
# share one user's budget; the limits are tested on gateways of their own), config/local.yaml's after.
set -uo pipefail
cd "$(dirname "$0")/.."
workers=${TEST_WORKERS:-4}
status=0
if [[ -z ${FIRECREST_MESH_CONFIG:-} ]]; then  # the embedded default (a site's own config is left as it is)
  restore_gateway() {
    FIRECREST_MESH_CONFIG= .venv/bin/python scripts/mesh.py up >/dev/null || echo "test.sh: restoring the gateway failed" >&2
  }
  trap restore_gateway EXIT
  export FIRECREST_MESH_CONFIG=config/unlimited.yaml
  .venv/bin/python scripts/mesh.py up >/dev/null || exit 1
fi
# --no-loadscope-reorder: files in collection order (tests/conftest.py: the stack's first, unit last),
# not xdist's default of most tests first, which left single slow tests (one 40 s test a file) to the end.
.venv/bin/python -m pytest -q -n "$workers" --dist loadfile --no-loadscope-reorder -m "not faults and not large" "$@" || status=$?
[[ $status == 5 ]] && status=0
.venv/bin/python -m pytest -q -m "large or faults" "$@"
faults=$?
[[ $faults == 5 ]] && faults=0
if [[ $status != 0 ]]; then exit $status; fi
exit $faults
