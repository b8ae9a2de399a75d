# bessfleet — the two set-up commands: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint unit fmt bench clean

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/bessfleet demo $(DEMO_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check fleet telemetry forecasting dispatch tests bench
	$(BIN)/ruff format --check fleet telemetry forecasting dispatch tests bench
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test: lint unit

fmt: $(STAMP)
	$(BIN)/ruff format fleet telemetry forecasting dispatch tests bench
	$(BIN)/ruff check --fix fleet telemetry forecasting dispatch tests bench

bench: $(STAMP)
	$(BIN)/python bench/dispatch_bench.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
