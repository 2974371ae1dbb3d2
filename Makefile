# Every target works on a fresh machine: it installs uv when missing, then the locked dependencies (uv.lock).
SHELL := /bin/bash
PYTHON ?= python3
UV := $(shell command -v uv 2>/dev/null)
ifeq ($(UV),)
UV := $(PYTHON) -m uv
endif
RUN := $(UV) run --frozen

.PHONY: uv setup run check test lint bench fmt

uv:
	@command -v uv >/dev/null 2>&1 || $(PYTHON) -m uv --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet uv

setup: uv
	$(UV) sync --frozen

run: setup
	$(RUN) hidream-bot run

check: setup
	$(RUN) hidream-bot check

lint: setup
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	$(RUN) mypy
	$(RUN) lint-imports

test: lint
	$(RUN) pytest -q -n auto

bench: setup
	$(RUN) python -m tests.bench

fmt: setup
	$(RUN) ruff format .
	$(RUN) ruff check --fix .
