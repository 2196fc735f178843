#!/usr/bin/env bash
# The one prepared GPU check: GPU tests, the doctor on cuda, the Triton kernel benchmark and the
# quick bench suite, within 8 minutes, every log and result under one folder.
#
#   bash bench/gpu_check.sh OUT_DIR            (or OUT=DIR bash bench/gpu_check.sh)
#   bash bench/gpu_check.sh --dry-run OUT_DIR  (print the steps and their time limits, run nothing)
#
# Run it from the repository root on a machine where the project is installed beside the
# machine's own torch and triton:  pip install --no-deps --no-build-isolation -e .
# Each step runs under `timeout` and a shared deadline (GPU_CHECK_BUDGET seconds, default 450):
# a failing or hung step is logged and the next one runs. OUT_DIR/summary.txt lists every step
# with its status and time; OUT_DIR/gpu_check.tar.gz packs everything for machines that hand
# back few files. Exit status 0 when every step that ran passed, else 1 (2: bad usage).
# Environment: PYTHON (default python), SRGAN_FAST_CACHE (artifact cache; default a folder in
# /tmp, not OUT_DIR: engines are large), SRGAN_FAST_TRAIN_STATE / SRGAN_FAST_TRAIN_ARGS (the
# optional training step at the end).
set -u -o pipefail

DRY_RUN=0
if [ "${1:-}" = "--dry-run" ]; then
    DRY_RUN=1
    shift
fi
OUT_DIR=${1:-${OUT:-}}
if [ -z "$OUT_DIR" ]; then
    echo "usage: bash bench/gpu_check.sh [--dry-run] OUT_DIR   (or set OUT)" >&2
    exit 2
fi
if [ ! -f bench/gpu_check.sh ] || [ ! -d srgan_fast ]; then
    echo "error: run from the repository root (bench/gpu_check.sh and srgan_fast/ not found here)" >&2
    exit 2
fi
PY=${PYTHON:-python}
BUDGET=${GPU_CHECK_BUDGET:-450}  # 8 minutes less the last kill-after and the summary
START=$(date +%s)
LOGS="$OUT_DIR/logs"
SUMMARY="$OUT_DIR/summary.txt"
export SRGAN_FAST_CACHE=${SRGAN_FAST_CACHE:-/tmp/srgan_fast_gpu_check_cache}
unset TRITON_INTERPRET  # compiled kernels on the GPU, never the interpreter
FAILED=0

if [ "$DRY_RUN" = 0 ]; then
    mkdir -p "$LOGS" || { echo "error: cannot create $LOGS" >&2; exit 2; }
    printf 'gpu_check %s on %s (budget %ss, cache %s)\n\n%-10s %-8s %6s  %s\n' \
        "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$(hostname)" "$BUDGET" "$SRGAN_FAST_CACHE" \
        step status seconds log >"$SUMMARY"
fi

# step NAME LIMIT_SECONDS COMMAND...: run under min(LIMIT, time left), log to logs/NAME.log.
step() {
    local name=$1 limit=$2
    shift 2
    local left=$((BUDGET - ($(date +%s) - START)))
    [ "$limit" -gt "$left" ] && limit=$left
    if [ "$DRY_RUN" = 1 ]; then
        printf '%-10s limit %4ss  %s\n' "$name" "$limit" "$*"
        return 0
    fi
    local log="$LOGS/$name.log" status t0 rc where="logs/$name.log"
    if [ "$limit" -lt 15 ]; then
        status=SKIP
        where="no time left in the ${BUDGET} s budget"
    else
        echo "gpu_check: $name (limit ${limit}s): $*" >&2
        t0=$(date +%s)
        timeout --kill-after=10 "$limit" "$@" >"$log" 2>&1
        rc=$?
        case $rc in
            0) status=ok ;;
            124 | 137) status="TIMEOUT"; FAILED=1 ;;
            *) status="FAIL($rc)"; FAILED=1 ;;
        esac
    fi
    printf '%-10s %-8s %6s  %s\n' "$name" "$status" "$(($(date +%s) - ${t0:-$(date +%s)}))" "$where" >>"$SUMMARY"
    echo "gpu_check: $name: $status" >&2
}

