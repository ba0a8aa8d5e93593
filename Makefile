# The README's commands. Each sets up .venv first (scripts/setup), so they work on a fresh machine.
VENV ?= .venv
BIN := $(VENV)/bin
ARGS ?=

.PHONY: setup study test test-slow lint format bench bench-shared notebooks

setup:
	@scripts/setup

## Run the embedded default study (override with ARGS="train=zero3 seed=1")
study: setup
	$(BIN)/spin-bench $(ARGS)

## Lint and the default test suite (minutes, CPU only)
test: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest -m "not slow and not gpu" $(ARGS)

## The slow tests (full-size default run, every ZeRO preset training)
test-slow: setup
	$(BIN)/pytest -m "slow and not gpu" $(ARGS)

## Execute the analysis notebooks headless (analysis/*.ipynb beside the .py files, figures in analysis/figures);
## they read the runs named by SPIN_BENCH_RUNS (default runs/), e.g. SPIN_BENCH_RUNS=runs/arithmetic-beta
notebooks: setup
	$(BIN)/jupytext --to ipynb --execute analysis/0*.py

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

## Benchmarks reported in docs/benchmarks.md
bench: setup
	$(BIN)/python bench/wall_time.py $(ARGS)

## A sweep's wall time against its jobs run one by one from scratch (docs/benchmarks.md)
bench-shared: setup
	$(BIN)/python bench/shared_work.py $(ARGS)
