#!/usr/bin/env bash
# Runs ON the GPU machine, from the repository root, with .carry/ made by bench/gpu/pack.sh:
#   bash bench/gpu/run.sh            (device tool: carry [".carry"])
# Unpacks Node, loads the carried portable CUDA addon (or, if it will not load there, builds one
# with plain cmake from the carried sources and headers), runs the CUDA parity tests
# (test/cuda/*.test.ts) PARITY_RUNS times with fresh random seeds, and prints a summary.
# Logs go to $OUT (the device tool's folder that comes back) when set.
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
CARRY=$ROOT/.carry
LOGS=${OUT:-/tmp/tessera-gpu-logs}
RUNS=${PARITY_RUNS:-2}
mkdir -p "$LOGS"

echo "== tessera CUDA parity: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
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

export TESSERA_ADDON=$ADDON TESSERA_EXPECT_CUDA=1
cd "$CARRY"
declare -a RESULTS=()
FAILED=0
for i in $(seq 1 "$RUNS"); do
  echo "== parity run $i of $RUNS"
  start=$(date +%s%N)
  node node_modules/uvu/bin.js dist/test/cuda '\.test\.js$' --no-color 2>&1 | tee "$LOGS/parity-$i.log"
  rc=${PIPESTATUS[0]}
  secs=$(awk -v a="$start" -v b="$(date +%s%N)" 'BEGIN { printf "%.1f", (b - a) / 1e9 }')
  seed=$(grep -o 'TEST_SEED=[0-9]*' "$LOGS/parity-$i.log" | head -1)
  totals=$(grep -E '^ *(Total|Passed|Skipped):' "$LOGS/parity-$i.log" | tr -s ' ' | tr '\n' ' ')
  RESULTS+=("run $i: exit $rc,$totals($seed, ${secs}s)")
  [ "$rc" -eq 0 ] || FAILED=1
done

echo
echo "== summary"
echo "date:   $(date -u '+%Y-%m-%d')"
echo "gpu:    $GPU"
echo "addon:  $ADDON (built here: $BUILT_HERE)"
grep -h 'cudaInfo:' "$LOGS/probe.log" | head -1
for r in "${RESULTS[@]}"; do echo "$r"; done
if [ "$FAILED" -eq 0 ]; then echo "RESULT: PASS"; else echo "RESULT: FAIL"; fi
exit "$FAILED"
