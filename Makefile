# Every target works on a fresh machine with Python 3.11+ and make. First uv: the one on PATH, else one
# $(PYTHON) runs as a module, else make's own in .tools/, a virtual environment that $(PYTHON) makes for uv
# alone. Nothing is ever installed into $(PYTHON) itself (Debian's and Ubuntu's refuse it: PEP 668). Then
# the locked dependencies (uv.lock) into .venv/.
# `run` and `check` install only what the bot needs (no test tools) and print nothing of their own on
# standard output: a script that pipes `make run` reads only the image paths the console prints.
# Exit status of `make run` and `make check`: 0 when the command exited 0, else 2 (make's own status for a
# failed recipe: make cannot pass a command's status through), after make's line naming the command's
# status, e.g. `make: *** [Makefile:NN: run] Error 1`. `.venv/bin/hidream-bot run` returns the bot's own.
SHELL := /bin/bash
PYTHON ?= python3
TOOLS := .tools
ifneq ($(shell command -v uv 2>/dev/null),)
UV := uv
else ifeq ($(shell $(PYTHON) -m uv --version >/dev/null 2>&1 && echo found),found)
UV := $(PYTHON) -m uv
else
UV := $(TOOLS)/bin/uv
ifeq ($(wildcard $(UV)),)
# Before making .tools/: a Python that can. Each problem is one line (make adds "Stop."), naming what to
# install. The probe runs on any Python 3, old ones included.
PYTHON_FOUND := $(shell $(PYTHON) -c 'import sys; print(".".join(map(str, sys.version_info[:3])))' 2>/dev/null)
ifeq ($(PYTHON_FOUND),)
$(error hidream-bot needs Python 3.11 or newer, and `$(PYTHON)` does not run: install Python (Debian, Ubuntu: apt-get install python3 python3-venv) or name yours, e.g. make PYTHON=python3.12)
endif
ifneq ($(shell $(PYTHON) -c 'import sys; print(sys.version_info >= (3, 11))'),True)
$(error hidream-bot needs Python 3.11 or newer, and `$(PYTHON)` is $(PYTHON_FOUND): install a newer one and name it, e.g. make PYTHON=python3.12)
endif
ifneq ($(shell $(PYTHON) -c 'import venv, ensurepip' >/dev/null 2>&1 && echo found),found)
$(error `$(PYTHON)` cannot make a virtual environment (its venv or ensurepip module is missing): install python3-venv (Debian, Ubuntu: apt-get install python3-venv))
endif
endif
endif
RUN := $(UV) run --frozen

.PHONY: uv setup setup-run run check test lint bench bench-profile fmt docs-toolbox

uv: $(if $(filter $(TOOLS)/bin/uv,$(UV)),$(TOOLS)/bin/uv)

# uv in a virtual environment of its own, made by $(PYTHON) with its venv module; pip there fetches uv
# from PyPI. Half-made (no network, a full disk), it is removed, so the next make starts again.
$(TOOLS)/bin/uv:
	@rm -rf $(TOOLS)
	@$(PYTHON) -m venv $(TOOLS) >&2 && $(TOOLS)/bin/python -m pip install --quiet --disable-pip-version-check uv >&2 \
		|| { rm -rf $(TOOLS); echo "make: could not install uv into $(TOOLS)/ with $(PYTHON) (the reason is above)" >&2; exit 2; }

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
	$(RUN) pytest -q -n auto --durations=15

bench: setup
	$(RUN) python -m bench.outside
	$(RUN) python -m bench.outside --network --modes webhook --in-flight 0
	$(RUN) python -m bench.floor
	$(RUN) python -m bench.s3_clients
	$(RUN) python -m bench.credentials

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
