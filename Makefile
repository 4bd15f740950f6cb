# Every target sets itself up: a fresh machine needs only python3.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: help install test lint typecheck pytest demo run bench matrix docs browser clean

help:
	@echo "make demo      set up, run the example shop's simulated traffic and flush it"
	@echo "make test      set up, then ruff, mypy and the whole test suite"
	@echo "make bench     benchmarks (BENCH_FULL=1 for the large sizes)"
	@echo "make matrix    the Python x Django compatibility matrix (nox)"
	@echo "make docs      build the documentation site (README.md + docs/) into build/site"
	@echo "make run       serve the example shop on http://127.0.0.1:8000/"

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy django_synerise

pytest: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test: lint typecheck pytest

# The example shop: migrate, seed, simulate shoppers, flush, print what Synerise received.
# Uses a local Synerise stand-in unless SYNERISE_API_KEY (and SYNERISE_TRACKER_KEY) are set.
demo: $(STAMP)
	$(BIN)/python example_project/manage.py demo

# Serve the example shop on http://127.0.0.1:8000/ to click through by hand.
run: $(STAMP)
	$(BIN)/python example_project/manage.py migrate --noinput
	$(BIN)/python example_project/manage.py seed_shop
	$(BIN)/python example_project/manage.py runserver 127.0.0.1:8000

# Benchmarks (bench/README.md): a table on stdout and bench/results.json. Quick sizes by
# default, BENCH_FULL=1 for a million events; SQLite always, PostgreSQL too when
# DATABASE_URL points at one (in a database named "bench", never the tests' own).
bench: $(STAMP)
	$(BIN)/python -m bench.run

# The Python x Django matrix (noxfile.py). NOX_ARGS="-t ci" runs only the corner cells.
matrix: $(STAMP)
	$(BIN)/nox $(or $(NOX_ARGS),-s tests)

# The documentation site (mkdocs.yml): README.md as its front page, then docs/. Strict, so a
# broken link or anchor fails the build.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

clean:
	rm -rf $(VENV) .nox build dist *.egg-info .mypy_cache .ruff_cache .pytest_cache
