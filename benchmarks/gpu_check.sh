#!/usr/bin/env bash
# The prepared GPU check of issue 6, for one H200: the training-throughput
# table (benchmarks/bench_gpu.py), then a short CIFAR-10 run with the linear
# and MLP-200 probes (benchmarks/bench_cifar10.py), each printing its table.
#
#   bash benchmarks/gpu_check.sh                 # both stages, on the GPU machine
#   bash benchmarks/gpu_check.sh throughput      # one stage (throughput | cifar)
#   bash benchmarks/gpu_check.sh --dry-run       # tiny sizes on the CPU: checks the script
#
# Data: the CIFAR-10 file travels in the git-ignored folder .data/ (never in a
# commit). Before calling the device tool, here:
#   mkdir -p .data && cp ../shared/data/cifar10_jpeg_bytes.npz .data/
# and pass carry=[".data"]. Without the file the CIFAR-10 stage says SKIPPED.
#
# Time: the stages time out after 120 s and 465 s, so the script ends inside
# the device tool's 600 s command limit: call it with timeout_s=600. The
# CIFAR-10 stage is about 10 s of loading, MINUTES of training, then feature
# extraction and probes (expected 2-3 minutes; not yet measured on a GPU).
# To rerun that stage alone with the full 5 minutes of training:
#   MINUTES=5 CIFAR_TIMEOUT=580 bash benchmarks/gpu_check.sh cifar
#
# Knobs (environment variables, defaults in brackets): MINUTES [4.5] of DIM
# training, N_TRAIN [50000], BATCH [256], LR [2e-4], UNITS [2048],
# ESTIMATOR [infonce], PRECISION [bfloat16], GAMMA [0.1], PROBE_TRAIN [10000]
# and PROBE_JOBS [8] for the linear probes, MLP_EPOCHS [30], MLP_BATCH [256],
# MLP_LR [1e-3] for the MLP-200 probe (on every layer and baseline, lr x0.1
# halfway, last-epoch accuracy: a short schedule, not the paper's), PYTHON
# [python3]. Logs and JSON go to
# $OUT when set (the device tool's output folder), else .data/gpu_check/.
set -uo pipefail
cd "$(dirname "$0")/.."

DRY=0
STAGE=all
for arg in "$@"; do
    case "$arg" in
        --dry-run) DRY=1 ;;
        throughput|cifar|all) STAGE=$arg ;;
        *) echo "usage: $0 [--dry-run] [throughput|cifar|all]" >&2; exit 2 ;;
    esac
done

PY=${PYTHON:-python3}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
RESULTS=${OUT:-.data/gpu_check}
mkdir -p "$RESULTS"
DATA=.data/cifar10_jpeg_bytes.npz
status=0

echo "== environment"
"$PY" - <<'EOF'
import platform, numpy, sklearn, torch
print(f"python {platform.python_version()}, torch {torch.__version__}, "
      f"scikit-learn {sklearn.__version__}, numpy {numpy.__version__}")
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    print(f"GPU: {p.name}, {p.total_memory / 2**30:.0f} GiB, {p.multi_processor_count} SMs, "
          f"capability {p.major}.{p.minor}")
else:
    print("GPU: none visible to torch")
EOF
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,clocks.sm,temperature.gpu --format=csv,noheader

if [ "$DRY" = 1 ]; then
    DEVICE=cpu
    THROUGHPUT_ARGS=(--dry-run)
    CIFAR_ARGS=(--device cpu --epochs 1 --n-train 256 --n-test 200 --probe-train 256
                --batch-size 64 --critic-units 64 --precision bfloat16 --mlp
                --mlp-layers conv fc y --mlp-baselines
                --mlp-epochs 2 --mlp-batch-size 64 --probe-jobs 2)
else
    DEVICE=cuda
    THROUGHPUT_ARGS=()
    CIFAR_ARGS=(--device cuda --minutes "${MINUTES:-4.5}" --n-train "${N_TRAIN:-50000}"
                --batch-size "${BATCH:-256}" --learning-rate "${LR:-2e-4}"
                --critic-units "${UNITS:-2048}" --mi-estimator "${ESTIMATOR:-infonce}"
                --precision "${PRECISION:-bfloat16}" --gamma "${GAMMA:-0.1}"
                --probe-train "${PROBE_TRAIN:-10000}" --probe-jobs "${PROBE_JOBS:-8}"
                --mlp --mlp-layers conv fc y --mlp-baselines
                --mlp-epochs "${MLP_EPOCHS:-30}" --mlp-batch-size "${MLP_BATCH:-256}"
                --mlp-lr "${MLP_LR:-1e-3}" --mlp-milestones $(( ${MLP_EPOCHS:-30} / 2 ))
                --mlp-average-last 1)
fi

if [ "$STAGE" = all ] || [ "$STAGE" = throughput ]; then
    echo
    echo "== training throughput ($DEVICE)"
    timeout 120 "$PY" benchmarks/bench_gpu.py "${THROUGHPUT_ARGS[@]}" \
        --json "$RESULTS/gpu_throughput.json" 2>&1 | tee "$RESULTS/gpu_throughput.txt"
    rc=${PIPESTATUS[0]}
    [ "$rc" = 0 ] || { echo "throughput stage failed (exit $rc; 124 = timed out)"; status=1; }
fi

if [ "$STAGE" = all ] || [ "$STAGE" = cifar ]; then
    echo
    echo "== CIFAR-10 ($DEVICE)"
    RUN=1
    if [ -f "$DATA" ]; then
        SOURCE=("$DATA")
    elif [ "$DRY" = 1 ]; then
        SOURCE=()  # the dry run falls back on $SKDIM_CIFAR10_NPZ or ../shared/data
    else
        echo "SKIPPED: $DATA not found; copy cifar10_jpeg_bytes.npz into .data/ and carry .data"
        RUN=0
    fi
    if [ "$RUN" = 1 ]; then
        timeout "${CIFAR_TIMEOUT:-465}" "$PY" benchmarks/bench_cifar10.py "${SOURCE[@]}" "${CIFAR_ARGS[@]}" \
            --json "$RESULTS/cifar10.json" 2>&1 | tee "$RESULTS/cifar10.txt"
        rc=${PIPESTATUS[0]}
        [ "$rc" = 0 ] || { echo "CIFAR-10 stage failed (exit $rc; 124 = timed out)"; status=1; }
    fi
fi
exit $status
