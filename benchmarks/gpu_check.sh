#!/usr/bin/env bash
# The prepared check for a session lent a CUDA machine (an H200): the kernel tests on CUDA
# (tests/test_kernels_gpu.py compiles and runs the Triton kernels there, and
# tests/test_kernels_torch_ops.py), then `rnnkit bench --device cuda` in float32 (every
# workload) and bfloat16 (plain workloads only). From the repository root, $OUT set:
#
#   bash benchmarks/gpu_check.sh                 # elsewhere: OUT=$(mktemp -d) bash ...
#
# Writes under $OUT: env.txt, gpu_tests.log, bench_cuda_fp32.log, bench_cuda.json,
# bench_cuda_bf16.log and bf16/bench_cuda.json. Expected time (an estimate: nothing has run on
# a GPU yet, and most of it is Triton compiling each kernel variant once): tests 1-3 min,
# float32 bench 1-3 min, bfloat16 bench 1-2 min. The steps share one deadline, GPU_CHECK_SECONDS
# (default 450 s, so the whole script ends within 8 minutes): the tests get at most 200 s, the
# float32 bench what is left but 100 s, the bfloat16 bench the rest; a step that runs out is
# killed and counted as failed (exit 124), and its log keeps what it printed. Every step runs
# whatever happened before it; the exit code is 1 if any step failed. PYTHON overrides python3.
set -uo pipefail
: "${OUT:?set OUT to the folder the results go to}"
PYTHON=${PYTHON:-python3}
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
budget=${GPU_CHECK_SECONDS:-450}
failed=()

left() { echo $((budget - SECONDS)); }

# step NAME SECONDS LOG COMMAND...: runs COMMAND for at most SECONDS (10 at least), into LOG.
step() {
    local name=$1 seconds=$(($2 > 10 ? $2 : 10)) log=$3
    shift 3
    echo "== $name (at most ${seconds} s)"
    timeout -k 10 "$seconds" "$@" 2>&1 | tee "$log"
    local status=${PIPESTATUS[0]}
    [ "$status" -eq 0 ] || failed+=("$name (exit $status)")
}

# bench_summary DTYPE LOG JSON: how many timings LOG holds, and whether JSON was written.
bench_summary() {
    local rows json=$3
    rows=$(grep -cE '^  (rnnkit_auto|rnnkit_triton|torch_nn) ' "$2")
    [ -f "$json" ] || json="no json written"
    echo "bench $1: $rows timings ($2; $json)"
}

mkdir -p "$OUT/bf16"
echo "== environment"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,memory.total --format=csv 2>&1 |
    tee "$OUT/env.txt" || failed+=(nvidia-smi)
"$PYTHON" -c 'import torch, triton; print("torch", torch.__version__, "CUDA", torch.version.cuda,
    "available", torch.cuda.is_available(), "triton", triton.__version__)' 2>&1 |
    tee -a "$OUT/env.txt" || failed+=(versions)
# -o addopts="": the project's "-q" and this one would make -qq, which drops the counts line.
step tests 200 "$OUT/gpu_tests.log" \
    "$PYTHON" -m pytest -q -x -p no:cacheprovider -o addopts="" \
    tests/test_kernels_gpu.py tests/test_kernels_torch_ops.py
step "bench float32" "$(($(left) - 100))" "$OUT/bench_cuda_fp32.log" \
    "$PYTHON" -m rnnkit bench --device cuda --repeats 10 --out "$OUT"
step "bench bfloat16" "$(($(left) - 5))" "$OUT/bench_cuda_bf16.log" \
    "$PYTHON" -m rnnkit bench --device cuda --repeats 10 --dtype bfloat16 --no-options \
    --out "$OUT/bf16"

echo "== summary ($SECONDS s)"
cat "$OUT/env.txt"
counts=$(grep -E '[0-9]+ (passed|failed|errors?|skipped)' "$OUT/gpu_tests.log" | tail -n 1)
echo "tests: ${counts:-no pytest counts line} ($OUT/gpu_tests.log)"
bench_summary float32 "$OUT/bench_cuda_fp32.log" "$OUT/bench_cuda.json"
bench_summary bfloat16 "$OUT/bench_cuda_bf16.log" "$OUT/bf16/bench_cuda.json"
if [ ${#failed[@]} -gt 0 ]; then
    printf 'FAILED: %s\n' "${failed[@]}"
    exit 1
fi
echo "all steps passed"
