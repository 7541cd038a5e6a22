#!/usr/bin/env bash
# The README's test command (`make test`), after `make up`: every test in two phases.
#  1. unit, integration and security tests in parallel workers (pytest-xdist), one test file per
#     worker: they share the running mesh but never stop any of it, and most of their time is spent
#     waiting on SSH and Slurm, so workers overlap that waiting;
#  2. the fault tests alone, one at a time: they stop and start shared processes.
# Extra arguments (PYTEST_ARGS) go to both phases; a phase that selects nothing is not a failure.
set -uo pipefail
cd "$(dirname "$0")/.."
workers=${TEST_WORKERS:-4}
status=0
.venv/bin/python -m pytest -q -n "$workers" --dist loadfile -m "not faults" "$@" || status=$?
[[ $status == 5 ]] && status=0
.venv/bin/python -m pytest -q -m faults "$@"
faults=$?
[[ $faults == 5 ]] && faults=0
if [[ $status != 0 ]]; then exit $status; fi
exit $faults
