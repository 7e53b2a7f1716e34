#!/usr/bin/env bash
# Run numerical tests under the thread-count / CPU-kernel matrix that CI machines differ in (docs/testing.md).
#   tests/run_numeric_matrix.sh                       the numerical test files, every setting
#   tests/run_numeric_matrix.sh tests/test_x.py -k y  any pytest arguments instead
# Exits non-zero when any setting fails. Each setting is a fresh process: the thread count and the kernel set
# (ATEN_CPU_CAPABILITY for PyTorch's own kernels, MKL_CBWR / ONEDNN_MAX_CPU_ISA for the BLAS and oneDNN ones)
# are fixed when torch is imported.
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
if [ $# -eq 0 ]; then
  set -- tests/test_gradiend.py tests/test_scoring.py tests/test_crows.py tests/test_stereoset.py tests/test_hooks.py \
         tests/test_seat.py tests/test_models.py
fi
export GRADIEND_BENCH_OFFLINE=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
if [ -z "${GRADIEND_BENCH_DATA:-}" ] && [ -f ../shared/data/MANIFEST.tsv ]; then
  export GRADIEND_BENCH_DATA=$(cd ../shared/data && pwd)
fi
SETTINGS=(
  "OMP_NUM_THREADS=1"
  "OMP_NUM_THREADS=2"
  "OMP_NUM_THREADS=1 ATEN_CPU_CAPABILITY=default"
  "OMP_NUM_THREADS=2 ATEN_CPU_CAPABILITY=default"
  "OMP_NUM_THREADS=1 ATEN_CPU_CAPABILITY=avx2"
  "OMP_NUM_THREADS=2 ATEN_CPU_CAPABILITY=avx2"
  "OMP_NUM_THREADS=2 ATEN_CPU_CAPABILITY=default MKL_CBWR=COMPATIBLE ONEDNN_MAX_CPU_ISA=SSE41"
)
# inductor's on-disk kernel cache is not keyed by ATEN_CPU_CAPABILITY: kernels built under one setting and
# reused under another fail to compile, give NaN or crash (torch 2.13), so each setting gets its own cache
CACHES=$(mktemp -d)
trap 'rm -rf "$CACHES"' EXIT
failed=()
for i in "${!SETTINGS[@]}"; do
  setting=${SETTINGS[$i]}
  threads=${setting#OMP_NUM_THREADS=}; threads=${threads%% *}
  echo "=== $setting"
  run=(env $setting MKL_NUM_THREADS="$threads" TORCHINDUCTOR_CACHE_DIR="$CACHES/$i")
  "${run[@]}" "$PY" -c \
    "import torch; print('torch threads', torch.get_num_threads(), '| CPU capability', torch.backends.cpu.get_cpu_capability())"
  "${run[@]}" "$PY" -m pytest -q -p no:cacheprovider "$@" || failed+=("$setting")
done
if [ ${#failed[@]} -gt 0 ]; then
  printf 'FAILED under: %s\n' "${failed[@]}"
  exit 1
fi
echo "all ${#SETTINGS[@]} settings passed"
