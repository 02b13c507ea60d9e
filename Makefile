# Quick start: `make venv` sets up, `make repro` runs the pipeline, `make test` runs the tests.
# Each creates the virtual environment in $(VENV) first if it is missing or out of date; the
# stages find it themselves (bin/python), activated or not. EXTRAS=dev,gpu adds CUDA on Linux.
PYTHON ?= python3.11
VENV ?= .venv
EXTRAS ?= dev
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# One pytest worker per core, each given whole test files (so a module's fixtures run once),
# the longest files first (tests/conftest.py, LONGEST_FIRST); under bin/python, so the tests
# run with the stages' memory allocator (TRANSFER_ALLOCATOR=glibc: without).
PYTEST := bin/python -m pytest -n auto --dist loadfile --no-loadscope-reorder

.PHONY: venv repro study plots test test-fast lint bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[$(EXTRAS)]'
	touch $(STAMP)

repro: $(STAMP)
	$(BIN)/dvc repro $(ARGS)

study: $(STAMP)
	$(BIN)/python -m transfer.study $(ARGS)

# `dvc plots show` with Vega, Vega-Lite and Vega-Embed inlined from vl-convert (its page loads
# them from a CDN otherwise, and stays blank offline).
plots: $(STAMP)
	mkdir -p .dvc/tmp
	$(BIN)/python -c "import vl_convert as v; print('<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>DVC plots</title><script>' + v.javascript_bundle() + '</script></head><body>{plot_divs}</body></html>')" > .dvc/tmp/plots-offline.html
	$(BIN)/dvc plots show --html-template .dvc/tmp/plots-offline.html $(ARGS)

test: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(PYTEST) $(ARGS)

test-fast: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(PYTEST) tests/unit $(ARGS)

bench: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m bench.bench $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench

clean:
	rm -rf data/prepared features models metrics eval logs dvclive report/figures report/site \
		report/paper.md report/paper.pdf report/paper.html report/medium.md report/devto.md
