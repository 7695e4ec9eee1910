#!/usr/bin/env bash
# Runs ON the GPU machine, from the repository root, with .carry/ made by bench/gpu/pack.sh:
#   bash bench/gpu/run.sh            (device tool: carry [".carry"])
# Unpacks Node, loads the carried portable CUDA addon (or, if it will not load there, builds one
# with plain cmake from the carried sources and headers), runs the CUDA parity tests
# (test/cuda/*.test.ts) PARITY_RUNS times with fresh random seeds, then the GPU benchmarks, each
# against its PyTorch peer and each guarded (a failing or timed-out bench prints why and the
# script goes on):
#   matmul_bench    our CUDA matmul vs torch.matmul (TF32, FP32, FP64), MATMUL_SIZES (1024 2048 4096)
#   ops_bench       add, exp, gelu, sum, softmax, layerNorm (and a copy baseline) on a float32
#                   [8192, 8192] tensor: GB/s and fraction of the GPU's peak memory bandwidth
#   train_step_gpu  the TinyClip training step of bench/train_step.bench.ts, batch 256, float32
#                   with TF32 matmuls, vs PyTorch eager (TF32, and bf16 autocast for reference)
# and ends with ONE table: case | tessera | PyTorch | ratio | fraction of peak (also written to
# $LOGS/summary.md). The exit status is the parity tests' (0 pass, 1 fail); the benchmarks only
# report. The whole script keeps to RUN_BUDGET_S (default 560 s): each bench gets its own limit,
# cut to what is left of the budget, and is skipped when under 30 s remain.
# Options: PARITY_RUNS (2), SKIP_PARITY=1, SKIP_BENCH=1, MATMUL_SIZES, PYTHON (python3, with
# torch), GPU_PEAK_GBS (override the peak bandwidth lookup), OPS_ITERS, BENCH_ROUNDS,
# TRAIN_BATCH, TRAIN_STEPS, TRAIN_SAMPLES (see each bench's top comment).
# Logs go to $OUT (the device tool's folder that comes back) when set.
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
CARRY=$ROOT/.carry
LOGS=${OUT:-/tmp/tessera-gpu-logs}
RUNS=${PARITY_RUNS:-2}
START=$(date +%s)
BUDGET=${RUN_BUDGET_S:-560}
DEADLINE=$((START + BUDGET))
mkdir -p "$LOGS"

echo "== tessera CUDA parity and benchmarks: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
GPU=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | head -1)
echo "gpu: $GPU"
echo "os: $(. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME"), glibc $(ldd --version 2>/dev/null | head -1 | awk '{print $NF}'), nvcc $(nvcc --version 2>/dev/null | awk '/release/ {print $6}')"

[ -f "$CARRY/node.xz" ] || { echo "run: $CARRY/node.xz missing (run bench/gpu/pack.sh and carry .carry)"; exit 2; }
mkdir -p /tmp/tessera-node
xz -dc "$CARRY/node.xz" > /tmp/tessera-node/node && chmod +x /tmp/tessera-node/node
export PATH=/tmp/tessera-node:$PATH
echo "node: $(node --version)"

ADDON=$CARRY/tessera.node
if ldd "$ADDON" 2>/dev/null | grep -q 'libgomp.* not found'; then
  echo "run: libgomp missing here, using the carried one"
  export LD_LIBRARY_PATH=$CARRY/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
fi
probe() {
  node -e '
    const i = require(process.argv[1]).cudaInfo();
    console.log("cudaInfo:", JSON.stringify(i));
    process.exit(i.compiled && i.deviceCount > 0 ? 0 : 3);' "$1"
}
BUILT_HERE=no
if ! probe "$ADDON" 2>&1 | tee "$LOGS/probe.log"; then
  echo "run: the carried addon did not load or sees no device; building one here with cmake"
  BUILT_HERE=yes
  export NODE_PATH=$CARRY/node_modules
  # CMakeLists.txt asks `node -p "require('node-addon-api').include_dir"` from the source dir:
  # a relative path, so point it at the carried package through a link in the root.
  [ -e node_modules ] || ln -s .carry/node_modules node_modules
  cmake -S . -B /tmp/build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_JS_INC="$CARRY/node_modules/node-api-headers/include" \
    -DTESSERA_CUDA=ON -DTESSERA_PORTABLE=ON -DTESSERA_CUDA_ARCHS="${TESSERA_CUDA_ARCHS:-90}" \
    > "$LOGS/cmake.log" 2>&1 && cmake --build /tmp/build-gpu -j 16 >> "$LOGS/cmake.log" 2>&1 \
    || { tail -40 "$LOGS/cmake.log"; echo "run: fallback build failed"; exit 4; }
  ADDON=/tmp/build-gpu/tessera.node
  probe "$ADDON" || { echo "run: the addon built here does not see the GPU either"; exit 5; }
fi

