# The README's commands. Each sets up .venv first (scripts/setup), so they work on a fresh machine.
VENV ?= .venv
BIN := $(VENV)/bin
ARGS ?=

.PHONY: setup study test test-unit test-integration test-scale test-slow test-gpu lint format bench bench-shared bench-fresh notebooks

setup:
	@scripts/setup

## Run the embedded default study (override with ARGS="engine=zero3 seed=1")
study: setup
	$(BIN)/spin-bench $(ARGS)

## Lint, types, the import layering, then both test tiers (CI's command; about 8 minutes on a fresh 2-core machine)
test: setup lint test-unit test-integration

## ruff, mypy on the package, import-linter's layering contracts
lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-logo

## The unit tier: trains nothing (about 3 minutes)
test-unit: setup
	$(BIN)/pytest tests/unit -m "not slow and not gpu" $(ARGS)

## The integration tier: the tiny model end to end, the CLI, the launchers, the notebooks
test-integration: setup
	$(BIN)/pytest tests/integration -m "not slow and not gpu" $(ARGS)

## The scale tier: torchrun with 2 ranks, killed ranks, mid-stage resume, and SLURM (starts the one-node cluster
## of scripts/slurm/up first: root and apt-get needed; about 15 minutes)
test-scale: setup
	scripts/slurm/up
	$(BIN)/pytest tests/scale -m "scale and not gpu" $(ARGS)

## The one-GPU tests (tests/integration/test_gpu.py), where CUDA is; 2 GPUs: `pytest -m gpu tests/scale`
test-gpu: setup
	$(BIN)/pytest -m gpu tests/integration $(ARGS)

## The slow tests (every ZeRO preset training)
test-slow: setup
	$(BIN)/pytest -m "slow and not gpu" $(ARGS)

## Execute the analysis notebooks headless (notebooks/*.ipynb beside the .py files, figures in notebooks/figures);
## they read the runs named by SPIN_BENCH_RUNS (default runs/), e.g. SPIN_BENCH_RUNS=runs/arithmetic-beta
notebooks: setup
	SPIN_BENCH_ROOT=$${SPIN_BENCH_ROOT:-$(CURDIR)} $(BIN)/jupytext --to ipynb --execute notebooks/0*.py

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

## Benchmarks reported in docs/benchmarks.md
bench: setup
	$(BIN)/python bench/wall_time.py $(ARGS)

## A sweep's wall time against its jobs run one by one from scratch (docs/benchmarks.md)
bench-shared: setup
	$(BIN)/python bench/shared_work.py $(ARGS)

## `make test` (or ARGS="--target setup": the install alone) on fresh clones with empty package caches, as CI runs it
## (docs/benchmarks.md)
bench-fresh: setup
	$(BIN)/python bench/fresh_clone.py $(ARGS)
