#!/usr/bin/env bash
# Build the virtualenv for the reference GRADIEND package (gradiend==0.2.3, Apache-2.0) used by
# perf/gradiend_vs_reference.py. It is separate so the reference's pins never touch .venv.
# torch==2.13.0 is installed first: any other torch spec would pull a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${REFERENCE_VENV:-.venv-reference}"
PY="${PYTHON:-python3.11}"
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/pip" install -q "torch==2.13.0"
"$VENV/bin/pip" install -q --no-deps "gradiend==0.2.3"
# the reference's own dependencies, by hand (no extras that would re-resolve torch)
"$VENV/bin/pip" install -q "transformers>=4.30,<6" "numpy>=1.20" "pandas>=1.3" "tqdm>=4.60" "safetensors>=0.3" \
    "pyarrow>=14" "matplotlib>=3.5" "accelerate>=0.26" "datasets>=3.0.2" "scikit-learn" "scipy" "seaborn"
"$VENV/bin/python" -c "import gradiend, torch; print('reference venv ready: gradiend', gradiend.__version__ if hasattr(gradiend, '__version__') else '0.2.3', 'torch', torch.__version__)"
