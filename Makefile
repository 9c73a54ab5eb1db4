# The two commands of the README: `make demo` runs the platform, `make test` runs the tests.
# Both install what they need into .venv (and the TimescaleDB test server's npm packages) first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TS_DIR := infra/timescale-test

.PHONY: install demo test lint typecheck check bench clean

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

$(TS_DIR)/node_modules/.installed: $(TS_DIR)/package-lock.json
	cd $(TS_DIR) && npm ci --legacy-peer-deps --no-audit --no-fund --loglevel=error
	touch $@

install: $(BIN)/.installed

demo: $(BIN)/.installed
	$(BIN)/zhongdu demo

test: $(BIN)/.installed $(TS_DIR)/node_modules/.installed
	$(BIN)/pytest

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/mypy zhongdu coverage ingest api simulators

check: lint test

clean:
	rm -rf $(VENV) $(TS_DIR)/node_modules
