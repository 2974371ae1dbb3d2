# Every target works on a fresh machine: it installs uv when missing, then the locked dependencies (uv.lock).
# `run` and `check` install only what the bot needs (no test tools) and print nothing of their own on
# standard output: a script that pipes `make run` reads only the image paths the console prints.
SHELL := /bin/bash
PYTHON ?= python3
UV := $(shell command -v uv 2>/dev/null)
ifeq ($(UV),)
UV := $(PYTHON) -m uv
endif
RUN := $(UV) run --frozen

.PHONY: uv setup setup-run run check test lint bench bench-profile fmt docs-toolbox

uv:
	@command -v uv >/dev/null 2>&1 || $(PYTHON) -m uv --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet uv >&2

setup: uv
	$(UV) sync --frozen

# The bot's own dependencies only. --inexact: test tools already installed (by `make test`) stay, so
# `make run` never takes them from a developer's environment. Anything uv says goes to standard error.
setup-run: uv
	@$(UV) sync --frozen --no-dev --inexact --quiet >&2

run: setup-run
	@$(RUN) --no-dev --quiet hidream-bot run

check: setup-run
	@$(RUN) --no-dev --quiet hidream-bot check

lint: setup
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	$(RUN) mypy
	$(RUN) lint-imports

test: lint
	$(RUN) pytest -q -n auto

bench: setup
	$(RUN) python -m bench.outside
	$(RUN) python -m bench.floor

# A py-spy profile of the burst (issue 13); its raw stacks are left in bench-results/burst.pyspy.txt.
bench-profile: setup
	$(RUN) python -m bench.profile

fmt: setup
	$(RUN) ruff format .
	$(RUN) ruff check --fix .

# docs/toolbox.png: the toolbox's contact sheet, made by its test against the sandbox (each tool's input
# beside its output). The test always writes one to its temporary folder; this also keeps it in docs/.
docs-toolbox: setup
	HIDREAM_WRITE_DOCS=1 $(RUN) pytest -q tests/test_toolbox_sheet.py
