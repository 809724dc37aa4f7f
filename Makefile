# The two commands of the README: `make demo` and `make test`. Both bootstrap .venv from nothing.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-postgres ui bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,production]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/catalog-pipelines demo

# TEST_WORKERS: pytest-xdist processes (auto: one per core; 0 runs in one process).
TEST_WORKERS ?= auto
test: $(STAMP)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

# The PostgreSQL half of the suite (`make test` runs both halves when CATALOG_TEST_POSTGRES_URL is set).
test-postgres: $(STAMP)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup -m postgres $(PYTEST_ARGS)

# The Dagster web UI and daemon on the same data as the CLI.
ui: $(STAMP)
	@mkdir -p $${CATALOG_PIPELINES_DATA_DIR:-.data}/dagster_home
	export DAGSTER_HOME=$${DAGSTER_HOME:-$$(cd $${CATALOG_PIPELINES_DATA_DIR:-.data} && pwd)/dagster_home}; \
	$(BIN)/python -m catalog_pipelines.instance && $(BIN)/dagster dev -w workspace.yaml

bench: $(STAMP)
	$(BIN)/python benchmarks/ingest_200k.py

clean:
	rm -rf .data $(VENV)
