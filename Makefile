# firecrest-mesh: one machine, one command.
#   make up     install (apt + pip, idempotent), start the local HPC system,
#               identity provider, services and gateway; wait until healthy
#   make down   stop everything (state stays in state/)
#   make test   make up, then every test (unit, integration through the gateway, conformance) in
#               parallel workers, then the fault tests alone (scripts/test.sh)
#   make gen    regenerate gen/ from protos/ (and docs/openapi.json, the route table and the gateway
#               example, which come from them)
#   make gateway-example   rewrite gateway/examples/ (config/local.yaml rendered; a test checks it)
#   make lint   buf lint
#   make bench  benchmarks (bench/) with config/unlimited.yaml (no rate limits), tables in bench/results/
SHELL := /bin/bash
PY := .venv/bin/python

.PHONY: up down test gen gateway-example lint bench install status

install:
	bash scripts/install.sh

gen: install
	bash scripts/gen.sh
	$(PY) -m gateway.openapi
	$(PY) -m gateway.render --example
	$(PY) scripts/routes.py

gateway-example: install
	$(PY) -m gateway.render --example

lint: install
	.venv/bin/buf lint

up: install
	bash cluster/up.sh
	$(PY) scripts/mesh.py up

down:
	@if [ -x $(PY) ]; then $(PY) scripts/mesh.py down; fi
	bash cluster/down.sh

status:
	$(PY) scripts/mesh.py status

test: up
	bash scripts/test.sh $(PYTEST_ARGS)

# The benchmarks run with config/unlimited.yaml (rate limits lifted); the gateway gets config/local.yaml's back after.
bench: up
	FIRECREST_MESH_CONFIG=config/unlimited.yaml $(PY) scripts/mesh.py up
	FIRECREST_MESH_CONFIG=config/unlimited.yaml $(PY) bench/run.py $(BENCH_ARGS); status=$$?; \
	  $(PY) scripts/mesh.py up; exit $$status
