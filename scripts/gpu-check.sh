#!/usr/bin/env bash
# The checks that need an NVIDIA GPU, in one short run: the device, the CUDA tests (tests/cuda)
# and the training-speed benchmark on the GPU.
#
#   scripts/gpu-check.sh [OUT]            OUT: the folder for the results (default ./gpu-check)
#
# Each step writes its output to OUT/<step>.log and its exit status to OUT/<step>.status, and
# OUT/summary.txt lists the steps; a failed step does not stop the ones after it, and the script
# exits 1 when any step failed. Every step runs under a time limit, and the limits are cut to
# keep the whole run within GPU_CHECK_BUDGET seconds (default 450).
#
# trainwell runs from its source tree (PYTHONPATH=src), not installed, so the machine's own
# torch is used. Dependencies the machine lacks may come as wheels in a .whl folder at the
# repository root: they are installed without an index and without their own dependencies into
# GPU_CHECK_SITE (default: a new temporary folder), which goes on PYTHONPATH after src.
set -uo pipefail

cd "$(dirname "$0")/.." || exit 2
root=$PWD
out=${1:-gpu-check}
mkdir -p "$out" && out=$(cd "$out" && pwd) || exit 2
export PYTHON=${PYTHON:-python3}
export GPU_CHECK_SITE=${GPU_CHECK_SITE:-$(mktemp -d)}
budget=${GPU_CHECK_BUDGET:-450}
failed=()
: >"$out/summary.txt"

# step NAME SECONDS COMMAND...: COMMAND with its output in OUT/NAME.log, within SECONDS (or
# what is left of the budget), its status noted
step() {
    local name=$1 limit=$2 start=$SECONDS status note=""
    shift 2
    local left=$((budget - SECONDS))
    if [ "$left" -lt 15 ]; then
        echo "== $name: skipped, the time budget ($budget s) is spent"
        echo "$name: skipped (time budget spent)" >>"$out/summary.txt"
        failed+=("$name")
        return
    fi
    [ "$limit" -le "$left" ] || limit=$left
    echo "== $name (at most $limit s)"
    timeout --kill-after=10 "$limit" "$@" >"$out/$name.log" 2>&1
    status=$?
    echo "$status" >"$out/$name.status"
    if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
        note=" (stopped at its time limit)"
    fi
    tail -n 25 "$out/$name.log" | sed 's/^/   /'
    local line="$name: exit $status after $((SECONDS - start)) s$note"
    echo "   $line"
    echo "$line" >>"$out/summary.txt"
    [ "$status" -eq 0 ] || failed+=("$name")
}

device() {
    "$PYTHON" -m pip list >"$out/pip-list.txt" 2>&1
    nvidia-smi
    nvidia-smi -L
    "$PYTHON" -c '
import platform, sys
import torch
print("python", sys.version.split()[0], platform.platform())
print("torch", torch.__version__, "cuda", torch.version.cuda,
      "cudnn", torch.backends.cudnn.version())
print("cuda available:", torch.cuda.is_available(), "devices:", torch.cuda.device_count())
for i in range(torch.cuda.device_count()):
    p = torch.cuda.get_device_properties(i)
    print(f"cuda:{i}", torch.cuda.get_device_name(i), f"capability {p.major}.{p.minor}",
          f"{p.total_memory / 2**30:.1f} GiB")
print("bf16:", torch.cuda.is_available() and torch.cuda.is_bf16_supported(),
      "nccl:", torch.distributed.is_nccl_available())
assert torch.cuda.is_available(), "torch sees no CUDA device"
'
}

wheels() {
    local pip=("$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir
               --upgrade --target "$GPU_CHECK_SITE")
    local w status=0
    "${pip[@]}" .whl/*.whl && ls "$GPU_CHECK_SITE" && return 0
    echo "installing the wheels together failed; one at a time:"
    for w in .whl/*.whl; do
        "${pip[@]}" "$w" || { echo "failed: $w"; status=1; }
    done
    return "$status"
}

imports() {
    "$PYTHON" -c '
import importlib
for name in ["torch", "numpy", "scipy", "sklearn", "pandas", "pyarrow", "PIL", "safetensors",
             "matplotlib", "tqdm", "pydantic", "tomli_w", "optuna", "sqlalchemy", "alembic",
             "pytest", "trainwell", "trainwell.api", "trainwell.search.bayes",
             "trainwell.tune.estimator"]:
    module = importlib.import_module(name)
    version, path = getattr(module, "__version__", ""), getattr(module, "__file__", "")
    print(f"{name:26} {version:12} {path}")
'
}

cuda_tests() {
    local per_test=()
    if "$PYTHON" -c "import pytest_timeout" 2>/dev/null; then
        per_test=(--timeout=150)
    fi
    "$PYTHON" -m pytest tests/cuda -q -p no:cacheprovider -rA --durations=0 \
        --junitxml="$out/tests-cuda.xml" "${per_test[@]}"
}

export -f device wheels imports cuda_tests
export out

step device 45 bash -c device
site_path=""
if [ -d .whl ] && compgen -G ".whl/*.whl" >/dev/null; then
    step wheels 60 bash -c wheels
    site_path=":$GPU_CHECK_SITE"
fi
export PYTHONPATH="$root/src$site_path${PYTHONPATH:+:$PYTHONPATH}"
echo "PYTHONPATH=$PYTHONPATH" | tee -a "$out/summary.txt"
step imports 45 bash -c imports
step tests 210 bash -c cuda_tests
for size in small large; do
    step "benchmark-$size" 75 "$PYTHON" benchmarks/train_speed.py --device cuda --reps 1 \
        --sizes "$size" --contestants tensor,trainwell,trainwell-bf16
done

echo "== done in $SECONDS s; results in $out"
if [ "${#failed[@]}" -gt 0 ]; then
    echo "failed: ${failed[*]}" | tee -a "$out/summary.txt"
    exit 1
fi
echo "all steps passed" | tee -a "$out/summary.txt"
