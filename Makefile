# The two commands of README.md: `make demo` runs the platform, `make test` runs the tests.
# Both install what they need into .venv (and the TimescaleDB test server's npm packages) first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TS_DIR := infra/timescale-test

.PHONY: install demo test lint typecheck check bench clean ui docs

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

$(TS_DIR)/node_modules/.installed: $(TS_DIR)/package-lock.json
	cd $(TS_DIR) && npm ci --legacy-peer-deps --no-audit --no-fund --loglevel=error
	touch $@

install: $(BIN)/.installed

# The operations page (api/ui -> api/static). The built bundle is committed, so install, demo and
# test need no Node; run this after changing api/ui (npm ci: exactly the lock file's versions).
# The CJK font subset is made first from the system's Noto Sans CJK (fails, saying what to install,
# when it is missing; `make ui CJK_SOURCE_FONT=/path/NotoSansCJKtc-Regular.otf` names another).
UI_DIR := api/ui
CJK_SOURCE_FONT ?= /usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc
ui: $(BIN)/.installed
	$(BIN)/python $(UI_DIR)/subset_font.py --source $(CJK_SOURCE_FONT)
	cd $(UI_DIR) && npm ci --no-audit --no-fund --loglevel=error && node build.mjs

demo: $(BIN)/.installed
	$(BIN)/zhongdu demo

test: $(BIN)/.installed $(TS_DIR)/node_modules/.installed
	infra/test-tools.sh
	$(BIN)/pytest

# mypy cannot see the editable install's folder mapping (coverage/ -> zhongdu.coverage): it finds
# modules by path (mypy_path has no package-dir mapping) and never runs setuptools' editable import
# hook (pypa/setuptools#3518). So it checks a tree of links laid out as the installed package is.
TYPECHECK_TREE := build/typecheck
lint: $(BIN)/.installed
	$(BIN)/ruff check .
	rm -rf $(TYPECHECK_TREE) && mkdir -p $(TYPECHECK_TREE)/zhongdu
	for f in zhongdu/*; do ln -s ../../../$$f $(TYPECHECK_TREE)/zhongdu/; done
	for p in coverage ingest api simulators; do ln -s ../../../$$p $(TYPECHECK_TREE)/zhongdu/$$p; done
	ln -s ../../../infra/migrations $(TYPECHECK_TREE)/zhongdu/migrations
	ln -s ../../../infra/mosquitto $(TYPECHECK_TREE)/zhongdu/mosquitto
	cd $(TYPECHECK_TREE) && MYPYPATH=. ../../$(BIN)/mypy --config-file ../../pyproject.toml -p zhongdu

check: lint test

# The docs/ pages as a static site in build/site (MkDocs' built-in theme: builds offline).
docs: $(BIN)/.installed
	$(BIN)/mkdocs build --quiet

clean:
	rm -rf $(VENV) $(TS_DIR)/node_modules $(UI_DIR)/node_modules
