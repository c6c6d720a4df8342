# The two commands a user needs: `make lab` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# What the suite passed with (make test, .ci/run, Binder); pyproject.toml keeps the ranges.
CONSTRAINTS := constraints.txt
PYTEST := $(BIN)/python -m pytest -n 2 --dist loadfile -q --durations=25

.PHONY: lab dashboard test test-fast test-latest lint bench bench-large bench-spark install constraints clean

$(STAMP): pyproject.toml $(CONSTRAINTS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

## Open JupyterLab on the quickstart notebook (127.0.0.1, token auth on).
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root,)
LAB_FLAGS := --ServerApp.ip=127.0.0.1 $(ROOT_FLAG) --ServerApp.root_dir=. \
	--LabApp.default_url=/lab/tree/notebooks/01_quickstart.ipynb
lab: $(STAMP)
	$(BIN)/jupyter lab $(LAB_FLAGS)

## The quickstart as a Voila dashboard (code hidden, widgets live; 127.0.0.1).
dashboard: $(STAMP)
	$(BIN)/voila notebooks/01_quickstart.ipynb --Voila.ip=127.0.0.1

## Run every test (unit, notebooks, Binder env, and the browser test when Chromium is present).
test: $(STAMP) lint
	$(PYTEST)

## While developing: everything but the slow and the browser tests.
test-fast: $(STAMP)
	$(PYTEST) -m "not slow and not browser"

## Lint (ruff, line length 100; configured in pyproject.toml).
lint: $(STAMP)
	$(BIN)/ruff check emwidgets tests benchmarks

## The suite against the newest releases pyproject.toml allows, in its own .venv-latest.
LATEST := .venv-latest
test-latest:
	test -x $(LATEST)/bin/python || $(PYTHON) -m venv $(LATEST)
	$(LATEST)/bin/python -m pip install --quiet --upgrade pip
	$(LATEST)/bin/python -m pip install --quiet --upgrade --upgrade-strategy eager -e '.[test]'
	$(LATEST)/bin/python -m pip freeze --exclude-editable | grep -E -i '^(jax|jaxlib|numpy)=='
	$(LATEST)/bin/python -m pytest -n 2 --dist loadfile -q

## Rewrite constraints.txt from the installed .venv (after the suite passed with it).
constraints: $(STAMP)
	{ sed -n '/^#/p' $(CONSTRAINTS); \
	  $(BIN)/python -m pip freeze --exclude-editable | grep -v -i '^emwidgets'; } > $(CONSTRAINTS).new
	mv $(CONSTRAINTS).new $(CONSTRAINTS)

## Benchmarks against scikit-learn, side by side in one process.
bench: $(STAMP)
	$(BIN)/python benchmarks/bench_gmm.py
	$(BIN)/python benchmarks/bench_hmm.py
	$(BIN)/python benchmarks/bench_missing.py
	$(BIN)/python benchmarks/bench_families.py
	$(BIN)/python benchmarks/bench_accel.py
	$(BIN)/python benchmarks/bench_stream.py
	$(BIN)/python benchmarks/bench_shard.py
	$(BIN)/python benchmarks/bench_general.py
	$(BIN)/python benchmarks/bench_latency.py
	$(BIN)/python benchmarks/bench_teaching.py
	$(BIN)/python benchmarks/bench_browser.py

## Benchmarks that take minutes: EM streamed from a Parquet file of 10^7 x 8 rows.
bench-large: $(STAMP)
	$(BIN)/python benchmarks/bench_stream.py --rows 10000000 --iterations 4

## Against Spark MLlib (pyspark in its own environment, a benchmark dependency only; needs Java).
bench-spark: $(STAMP)
	test -x .venv-spark/bin/python || (python3 -m venv .venv-spark && \
		.venv-spark/bin/pip install -q pyspark numpy)
	$(BIN)/python benchmarks/bench_spark.py --spark-python .venv-spark/bin/python --spark-fits 2

clean:
	rm -rf $(VENV) $(LATEST) .pytest_cache artifacts
