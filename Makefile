# The two commands a user needs: `make lab` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: lab test bench install clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

## Open JupyterLab on the quickstart notebook (127.0.0.1, token auth on).
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root,)
lab: $(STAMP)
	$(BIN)/jupyter lab --ServerApp.ip=127.0.0.1 $(ROOT_FLAG) notebooks/01_quickstart.ipynb

## Run every test (unit, notebooks, and the browser test when Chromium is present).
test: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadfile -q

## Benchmarks against scikit-learn, side by side in one process.
bench: $(STAMP)
	$(BIN)/python benchmarks/bench_gmm.py
	$(BIN)/python benchmarks/bench_hmm.py
	$(BIN)/python benchmarks/bench_missing.py

clean:
	rm -rf $(VENV) .pytest_cache artifacts
