# make setup: .venv with everything the local stack and the tests need
# make run:   the local stack on 127.0.0.1:8000 (embedded Postgres, migrations, sample knowledge)
# make test:  lint, types and the whole suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
CHECKED := shared functions gpu_handlers

.PHONY: setup run test lint typecheck pytest clean

setup: $(STAMP) node_modules/.package-lock.json

# osls (Serverless Framework v3 drop-in) for `osls package` in the deploy tests
node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[local,gpu,dev]'
	touch $(STAMP)

run: setup
	$(BIN)/hybrid serve

lint: setup
	$(BIN)/ruff check $(CHECKED) tests bench

typecheck: setup
	$(BIN)/mypy $(CHECKED)

pytest: setup
	$(BIN)/pytest -q

test: lint typecheck pytest

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