export TESSERA_ADDON=$ADDON
cd "$CARRY"
declare -a RESULTS=()
FAILED=0
if [ "${SKIP_PARITY:-0}" = 1 ]; then
  echo "== parity: skipped (SKIP_PARITY=1)"
  RESULTS+=("parity skipped (SKIP_PARITY=1)")
else
  for i in $(seq 1 "$RUNS"); do
    echo "== parity run $i of $RUNS"
    start=$(date +%s%N)
    TESSERA_EXPECT_CUDA=1 node node_modules/uvu/bin.js dist/test/cuda '\.test\.js$' --no-color 2>&1 | tee "$LOGS/parity-$i.log"
    rc=${PIPESTATUS[0]}
    secs=$(awk -v a="$start" -v b="$(date +%s%N)" 'BEGIN { printf "%.1f", (b - a) / 1e9 }')
    seed=$(grep -o 'TEST_SEED=[0-9]*' "$LOGS/parity-$i.log" | head -1)
    totals=$(grep -E '^ *(Total|Passed|Skipped):' "$LOGS/parity-$i.log" | tr -s ' ' | tr '\n' ' ')
    RESULTS+=("run $i: exit $rc,$totals($seed, ${secs}s)")
    [ "$rc" -eq 0 ] || FAILED=1
  done
fi

# --- benchmarks: each guarded, each under a time limit cut to what is left of the budget ------
BENCH_STATUS=""
run_bench() {  # run_bench NAME LIMIT_S COMMAND...: log to $LOGS/NAME.log, status into BENCH_STATUS
  local name=$1 limit=$2
  shift 2
  local left=$((DEADLINE - $(date +%s) - 25))
  if [ "$left" -lt 30 ]; then
    echo "== bench $name: skipped, ${left}s left of the ${BUDGET}s budget"
    BENCH_STATUS+=" $name=skipped"
    return
  fi
  [ "$limit" -gt "$left" ] && limit=$left
  echo "== bench $name (limit ${limit}s): $*"
  local t0 rc
  t0=$(date +%s)
  timeout -k 10 "$limit" "$@" 2>&1 | tee "$LOGS/$name.log"
  rc=${PIPESTATUS[0]}
  if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
    echo "bench $name: timed out after ${limit}s"
  elif [ "$rc" -ne 0 ]; then
    echo "bench $name: failed (exit $rc): $(grep -v '^\s*$' "$LOGS/$name.log" | tail -1)"
  fi
  echo "bench $name: $(($(date +%s) - t0))s"
  BENCH_STATUS+=" $name=$rc"
}

if [ "${SKIP_BENCH:-0}" = 1 ]; then
  echo "== benchmarks: skipped (SKIP_BENCH=1)"
else
  GPU_NAME=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
  export GPU_NAME
  export PYTHON=${PYTHON:-python3}
  if [ -d "$CARRY/bench/peers" ]; then export TESSERA_PEERS_DIR=$CARRY/bench/peers; else export TESSERA_PEERS_DIR=$ROOT/bench/peers; fi
  echo "== benchmarks on ${GPU_NAME:-unknown GPU}; peer: $("$PYTHON" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())' 2>&1 | tail -1)"
  rm -f "$LOGS/ops.json" "$LOGS/train.json"
  # shellcheck disable=SC2086
  run_bench matmul "${MATMUL_LIMIT_S:-180}" node dist/bench/gpu/matmul_bench.js ${MATMUL_SIZES:-1024 2048 4096}
  BENCH_JSON=$LOGS/ops.json run_bench ops "${OPS_LIMIT_S:-150}" node dist/bench/gpu/ops_bench.js
  BENCH_JSON=$LOGS/train.json run_bench train "${TRAIN_LIMIT_S:-180}" node dist/bench/gpu/train_step_gpu.js
fi

echo
echo "== summary"
echo "date:   $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "gpu:    $GPU"
echo "addon:  $ADDON (built here: $BUILT_HERE)"
grep -h 'cudaInfo:' "$LOGS/probe.log" | head -1
for r in "${RESULTS[@]}"; do echo "$r"; done
if [ "${SKIP_BENCH:-0}" != 1 ]; then
  echo
  if ! GPU_NAME="${GPU_NAME:-}" BENCH_STATUS="$BENCH_STATUS" LOGS="$LOGS" "$PYTHON" - <<'PYEOF' 2>&1; then echo "run: the benchmark table could not be built (see $LOGS/*.log)"; fi
import json, os, re, time

logs = os.environ["LOGS"]
gpu = os.environ.get("GPU_NAME", "").strip() or "unknown GPU (nvidia-smi gave no name)"
status = dict(kv.split("=", 1) for kv in os.environ.get("BENCH_STATUS", "").split() if "=" in kv)

