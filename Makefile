# Sluice developer entry points. Every target creates .venv on first use: the demo installs
# Sluice alone, the other targets add the development tools (tests, lint, browser, notebook).
# An editable install leaves src/ uncompiled; compileall writes the bytecode a wheel install
# would have, so commands do not recompile Sluice on every start when PYTHONDONTWRITEBYTECODE
# is set (stale files are ignored: Python checks each source's modification time).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
CORE := $(VENV)/.installed-core
STAMP := $(VENV)/.installed
DEMO_DIR ?= .demo

.PHONY: demo test bench lint clean

$(CORE): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	$(BIN)/python -m compileall -q src
	touch $(CORE)

$(STAMP): $(CORE)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(CORE)
	$(BIN)/sluice demo $(DEMO_DIR)

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadgroup $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python -m compileall -q src
	$(BIN)/python bench/run.py

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

clean:
	rm -rf $(VENV) $(DEMO_DIR) build *.egg-info src/*.egg-info
