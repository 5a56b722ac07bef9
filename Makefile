VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: install migrate lint test demo serve bench load clean

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

# Tests that share no database with the rest (the failover tests on their own formation,
# the packaging tests on files of their own, the browser test on a private cluster) run in a
# second pytest beside the rest; its output follows theirs, and either failing fails `test`.
ASIDE := tests/test_failover.py tests/test_packaging.py tests/test_web_browser.py

test: lint
	@log=$$(mktemp); \
	$(BIN)/pytest -p no:cacheprovider $(ASIDE) >"$$log" 2>&1 & aside=$$!; \
	trap 'kill $$aside 2>/dev/null; wait $$aside; cat "$$log"; rm -f "$$log"; exit 130' INT TERM; \
	$(BIN)/pytest $(addprefix --ignore=,$(ASIDE)); rest=$$?; \
	wait $$aside; other=$$?; cat "$$log"; rm -f "$$log"; \
	test $$rest -eq 0 && test $$other -eq 0

demo:
	$(BIN)/python -m stratus_sql.cli.demo

# The dashboard on the embedded default (or DATABASE_URL): a new admin key on each run.
serve:
	$(BIN)/stratus-sql migrate
	$(BIN)/stratus-sql seed --users 3
	@echo "sign in at http://127.0.0.1:8000/ with this key of admin@example.com:"
	@$(BIN)/stratus-sql api-key create --email admin@example.com | tail -1
	$(BIN)/stratus-sql serve

bench:
	$(BIN)/python bench/records.py
	$(BIN)/python bench/queries.py
	$(BIN)/python bench/calls.py
	$(BIN)/python bench/metrics.py
	$(BIN)/python bench/metrics_ingest.py
	$(BIN)/python bench/metrics_sqlite.py
	$(BIN)/python bench/web.py

load:
	$(BIN)/python -W ignore::UserWarning bench/load.py $(LOAD_ARGS)

clean:
	rm -rf $(VENV) dist build .mypy_cache .ruff_cache .pytest_cache stratus.db stratus.db-wal stratus.db-shm
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
