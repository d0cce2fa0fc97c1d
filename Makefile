# Two entry points: `make dev` (run locally) and `make test` (the whole suite). Both set up
# everything they need on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: dev test venv testbins sysdeps lint typecheck crd crd-check clean bench-operator e2e-kind

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

## Build the Kubernetes test binaries (kube-apiserver, etcd, kwok, helm, ...) into ~/.cache.
testbins:
	bash scripts/build-testbins.sh

## Debian packages the tests need (PostgreSQL server binaries, the openssl command line).
sysdeps:
	bash scripts/install-sysdeps.sh

## Regenerate the CRD (crds/ and the chart's copy) from the spec models.
crd: $(STAMP)
	$(BIN)/python -m akeneo_operator.crd --write

## Fail when the checked-in CRD is stale.
crd-check: $(STAMP)
	$(BIN)/python -m akeneo_operator.crd --check

lint: $(STAMP) crd-check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

test: $(STAMP) testbins sysdeps lint typecheck
	$(BIN)/pytest $(PYTEST_ARGS)

dev: $(STAMP)
	$(BIN)/akeneo-connector local -f examples/local.yaml

bench-operator: $(STAMP) testbins
	$(BIN)/python -m bench.operator_scale

## End-to-end on kind, for machines with a Docker engine (not run in CI here).
e2e-kind:
	bash scripts/e2e-kind.sh

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
