#!/usr/bin/env bash
# Build the skdim documentation, executing every gallery example.
#
#   bash docs/build.sh            # from anywhere; output in docs/_build/html
#
# Needs the "docs" extra (pip install ".[docs]"); installs nothing itself.
# Runs `sphinx-build -W`, so any Sphinx warning and any example that raises
# fails the build (--keep-going reports all of them first). Each build starts
# from a clean slate so that every example really runs.
#
# Environment:
#   OMP_NUM_THREADS   torch threads per example (default 2, a CI runner's cores)
#   SKDIM_CIFAR10_NPZ the CIFAR-10 JPEG .npz (or python batches folder) for the
#                     CIFAR-10 example; when unset, ../shared/data/
#                     cifar10_jpeg_bytes.npz beside the checkout is used if it
#                     exists (the project's CI layout). Without data the
#                     example's page says that its results need the data.
#   SKDIM_DOCS_KEEP=1 keep the previous outputs, so that unchanged examples
#                     are not re-run (faster, for editing prose only)
set -euo pipefail

DOCS="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$DOCS")"
cd "$ROOT"

export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
export MKL_NUM_THREADS="${MKL_NUM_THREADS:-$OMP_NUM_THREADS}"
export MPLBACKEND=agg
export PYTHONHASHSEED=0
CI_CIFAR10="$(dirname "$ROOT")/shared/data/cifar10_jpeg_bytes.npz"
if [[ -z "${SKDIM_CIFAR10_NPZ:-}" && -f "$CI_CIFAR10" ]]; then
    export SKDIM_CIFAR10_NPZ="$CI_CIFAR10"
fi

if [[ "${SKDIM_DOCS_KEEP:-0}" != "1" ]]; then
    rm -rf docs/_build docs/auto_examples docs/generated docs/sg_execution_times.rst
fi

start=$(date +%s)
python -m sphinx -W --keep-going -b html docs docs/_build/html "$@"
echo "docs built in $(( $(date +%s) - start )) s: docs/_build/html/index.html"
