# Every target works on a fresh machine: it installs uv (if missing) and the locked dependencies first.
SHELL := /bin/bash
UV ?= $(shell command -v uv 2>/dev/null || echo "$(HOME)/.local/bin/uv")
PY := $(UV) run --frozen

.PHONY: setup run check test lint bench fmt

$(UV):
	python3 -m pip install --user --quiet uv || python3 -m pip install --quiet uv

setup: $(UV)
	$(UV) sync --frozen

run: setup
	$(PY) hidream-bot run

check: setup
	$(PY) hidream-bot check

lint: setup
	$(PY) ruff check .
	$(PY) ruff format --check .
	$(PY) mypy

test: lint
	$(PY) pytest -q

bench: setup
	$(PY) python -m tests.bench

fmt: setup
	$(PY) ruff format .
	$(PY) ruff check --fix .
