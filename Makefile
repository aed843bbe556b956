# Set-up on a fresh machine: `make demo` runs the main job, `make test` the test suite.
# Both create .venv and install what they need. torch is pinned first (2.13.0 is a CPU build on the
# build machine); every later install is constrained to the torch that is installed.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install -q --disable-pip-version-check

.PHONY: demo test test-all lint clean

$(VENV)/.installed: pyproject.toml Makefile
	python3 -m venv $(VENV)
	$(PIP) torch==2.13.0 || $(PIP) torch
	$(PY) -c "import torch; print('torch==' + torch.__version__.split('+')[0])" > $(VENV)/constraints.txt
	$(PIP) -c $(VENV)/constraints.txt -e ".[test]"
	touch $@

demo: $(VENV)/.installed
	$(VENV)/bin/vjepa2 demo --out runs/demo

test: $(VENV)/.installed
	$(PY) -m pytest -q

test-all: $(VENV)/.installed
	$(PY) -m pytest -q --runslow

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check vjepa2 tests benchmarks
	$(VENV)/bin/ruff format --check vjepa2 tests benchmarks

clean:
	rm -rf $(VENV) runs .pytest_cache