# Dense peak TFLOP/s for the matmul rows (tf32 / fp32 SIMT / fp64 tensor core), first match wins.
MM_PEAKS = [
    (r"H200|GH200", {"tf32": 494.7, "fp32": 66.9, "float64": 66.9}),
    (r"H100.*PCIe", {"tf32": 378.0, "fp32": 51.2, "float64": 51.2}),
    (r"H100.*NVL", {"tf32": 417.5, "fp32": 60.0, "float64": 60.0}),
    (r"H100", {"tf32": 494.7, "fp32": 66.9, "float64": 66.9}),
    (r"A100", {"tf32": 156.0, "fp32": 19.5, "float64": 19.5}),
]
mm_peak = next((p for pat, p in MM_PEAKS if re.search(pat, gpu, re.I)), None)

rows, notes = [], []

def num(s):
    try:
        return float(s)
    except ValueError:
        return None

def pct(v):
    return "-" if v is None else f"{100 * v:.0f}%"

def failed(name, what):
    st = status.get(name)
    if st is None:
        return
    if st == "skipped":
        rows.append((what, "skipped (time budget)", "-", "-", "-"))
    elif st != "0":
        why = "timed out" if st in ("124", "137") else f"exit {st}"
        log = os.path.join(logs, name + ".log")
        last = ""
        if os.path.exists(log):
            lines = [l.strip() for l in open(log, errors="replace") if l.strip()]
            last = lines[-1] if lines else ""
        notes.append(f"{what}: {why}: {last[:200]}")
        return why
    return None

# matmul: parse matmul_bench's table (TFLOP/s; its ratio column is ours/torch).
mm_log = os.path.join(logs, "matmul.log")
why = failed("matmul", "matmul")
if os.path.exists(mm_log):
    for line in open(mm_log, errors="replace"):
        m = re.match(r"^(\d+\^3 .+?)\s+(\S+)\s+(\S+)\s+(\S+)\s*$", line.rstrip())
        if not m:
            continue
        case, ours, theirs, ratio = m.group(1), num(m.group(2)), num(m.group(3)), num(m.group(4))
        mode = "tf32" if "tf32" in case else "fp32" if "fp32" in case else "float64"
        peak = mm_peak[mode] if mm_peak else None
        frac = f"{pct(ours / peak if ours is not None and peak else None)} ({pct(theirs / peak if theirs is not None and peak else None)})"
        rows.append((f"matmul {case}", f"{ours:.1f} TFLOP/s" if ours is not None else "-",
                     f"{theirs:.1f} TFLOP/s" if theirs is not None else "-",
                     f"{ratio:.2f}" if ratio is not None else "-", frac))
if why and not any(r[0].startswith("matmul") for r in rows):
    rows.append(("matmul", f"FAILED ({why})", "-", "-", "-"))

# ops and train: the JSON rows the benches wrote.
for name, file in (("ops", "ops.json"), ("train", "train.json")):
    why = failed(name, name)
    path = os.path.join(logs, file)
    if not os.path.exists(path):
        if status.get(name) not in (None, "skipped"):
            rows.append((name, f"FAILED ({why or 'no results'})", "-", "-", "-"))
        continue
    j = json.load(open(path))
    for r in j["rows"]:
        u = r["unit"]
        d = 0 if u == "GB/s" else 2
        fmt = lambda v: "-" if v is None else f"{v:.{d}f} {u}"
        frac = "-" if r.get("fraction") is None and r.get("peerFraction") is None else f"{pct(r.get('fraction'))} ({pct(r.get('peerFraction'))})"
        rows.append((r["case"], fmt(r["ours"]), fmt(r["peer"]), "-" if r["ratio"] is None else f"{r['ratio']:.2f}", frac))
        if r.get("note"):
            notes.append(f"{r['case']}: {r['note']}")
    if name == "ops":
        pk = j.get("peak", {})
        notes.append(f"ops: bandwidth peak {pk.get('gbs')} GB/s ({pk.get('label')}); {j.get('torch')}")
    else:
        notes.append(f"train: {j.get('model')}; tessera float32 with TF32 matmuls (no bf16 dtype yet); {j.get('torch')}")
if mm_peak:
    notes.append(f"matmul: peak TFLOP/s used: TF32 {mm_peak['tf32']}, FP32 {mm_peak['fp32']}, FP64 (tensor core) {mm_peak['float64']}")

out = [f"### tessera vs PyTorch on {gpu}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}", "",
       "| case | tessera | PyTorch | ratio | fraction of peak |", "|---|---:|---:|---:|---:|"]
out += [f"| {' | '.join(r)} |" for r in rows]
out += ["", "ratio = tessera / PyTorch throughput (= PyTorch time / tessera time; > 1: tessera faster).",
        "fraction of peak = tessera's (PyTorch's) share of the GPU's peak memory bandwidth (ops) or dense TFLOP/s (matmul)."]
out += [f"- {n}" for n in notes]
text = "\n".join(out)
print(text)
with open(os.path.join(logs, "summary.md"), "w") as f:
    f.write(text + "\n")
PYEOF
fi
echo "total: $(($(date +%s) - START))s"
if [ "$FAILED" -eq 0 ]; then echo "RESULT: PASS"; else echo "RESULT: FAIL"; fi
exit "$FAILED"
