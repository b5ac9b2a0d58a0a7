# Two commands for a fresh machine with Python 3.11: `make serve` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install serve test lint bench screenshots clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

install: $(BIN)/.installed

## Install into .venv and serve on the embedded SQLite store (demo loaded when empty).
serve: install
	$(BIN)/csp-tracker serve

## Install into .venv, lint (ruff, ruff format, mypy), and run the whole suite on SQLite and
## PostgreSQL.
test: install lint
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

## Benchmarks (default sizes, a few minutes); figures go to bench/results/*.json.
bench: install
	$(BIN)/pip install --quiet -e '.[test,bench]'
	$(BIN)/python -m bench.append_inprocess
	$(BIN)/python -m bench.append_http
	$(BIN)/python -m bench.group_commit
	$(BIN)/python -m bench.read_side
	$(BIN)/python -m bench.time_travel

## Full-page PNGs of every web page (demo data, headless Chromium) into docs/screenshots/.
screenshots: install
	$(BIN)/python -m tests.browser.screenshots

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .ruff_cache
