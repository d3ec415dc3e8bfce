# What a new user needs: `make demo`, `make serve` and `make test`. Each builds .venv first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# `make test` runs the suite in this many pytest-xdist worker processes, each with databases
# of its own (on the 2-core CI machine, 3 or 4 were no faster than 2: docs/development.md).
# TEST_WORKERS=0, or plain `pytest`, runs it in one process, one test after another.
TEST_WORKERS ?= 2

.PHONY: venv serve test test-quick lint format demo bench fuzz clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit("Promos needs Python 3.11 or newer" if sys.version_info < (3, 11) else 0)'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

serve: venv
	@$(BIN)/promos serve

test: venv
	$(BIN)/pytest -n $(TEST_WORKERS) --dist worksteal

# The SQLite variants alone: no PostgreSQL, Redis or Chromium needed, under a minute
# (docs/development.md).
test-quick: venv
	$(BIN)/pytest -n $(TEST_WORKERS) --dist worksteal -m "not postgres and not redis and not browser"

lint: venv
	$(BIN)/ruff check promos tests bench deploy fuzz
	$(BIN)/ruff format --check promos tests bench deploy fuzz
	$(BIN)/mypy

format: venv
	$(BIN)/ruff check --fix promos tests bench deploy fuzz
	$(BIN)/ruff format promos tests bench deploy fuzz

demo: venv
	@$(BIN)/promos demo

# The contract, proven: schemathesis over the whole OpenAPI document against a server on a
# fresh PostgreSQL database (fuzz/run.py; PROMOS_FUZZ_POSTGRES_URL names the server).
# Fails on any 5xx and on any answer the document does not allow. About 3 minutes.
fuzz: venv
	$(BIN)/python fuzz/run.py

bench: venv
	$(BIN)/python bench/issue_codes.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
