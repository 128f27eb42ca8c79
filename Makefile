PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP_RUN := $(VENV)/.installed-run
STAMP_DEV := $(VENV)/.installed-dev

.PHONY: run test lint typecheck bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(STAMP_RUN): pyproject.toml | $(PY)
	$(PY) -m pip install -q -e .
	touch $@

$(STAMP_DEV): pyproject.toml | $(PY)
	$(PY) -m pip install -q -e '.[dev]'
	touch $@ $(STAMP_RUN)

run: $(STAMP_RUN)
	PY=$(PY) bash examples/run-demo.sh

test: $(STAMP_DEV)
	$(PY) -m pytest

lint: $(STAMP_DEV)
	$(PY) -m ruff check proxy tests benchmarks
	$(PY) -m ruff format --check proxy tests benchmarks

typecheck: $(STAMP_DEV)
	$(PY) -m mypy

bench: $(STAMP_DEV)
	bash benchmarks/run.sh

clean:
	rm -rf $(VENV) build *.egg-info
