# Quick start: `make repro` runs the pipeline, `make test` runs the tests.
# Both create the virtual environment in $(VENV) first if it is missing or out of date.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# One pytest worker per core, each given whole test files (so a module's fixtures run once),
# the longest files first (tests/conftest.py, LONGEST_FIRST).
PYTEST := $(BIN)/pytest -n auto --dist loadfile --no-loadscope-reorder

.PHONY: venv repro study test test-fast lint bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

repro: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc repro $(ARGS)

study: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m transfer.study $(ARGS)

test: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(PYTEST) $(ARGS)

test-fast: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(PYTEST) -m "not slow" $(ARGS)

bench: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python bench/bench.py $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench

clean:
	rm -rf data/prepared features models metrics eval logs dvclive report/figures report/site \
		report/paper.md report/paper.pdf report/paper.html report/medium.md report/devto.md
