#!/usr/bin/env bash
# The whole GPU proof in one command: install (no network), the CUDA tests, the kernel,
# end-to-end and throughput benchmarks, and the machine's description, all written under
# OUT_DIR (logs/ holds one log per step, summary.md the tables and each step's status).
#
# Usage: bench/gpu_check.sh OUT_DIR [--tune] [--skip STEP,...] [--dry-run]
#   --tune     also sweep the Triton launch configurations (bench/tune_triton.py)
#   --skip     leave out the named steps (e.g. --skip end-to-end,throughput)
#   --dry-run  on a machine without a GPU: run every step that can run there (the install is
#              checked, every kernel configuration is compiled for sm_90, the test files are
#              collected, each script parses its arguments and refuses cleanly without CUDA)
# Runs on the GPU machine's stack as it is (python3 with torch, triton, transformers,
# torchvision, pytest already installed); nothing is downloaded. Exit status: the number of
# failed steps (0: all passed).
set -uo pipefail
cd "$(dirname "$0")/.."

OUT_DIR=""
TUNE=0
DRY_RUN=0
SKIP=","
while [[ $# -gt 0 ]]; do
    argument="$1"
    shift
    case "$argument" in
        --tune) TUNE=1 ;;
        --skip) SKIP=",${1:-},"; shift ;;
        --dry-run) DRY_RUN=1 ;;
        -*) echo "gpu_check.sh: unknown option $argument" >&2; exit 2 ;;
        *) OUT_DIR="$argument" ;;
    esac
done
if [[ -z "$OUT_DIR" ]]; then
    echo "usage: bench/gpu_check.sh OUT_DIR [--tune] [--skip STEP,...] [--dry-run]" >&2
    exit 2
fi
PY="${PYTHON:-python3}"
mkdir -p "$OUT_DIR/logs"
OUT_DIR="$(cd "$OUT_DIR" && pwd)"
SUMMARY="$OUT_DIR/summary.md"
FAILED=0
export PYTHONUNBUFFERED=1
unset TRITON_INTERPRET

# step NAME TIMEOUT_S COMMAND...: run one step, log it, record its status and time.
step() {
    local name="$1" limit="$2"
    shift 2
    if [[ "$SKIP" == *",$name,"* ]]; then
        echo "| $name | skipped (--skip) | |" >>"$OUT_DIR/steps.md"
        return
    fi
    local start=$SECONDS status
    echo "== $name: $*" | tee -a "$OUT_DIR/logs/steps.log"
    timeout "$limit" "$@" >"$OUT_DIR/logs/$name.log" 2>&1
    status=$?
    tail -n 25 "$OUT_DIR/logs/$name.log"
    local verdict="ok"
    if [[ $status -ne 0 ]]; then
        verdict="FAILED (exit $status)"
        FAILED=$((FAILED + 1))
    fi
    echo "| $name | $verdict | $((SECONDS - start)) s |" >>"$OUT_DIR/steps.md"
    echo "== $name: $verdict in $((SECONDS - start)) s" | tee -a "$OUT_DIR/logs/steps.log"
}

: >"$OUT_DIR/steps.md"
step environment 60 bash -c "date -u; nvidia-smi || true; $PY -c 'import platform, torch, triton, transformers, torchvision, numpy, PIL; print(platform.platform(), platform.python_version()); print(\"torch\", torch.__version__, \"cuda\", torch.version.cuda, \"available\", torch.cuda.is_available()); print(\"triton\", triton.__version__, \"transformers\", transformers.__version__, \"torchvision\", torchvision.__version__, \"numpy\", numpy.__version__, \"pillow\", PIL.__version__); print(torch.cuda.get_device_name() if torch.cuda.is_available() else \"no GPU\")'"

KERNEL_TESTS=(tests/test_triton_cuda.py tests/test_triton_kernels.py tests/test_triton_preprocess.py
    tests/test_staging_cuda.py tests/test_compact.py)
