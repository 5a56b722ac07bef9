VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: install migrate lint test demo bench load clean

install:
	sh scripts/system-packages
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'

migrate:
	$(BIN)/stratus-sql migrate

lint:
	$(BIN)/ruff check stratus_sql tests bench
	$(BIN)/ruff format --check stratus_sql tests bench
	$(BIN)/mypy stratus_sql
	$(BIN)/mypy tests

test: lint
	$(BIN)/pytest

demo:
	$(BIN)/python -m stratus_sql.cli.demo

bench:
	$(BIN)/python bench/records.py
	$(BIN)/python bench/queries.py
	$(BIN)/python bench/calls.py
	$(BIN)/python bench/metrics.py
	$(BIN)/python bench/metrics_ingest.py
	$(BIN)/python bench/metrics_sqlite.py

load:
	$(BIN)/python -W ignore::UserWarning bench/load.py $(LOAD_ARGS)

clean:
	rm -rf $(VENV) dist build .mypy_cache .ruff_cache .pytest_cache stratus.db stratus.db-wal stratus.db-shm
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
