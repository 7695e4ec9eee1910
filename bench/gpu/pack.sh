#!/usr/bin/env bash
# Builds .carry/ (git-ignored), everything bench/gpu/run.sh needs on a GPU machine that has no
# Node and no network:
#   .carry/node.xz         this machine's Node binary, xz-compressed
#   .carry/tessera.node    a portable CUDA build of the addon (no -march=native; cudart static)
#   .carry/dist/           the compiled JS (lib, test, bench: bench/gpu/*.js and what they import)
#   .carry/bench/peers/    the PyTorch peers the GPU benches spawn (torch_gpu_ops.py,
#                          torch_gpu_train_step.py and the torch_train_step.py it imports)
#   .carry/node_modules/   the runtime closure of uvu, bindings and tinybench (bench/harness.js,
#                          imported through bench/train_step.bench.js), plus node-addon-api and
#                          node-api-headers (headers only) for run.sh's fallback build there
#   .carry/lib/            libgomp.so.1, used only if the GPU machine lacks it
#
#   bench/gpu/pack.sh                         all default CUDA architectures (several minutes)
#   TESSERA_CUDA_ARCHS=90 bench/gpu/pack.sh   sm_90 only (H100/H200), to iterate faster
#
# Then, with the device tool: run bash bench/gpu/run.sh with carry [".carry"] (parity tests, then
# the GPU benchmarks; see run.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
CARRY=.carry
mkdir -p "$CARRY"

# 1. Node (the GPU machine has none). Re-compressed only when the binary is newer.
NODE_BIN=$(command -v node)
if [ ! -s "$CARRY/node.xz" ] || [ "$NODE_BIN" -nt "$CARRY/node.xz" ]; then
  echo "pack: compressing $NODE_BIN ($(node --version))"
  xz -T2 -6 -c "$NODE_BIN" > "$CARRY/node.xz.tmp" && mv "$CARRY/node.xz.tmp" "$CARRY/node.xz"
fi

# 2. The portable CUDA addon. cmake-js configures only when build-gpu has no cache, so start
#    afresh whenever the requested architectures differ from the last build's.
ARCHS="${TESSERA_CUDA_ARCHS:-default}"
STAMP=build-gpu/.tessera-archs
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$ARCHS" ]; then rm -rf build-gpu; fi
echo "pack: building the portable CUDA addon (archs: $ARCHS)"
if [ "$ARCHS" = default ]; then
  env -u TESSERA_CUDA_ARCHS TESSERA_PORTABLE=ON TESSERA_CUDA=ON npx cmake-js compile --out build-gpu
else
  TESSERA_PORTABLE=ON TESSERA_CUDA=ON TESSERA_CUDA_ARCHS="$ARCHS" npx cmake-js compile --out build-gpu
fi
echo "$ARCHS" > "$STAMP"
cp build-gpu/Release/tessera.node "$CARRY/tessera.node"
# It must load here and report CUDA compiled in (no GPU is needed for that).
node -e "const i=require(process.argv[1]).cudaInfo(); if(!i.compiled){console.error('pack: addon built without CUDA');process.exit(1)} console.log('pack: addon ok, cudaInfo here:', JSON.stringify(i))" "$PWD/$CARRY/tessera.node"

# 3. The compiled JS. tsc emits even when files elsewhere in the project have type errors; the
#    ones this run needs are checked below.
rm -rf "$CARRY/dist"
if ! npx tsc -p . --outDir "$CARRY/dist"; then echo "pack: tsc reported type errors (output emitted anyway)"; fi
for f in lib/index.js lib/backend.js test/cuda/parity.test.js test/cuda/info.test.js test/helpers/check.js \
         bench/gpu/matmul_bench.js bench/gpu/ops_bench.js bench/gpu/train_step_gpu.js \
         bench/train_step.bench.js bench/harness.js bench/table.js; do
  [ -f "$CARRY/dist/$f" ] || { echo "pack: missing $CARRY/dist/$f"; exit 1; }
done
find "$CARRY/dist" \( -name '*.map' -o -name '*.d.ts' \) -delete

# 3b. The PyTorch peers of the GPU benches (found there as <dist>/../bench/peers).
rm -rf "$CARRY/bench"
mkdir -p "$CARRY/bench/peers"
cp bench/peers/torch_gpu_ops.py bench/peers/torch_gpu_train_step.py bench/peers/torch_train_step.py "$CARRY/bench/peers/"

# 4. Runtime node_modules: the dependency closure of these packages (not typescript or cmake-js).
rm -rf "$CARRY/node_modules"
mkdir -p "$CARRY/node_modules"
node -e '
  const fs = require("fs"), path = require("path");
  const todo = ["uvu", "bindings", "tinybench", "node-addon-api", "node-api-headers"], seen = new Set();
  while (todo.length) {
    const name = todo.pop();
    if (seen.has(name)) continue;
    seen.add(name);
    const pj = JSON.parse(fs.readFileSync(path.join("node_modules", name, "package.json"), "utf8"));
    todo.push(...Object.keys(pj.dependencies || {}));
  }
  console.log([...seen].sort().join("\n"));
' > "$CARRY/node_modules.txt"
while read -r pkg; do
  mkdir -p "$CARRY/node_modules/$(dirname "$pkg")"
  cp -r "node_modules/$pkg" "$CARRY/node_modules/$pkg"
done < "$CARRY/node_modules.txt"
echo "pack: node_modules: $(tr '\n' ' ' < "$CARRY/node_modules.txt")"

# 5. libgomp, in case the GPU machine's image lacks it (run.sh uses it only then).
mkdir -p "$CARRY/lib"
GOMP=$(ldd "$CARRY/tessera.node" | awk '/libgomp/ {print $3}')
[ -n "$GOMP" ] && cp -L "$GOMP" "$CARRY/lib/"

du -sh "$CARRY"
SIZE_MB=$(du -sm "$CARRY" | cut -f1)
if [ "$SIZE_MB" -gt 60 ]; then echo "pack: $CARRY is ${SIZE_MB} MiB, over the 60 MiB budget"; exit 1; fi
echo "pack: done"
