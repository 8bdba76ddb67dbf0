# faceidx developer commands. Every target builds the virtual environment it needs first.
SHELL := /bin/bash
PYTHON_BOOT ?= python3
VENV := .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
STAMP := $(VENV)/.faceidx-stamp
UV_VERSION := 0.13.8
SHARED ?= $(abspath ../shared)
export FACEIDX_ASSETS ?= $(SHARED)/assets

.PHONY: help venv test test-fast lint fmt typecheck docs demo up down bench bench-steps rss-flat bench-identities bench-races bench-search bench-table soak simulate parse-times lock clean browser

help:
	@echo "make demo      - run faceidx end to end on an embedded local AWS (moto)"
	@echo "make test      - lint + type check + the whole test suite (browser tests included)"
	@echo "make up        - the whole product in a browser, no Docker (http://127.0.0.1:8080)"
	@echo "make down      - stop what make up started"
	@echo "make lint      - ruff lint and format check, hadolint"
	@echo "make fmt       - ruff format and autofix"
	@echo "make docs      - build the docs site (mkdocs --strict) into build/site"
	@echo "make bench     - worker throughput benchmark against a naive baseline"
	@echo "make bench-table - face table formats side by side: Delta Lake vs Iceberg"
	@echo "make bench-search - face search: IVF-HNSW-SQ (LanceDB) vs exact (DuckDB, numpy) on 10^6 faces"
	@echo "make bench-steps - the index steps as jobs: peak RSS and seconds at 10^3..10^5 faces"
	@echo "make rss-flat  - the Airflow task stays flat from 10^3 to 10^5 faces while the jobs grow"
	@echo "make bench-identities - identity clustering: labelled photos, 10^5 and 10^6 synthetic faces"
	@echo "make bench-races - ingest, compaction, sync, erasures (some SIGKILLed), identities and search racing as real processes for 150 s; counts what is corrupt, lost, duplicated or resurrected (BENCH_RACES_ARGS=--s3: on moto S3)"
	@echo "make soak      - load test: SOAK_MESSAGES messages through two workers (default 10000)"
	@echo "make simulate  - scaling simulator: original rule vs our planner"
	@echo "make parse-times - how long each DAG file takes to parse"
	@echo "make lock      - re-resolve requirements.lock, worker/requirements.lock and worker/requirements-maintenance.lock"

# The venv is rebuilt whenever the pinned files change (stale) or it is missing.
$(STAMP): requirements.lock pyproject.toml
	@test -x $(PY) || $(PYTHON_BOOT) -m venv $(VENV)
	$(PY) -m pip install -q "uv==$(UV_VERSION)"
	$(UV) pip sync -q --python $(PY) requirements.lock
	$(UV) pip install -q --python $(PY) --no-deps -e .
	@touch $(STAMP)

venv: $(STAMP)

lock:
	$(UV) pip compile -q --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
		--override overrides.txt requirements-dev.in -o requirements.lock
	$(UV) pip compile -q --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
		--override worker/overrides-gpu.txt worker/requirements.txt -o worker/requirements.lock
	$(UV) pip compile -q --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
		-c requirements.lock worker/requirements-maintenance.txt -o worker/requirements-maintenance.lock

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/hadolint worker/Dockerfile docker/airflow.Dockerfile docker/moto-batch.Dockerfile

fmt: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

typecheck: $(STAMP)
	$(VENV)/bin/mypy

# The docs site; --strict fails on a broken link, a missing page or a table marker the code cannot fill.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet --site-dir build/site

test: lint typecheck docs browser
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

demo: $(STAMP)
	$(PY) scripts/demo.py

up: $(STAMP)
	@$(MAKE) --no-print-directory down >/dev/null
	$(PY) scripts/up.py

down:
	@if [ -f .faceidx-up.pid ]; then \
		pid=$$(cat .faceidx-up.pid); kill -TERM $$pid 2>/dev/null || true; \
		for i in $$(seq 60); do kill -0 $$pid 2>/dev/null || break; sleep 1; done; \
		rm -f .faceidx-up.pid; echo "make up stopped"; \
	fi

# Debian's chromium for the browser tests (Playwright's own browser download is not used).
browser:
	@command -v chromium >/dev/null || { \
		echo "installing Debian's chromium for the browser tests ..."; \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium fonts-liberation >/dev/null; }

bench: $(STAMP)
	$(PY) benchmarks/bench_worker.py

bench-table: $(STAMP)
	$(PY) benchmarks/bench_table.py

BENCH_SEARCH_ARGS ?=
bench-search: $(STAMP)
	$(PY) benchmarks/bench_search.py $(BENCH_SEARCH_ARGS)

bench-steps: $(STAMP)
	$(PY) benchmarks/bench_steps.py

# The Airflow task's peak RSS against the index steps' jobs, at 10^3 and 10^5 faces (the suite: 3 x 10^4)
rss-flat: $(STAMP)
	FACEIDX_RSS_SIZES=1000,100000 $(PY) -m pytest tests/dags/test_task_rss_flat.py -s -p no:cacheprovider

bench-identities: $(STAMP)
	$(PY) benchmarks/bench_identities.py

BENCH_RACES_ARGS ?=
bench-races: $(STAMP)
	$(PY) benchmarks/bench_races.py $(BENCH_RACES_ARGS)

SOAK_MESSAGES ?= 10000
soak: $(STAMP)
	$(PY) benchmarks/soak.py --messages $(SOAK_MESSAGES)

simulate: $(STAMP)
	$(PY) benchmarks/simulate.py

metrics: $(STAMP)
	$(PY) scripts/code_metrics.py
	duplicates --most 10 || true

parse-times: $(STAMP)
	$(PY) scripts/dag_parse_times.py

clean:
	rm -rf $(VENV) build .mypy_cache .ruff_cache
