# Two commands for a fresh machine with Python 3.11+:  `make demo`  and  `make test`.
# Each creates the virtual environment it needs in .venv (override with VENV=...).
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed

.PHONY: demo test check bench simulator clean

# The run-time dependencies at the versions in deploy/constraints.txt, which the image
# installs too: the tests run what ships, and a release on the registry changes neither.
$(STAMP): pyproject.toml deploy/constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit("sitoo-sync needs Python 3.11+, found " + sys.version.split()[0]) if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]' --constraint deploy/constraints.txt
	@touch $(STAMP)

## demo: sync the bundled simulator into ./sitoo-demo.duckdb and show the result
demo: $(STAMP)
	$(BIN)/sitoo-sync demo

# The tests mostly wait (on the simulator's latency, subprocesses, database servers), not
# compute: pytest-xdist runs them in this many processes, however few the cores (0: one).
# Tests marked `alone` (one takes most of a server's connections) run after, by themselves.
PYTEST_WORKERS ?= 4

## test: everything CI checks: format, lint, types, the whole test suite
test: $(STAMP)
	$(BIN)/ruff format --check sitoo_sync tests
	$(BIN)/ruff check sitoo_sync tests
	$(BIN)/mypy
	$(BIN)/pytest -n $(PYTEST_WORKERS) -m 'not alone'
	$(BIN)/pytest -m alone

check: test

## bench: the backfill benchmark (prints figures; asserts nothing)
bench: $(STAMP)
	$(BIN)/sitoo-sync bench

## simulator: the fake Sitoo API on port 8765
simulator: $(STAMP)
	$(BIN)/sitoo-sync simulator --port 8765

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache *.egg-info sitoo-demo.duckdb
