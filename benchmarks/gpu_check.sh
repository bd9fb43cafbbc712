#!/usr/bin/env bash
# The GPU check: on a machine with CuPy and an NVIDIA GPU, in one command,
#   1. the test suite's GPU tests (every op test on the "cuda" device, and those marked gpu),
#   2. the step benchmark against PyTorch CUDA (benchmarks/run.py --device cuda; tinydm alone if
#      this Python has no PyTorch with CUDA),
#   3. a 200-iteration ResNet-56 CIFAR-10 run on the GPU (examples/cifar_resnet.py, no noise,
#      CCE): on the real data if DATA_DIR holds cifar-10-batches-py/, else on synthetic images,
# and one report, report.md, in the output folder beside each part's own files.
#
#   bash benchmarks/gpu_check.sh [OUT_DIR]        # default: benchmarks/results/gpu-check-<date>
#
# Environment: PYTHON (default python), DATA_DIR (CIFAR-10's folder), ITERATIONS (default 200).
# Exits 2 at once without CuPy or a usable GPU; otherwise runs every part and exits 1 if any
# failed (the report says which).
set -uo pipefail
if [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]; then
    sed -n '2,/^set /p' "$0" | sed '$d; s/^# \{0,1\}//'
    exit 0
fi
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
OUT=${1:-benchmarks/results/gpu-check-$(date +%Y%m%d-%H%M%S)}
ITERATIONS=${ITERATIONS:-200}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p "$OUT"

if ! "$PY" - > "$OUT/gpu.txt" 2>&1 <<'EOF'
import cupy
from tinydm import backend
backend._check_device("cuda")  # CuPy imports and a device answers
props = cupy.cuda.runtime.getDeviceProperties(0)
print(f"GPU: {props['name'].decode()}, {props['totalGlobalMem'] / 2**30:.0f} GiB; "
      f"CuPy {cupy.__version__}, CUDA runtime {cupy.cuda.runtime.runtimeGetVersion()}, "
      f"driver {cupy.cuda.runtime.driverGetVersion()}")
EOF
then
    echo "gpu_check: no usable GPU: CuPy and an NVIDIA GPU are needed" \
         "(pip install -e \".[gpu]\")." >&2
    cat "$OUT/gpu.txt" >&2
    exit 2
fi
cat "$OUT/gpu.txt"
failed=()

echo "== 1. tests on the cuda device"
"$PY" -m pytest -q -p no:cacheprovider -k "cuda or gpu" 2>&1 | tee "$OUT/tests.txt"
[ "${PIPESTATUS[0]}" -eq 0 ] || failed+=("tests")

echo "== 2. step benchmark against PyTorch CUDA"
torch_flag=()
if ! "$PY" -c "import torch; assert torch.cuda.is_available()" 2>/dev/null; then
    torch_flag=(--no-torch)
    echo "no PyTorch with CUDA in $PY: tinydm alone" | tee "$OUT/benchmark-note.txt"
fi
"$PY" benchmarks/run.py --device cuda --threads 1 --rounds 5 "${torch_flag[@]}" \
    --out "$OUT" --tag benchmark 2>&1 | tee "$OUT/benchmark.txt"
[ "${PIPESTATUS[0]}" -eq 0 ] || failed+=("benchmark")

echo "== 3. ResNet-56, $ITERATIONS iterations"
if [ -n "${DATA_DIR:-}" ] && [ -d "$DATA_DIR/cifar-10-batches-py" ]; then
    data=(--dataset cifar10 --data-dir "$DATA_DIR")
else
    data=(--dataset synthetic)
fi
"$PY" examples/cifar_resnet.py --device cuda --depth 56 --iterations "$ITERATIONS" \
    --eval-every "$ITERATIONS" --log-every 20 --eval-train-subset 2000 --noise none \
    --loss cce "${data[@]}" \
    --out "$OUT/cifar" --overwrite --no-progress --no-figures 2>&1 | tee "$OUT/cifar.txt"
[ "${PIPESTATUS[0]}" -eq 0 ] || failed+=("cifar")

"$PY" - "$OUT" "${data[*]}" "${failed[*]:-}" <<'EOF'
import json, os, subprocess, sys
out, data, failed = sys.argv[1], sys.argv[2], sys.argv[3].split()

def read(name, last=None):
    path = os.path.join(out, name)
    if not os.path.exists(path):
        return "(missing)"
    lines = open(path).read().rstrip().splitlines()
    return "\n".join(lines[-last:] if last else lines)

commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                        text=True).stdout.strip()
parts = ["# tinydm GPU check", "", f"- {read('gpu.txt')}", f"- commit {commit or 'unknown'}",
         f"- failed parts: {', '.join(failed) or 'none'}", "",
         "## 1. Tests on the cuda device", "", "```", read("tests.txt", last=15), "```", "",
         "## 2. Step benchmark", ""]
bench = os.path.join(out, "benchmark.md")
parts += [open(bench).read().replace("\n## ", "\n### ").replace("# tinydm benchmark", "### Run", 1)
          if os.path.exists(bench) else "```\n" + read("benchmark.txt", last=30) + "\n```"]
parts += ["", f"## 3. ResNet-56 CIFAR run ({data})", ""]
results = os.path.join(out, "cifar", "results.json")
if os.path.exists(results):
    r = json.load(open(results))
    s, t = r["summary"], r["timing"]
    parts += [f"- status {r['status']}; step {t['step_ms']:.1f} ms on average "
              f"(evaluation excluded), wall {t['wall_seconds']:.0f} s",
              f"- test accuracy at the end {s['test_accuracy_final']:.4f}"]
parts += ["", "```", read("cifar.txt", last=15), "```"]
text = "\n".join(parts) + "\n"
tmp = os.path.join(out, "report.md.tmp")
with open(tmp, "w") as f:
    f.write(text)
os.replace(tmp, os.path.join(out, "report.md"))
print(f"report: {os.path.join(out, 'report.md')}")
EOF

if [ "${#failed[@]}" -gt 0 ]; then
    echo "gpu_check: failed: ${failed[*]} (see $OUT/report.md)" >&2
    exit 1
fi
