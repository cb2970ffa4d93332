# closecast: every target installs what it needs first (idempotent, quick when already done).
SHELL := /bin/bash
.DEFAULT_GOAL := help
PYTHON ?= $(shell tools/find-python.sh)
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
STAMP := $(VENV)/.installed-stamp
export PATH := $(BIN):$(PATH)
export SAM_CLI_TELEMETRY := 0

.PHONY: help install browser demo up test test-fast lint format build bench clean vendor-check

help:
	@echo "make demo   - the local cloud with a synthetic market: backfill, stream, train, the live loop; the URLs"
	@echo "make test   - unit, integration, end-to-end and browser tests"
	@echo "make lint   - ruff + mypy + template lint"
	@echo "make build  - sam build (zip functions and the layer)"
	@echo "make bench  - benchmarks -> benchmarks/results.json"
	@echo "make vendor-check - the dashboard's vendored chart library against the pinned npm package"

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

# The browser tests drive Debian's chromium (never a downloaded browser); installed here on a fresh machine.
browser:
	@command -v chromium >/dev/null || (apt-get update -q && apt-get install -y -q chromium)

demo: install
	$(BIN)/closecast demo

up: install
	$(BIN)/closecast up

test: install browser
	$(BIN)/python -m pytest -q -p no:cacheprovider tests

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/sam validate --lint --template template.yaml

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

build: install
	$(BIN)/sam build --template template.yaml

bench: install
	$(BIN)/python -m benchmarks.run

vendor-check: install
	$(BIN)/python -m closecast_tools.vendor

clean:
	rm -rf .aws-sam .closecast .pytest_cache .mypy_cache .ruff_cache
