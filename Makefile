# Both `make demo` and `make test` bootstrap .venv from setup.cfg on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench fmt docs clean

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,dist]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/audience demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,dist,bench]'
	$(BIN)/python -m benchmarks.peers.run

lint: $(STAMP)
	$(BIN)/ruff check audience tests benchmarks
	$(BIN)/ruff format --check audience tests benchmarks
	$(BIN)/mypy

fmt: $(STAMP)
	$(BIN)/ruff format audience tests benchmarks
	$(BIN)/ruff check --fix audience tests benchmarks

# docs/cli.md is generated from the click commands (tests/test_docs_cli.py fails when it drifts)
docs: $(STAMP)
	$(BIN)/python -m audience.cli.docgen docs/cli.md

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
