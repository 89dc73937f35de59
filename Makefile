# Two entry points: `make demo` and `make test`. Both set up everything they need on a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench setup clean

$(STAMP): pyproject.toml requirements-dev.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --upgrade pip
	@$(BIN)/python -m pip install --quiet -r requirements-dev.lock
	@$(BIN)/python -m pip install --quiet --no-deps -e .
	@touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	@rm -rf .osiris/demo
	@cd examples/quickstart && ../../$(BIN)/osiris-action run orders-summary.yaml --out ../../.osiris/demo
	@echo; echo "--- the job summary a pull request gets (.osiris/demo/summary.md) ---"; cat .osiris/demo/summary.md

test: $(STAMP)
	@$(BIN)/python tests/services.py
	@$(BIN)/ruff check .
	@$(BIN)/ruff format --check .
	@$(BIN)/python -m pytest -q

bench: $(STAMP)
	@$(BIN)/python tests/services.py
	@$(BIN)/python bench/validate.py
	@$(BIN)/python bench/sandbox.py
	@$(BIN)/python bench/throughput.py
	@$(BIN)/python bench/http_extractors.py
	@$(BIN)/python bench/diff.py

clean:
	rm -rf $(VENV) .osiris .pytest_cache .ruff_cache