CUDA_TESTS=(tests/test_io_gpu_decode.py tests/test_video.py tests/test_model_e2e.py tests/test_parallel_decode.py)
# Ray is an optional extra: its GPU-actor test (marked slow) runs where ray is installed.
RAY_TESTS=(tests/test_ray.py)
BENCHES=(bench_transfer bench_triton_kernels profile_triton tune_triton bench_gpu bench_throughput)

if [[ $DRY_RUN -eq 1 ]]; then
    # CPU only: the install must already be there; the kernels must compile for sm_90; the tests
    # must collect; every script must parse its arguments, import what it needs and refuse
    # cleanly (exit 2, one line) without CUDA.
    step install 60 "$PY" -c "import vlfast, vlfast._C, vlfast.kernels; print(vlfast.__file__)"
    step aot-sm90 300 "$PY" bench/aot_compile.py
    step tests-collect 120 "$PY" -m pytest -q --collect-only -p no:cacheprovider "${KERNEL_TESTS[@]}" "${CUDA_TESTS[@]}"
    for script in "${BENCHES[@]}"; do
        step "dry-$script" 120 bash -c "$PY bench/$script.py; test \$? -eq 2"
    done
else
    step install 600 "$PY" -m pip install --no-build-isolation --no-deps --no-index -e .
    step tests-kernels 420 "$PY" -m pytest -q -p no:cacheprovider -rs --junitxml="$OUT_DIR/logs/tests-kernels.xml" \
        "${KERNEL_TESTS[@]}"
    step tests-cuda 300 "$PY" -m pytest -q -p no:cacheprovider -rs -m cuda --junitxml="$OUT_DIR/logs/tests-cuda.xml" \
        "${CUDA_TESTS[@]}"
    if "$PY" -c "import ray" 2>/dev/null; then
        step tests-ray 300 "$PY" -m pytest -q -p no:cacheprovider -rs --slow -m cuda \
            --junitxml="$OUT_DIR/logs/tests-ray.xml" "${RAY_TESTS[@]}"
    else
        echo "| tests-ray | skipped (ray is not installed) | |" >>"$OUT_DIR/steps.md"
    fi
    step transfer 120 "$PY" bench/bench_transfer.py
    step kernels-bf16 300 "$PY" bench/bench_triton_kernels.py --dtype bfloat16 --backend torchvision \
        --csv "$OUT_DIR/triton_kernels.csv"
    step kernels-fp32 300 "$PY" bench/bench_triton_kernels.py --dtype float32 --backend torchvision \
        --csv "$OUT_DIR/triton_kernels.csv"
    step passes 300 bash -c "$PY bench/profile_triton.py --case 1920x1080 && $PY bench/profile_triton.py --case 3840x2160"
    if [[ $TUNE -eq 1 ]]; then
        step tune 300 "$PY" bench/tune_triton.py --csv "$OUT_DIR/tune_triton.csv"
    fi
    step end-to-end 420 "$PY" bench/bench_gpu.py --with-cpu --repeats 9 --out "$OUT_DIR/end_to_end"
    step throughput 300 "$PY" bench/bench_throughput.py --csv "$OUT_DIR/throughput.csv"
fi

{
    echo "# GPU check $(date -u +%FT%TZ)"
    echo
    echo "| step | status | time |"
    echo "| --- | --- | --- |"
    cat "$OUT_DIR/steps.md"
    for name in environment aot-sm90 transfer kernels-bf16 kernels-fp32 passes tune end-to-end throughput; do
        if [[ -f "$OUT_DIR/logs/$name.log" ]]; then
            echo
            echo "## $name"
            echo
            echo '```'
            tail -n 40 "$OUT_DIR/logs/$name.log"
            echo '```'
        fi
    done
} >"$SUMMARY"
rm -f "$OUT_DIR/steps.md"
echo "gpu_check: $FAILED failed step(s); summary in $SUMMARY"
exit "$FAILED"