# What the machine is: driver, GPU, torch/CUDA as Python sees them, the installed libraries.
env_report() {
    nvidia-smi
    "$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "gpu",
torch.cuda.is_available() and torch.cuda.get_device_name(0))'
    "$PY" -m pip list 2>/dev/null | grep -i -E 'torch|triton|tensorrt|onnx|openvino|pycuda|numpy'
}
export -f env_report
export PY
step env 20 bash -c env_report
# The tests marked gpu: the kernels compiled and autotuned (bf16 too), the Triton engine, TensorRT
# (skipped with the reason when tensorrt is not installed), the doctor's CUDA peak.
step gpu-tests 100 "$PY" -m pytest -q -m gpu -p no:cacheprovider tests/
# Every backend x precision on the GPU (parity, fp16 range, tiling, speed at 1080p/2, memory).
# Triton last: its first run autotunes each layer per shape bucket; --timeout bounds each backend.
step doctor 180 "$PY" -m srgan_fast.doctor --device cuda --quick --timeout 100 \
    --backends torch,tensorrt,onnxruntime,triton,openvino --json "$OUT_DIR/doctor-cuda.json"
# Each fused Triton kernel against cuDNN + unfused ops at the 1080p-output shapes, and the engine.
step kernels 50 "$PY" bench/bench_kernels.py --dtype fp16 --reps 20 --out "$OUT_DIR/bench_kernels.json"
# The bench suite's GPU set (quick): whole engines against torch eager fp32, with memory.
step bench 100 "$PY" -m bench --device cuda --quick --out "$OUT_DIR/bench"
# OPTIONAL: continue a training run on the GPU. SRGAN_FAST_TRAIN_STATE is the run folder holding
# train_state.safetensors (device-independent: a CPU run continues here and back);
# SRGAN_FAST_TRAIN_ARGS the rest of the run's command: for the shipped SRGAN, the second of
# srgan_fast/weights/srgan_x4.json's "commands" without --resume, --out and --threads (kept there,
# not copied here, so the two cannot drift). Without the state, a fresh run folder with
# --init srgan_fast/weights/srgan_x4.safetensors starts from the shipped generator.
# It stops itself one minute before the budget ends (--time-limit) and saves into that folder;
# skipped when the state is not set.
if [ -n "${SRGAN_FAST_TRAIN_STATE:-}" ]; then
    LEFT_MIN=$(((BUDGET - ($(date +%s) - START)) / 60 - 1))
    # shellcheck disable=SC2086  # SRGAN_FAST_TRAIN_ARGS is a list of words on purpose
    step train 600 "$PY" -m srgan_fast.train --device cuda --resume --out "$SRGAN_FAST_TRAIN_STATE" \
        --time-limit "$((LEFT_MIN > 0 ? LEFT_MIN : 1))" ${SRGAN_FAST_TRAIN_ARGS:-}
elif [ "$DRY_RUN" = 1 ]; then
    echo "train      (optional: set SRGAN_FAST_TRAIN_STATE and SRGAN_FAST_TRAIN_ARGS to continue a training run)"
else
    printf '%-10s %-8s %6s  %s\n' train SKIP 0 "optional: SRGAN_FAST_TRAIN_STATE not set" >>"$SUMMARY"
fi

[ "$DRY_RUN" = 1 ] && exit 0
{
    echo
    echo "total $(($(date +%s) - START)) s of ${BUDGET} s"
    if [ -f "$OUT_DIR/doctor-cuda.json" ]; then
        echo
        "$PY" -m srgan_fast.doctor --show "$OUT_DIR/doctor-cuda.json" 2>&1
    fi
} >>"$SUMMARY"
# The archive is written beside OUT_DIR, not in it: a file growing inside the folder tar reads
# changes the folder, and GNU tar then exits 1 ("file changed as we read it") at random.
PACK=$(mktemp "$(dirname "$OUT_DIR")/.gpu_check.XXXXXX.tar.gz")
if tar -czf "$PACK" -C "$OUT_DIR" --exclude=gpu_check.tar.gz .; then
    mv "$PACK" "$OUT_DIR/gpu_check.tar.gz"
else
    rm -f "$PACK"
fi
cat "$SUMMARY"
exit "$FAILED"
