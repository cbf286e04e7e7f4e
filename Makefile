# sweeplab: `make help` lists the targets. Everything runs in .venv, made by `make setup`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SHARED_DATA ?= ../shared/data
KERAS_HOME ?= $(HOME)/.keras
UI_PORT ?= 5000
MODEL ?= models:/fashion-mnist-mlp@champion
SERVE_PORT ?= 5002
export KERAS_HOME

.DEFAULT_GOAL := help
.PHONY: help setup data run test lint ui serve bench bench-quick mutants clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

# hydra/sweeper=optuna: hydra-optuna-sweeper (1.3.0, pinned in constraints.txt) pins optuna<3, yet its code runs
# on the Optuna 5 that sweeplab needs (the old distributions and Trial._suggest are still there), so it goes in
# without its dependencies, beside sweeplab's own hydra/sweeper=sweeplab.
$(BIN)/sweeplab-installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev,jax]'
	$(BIN)/python -m pip install -q --no-deps -c constraints.txt hydra-optuna-sweeper
	touch $@

setup: $(BIN)/sweeplab-installed data ## make .venv with sweeplab and its dependencies, fill the Keras cache

data: ## copy the offline Fashion-MNIST files (../shared/data) into the Keras cache, if there are any
	@if [ -d "$(SHARED_DATA)/fashion-mnist" ]; then \
	  mkdir -p "$(KERAS_HOME)/datasets/fashion-mnist" && \
	  cp -u "$(SHARED_DATA)"/fashion-mnist/*.gz "$(KERAS_HOME)/datasets/fashion-mnist/"; \
	fi

run: setup ## train the baseline (30 epochs) into mlruns/; ARGS="lr=0.05 ..." for overrides
	$(BIN)/python sweep.py $(ARGS)

# Two pytest-xdist workers: most tests wait on subprocesses, servers and polls, so two keep 2 cores busy.
# A test file goes to one worker (its module fixtures are built once); tests/conftest.py shares small_sweep.
PYTEST_WORKERS ?= -n 2 --dist loadfile

test: setup ## run the test suite (real Keras, real MLflow, a SLURM cluster, servers; about 30 min on 2 cores)
	$(BIN)/python -m pytest $(PYTEST_WORKERS) $(PYTEST_ARGS)

lint: setup ## ruff check and format check
	$(BIN)/ruff check src tests bench tools sweep.py compare.py predict.py
	$(BIN)/ruff format --check src tests bench tools sweep.py compare.py predict.py

# Deliberate bugs, each in a copy of the tree, against the tests that should catch them (docs/testing.md).
mutants: setup ## apply each deliberate bug to a copy and run its tests: killed or survived (MUTANTS=name part)
	$(BIN)/python tools/mutants.py $(if $(MUTANTS),-k "$(MUTANTS)")

ui: setup ## open the MLflow UI on the project's store (mlruns/) at http://127.0.0.1:5000; UI_PORT=... for another port
	$(BIN)/mlflow ui --backend-store-uri sqlite:///mlruns/mlflow.db --default-artifact-root ./mlruns \
	  --host 127.0.0.1 --port $(UI_PORT)

# MLflow's scoring server runs uvicorn from PATH; the store is the project's unless MLFLOW_TRACKING_URI says otherwise;
# no download bars nor TensorFlow's C++ log lines, as sweeplab.backend.quiet_start.
# Image models take scaled images; table models raw rows by column (CSV or dataframe_split JSON): docs/compare.md.
serve: setup ## serve a model at http://127.0.0.1:5002/invocations (default the champion; MODEL=models:/..., SERVE_PORT=...)
	MLFLOW_TRACKING_URI=$${MLFLOW_TRACKING_URI:-sqlite:///mlruns/mlflow.db} PATH=$(BIN):$$PATH \
	  MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR=$${MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR:-false} \
	  TF_CPP_MIN_LOG_LEVEL=$${TF_CPP_MIN_LOG_LEVEL:-3} \
	  $(BIN)/mlflow models serve -m $(MODEL) --env-manager local --host 127.0.0.1 --port $(SERVE_PORT)

bench: setup ## benchmark against the plain Keras script (about 17 min on 2 cores; table in bench/results/)
	$(BIN)/python -m bench $(BENCH_ARGS)

bench-quick: setup ## smoke run of the benchmark (tiny data, 1 epoch, about 2 min)
	$(BIN)/python -m bench --quick

clean: ## remove Hydra output folders (runs in mlruns/ stay)
	rm -rf outputs multirun
