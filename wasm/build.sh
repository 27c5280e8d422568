#!/usr/bin/env bash
# Builds the wasm package (ES module, TypeScript types, package.json) into target/wasm-pkg: the
# full runtime (WebGPU and CPU backends) at its root, the CPU-only runtime (no GPU stack, a
# smaller download) in target/wasm-pkg/cpu (`import ... from "encore-reranker/cpu"`).
# Needs the wasm32 target (rust-toolchain.toml installs it) and wasm-bindgen-cli at the version
# in Cargo.lock (.ci/run installs it).
set -euo pipefail
cd "$(dirname "$0")/.."
want=$(grep -A1 '^name = "wasm-bindgen"$' Cargo.lock | sed -n 's/version = "\(.*\)"/\1/p')
have=$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')
if [ "$have" != "$want" ]; then
  echo "wasm-bindgen-cli $want is needed (found '${have:-none}'): cargo install wasm-bindgen-cli --version $want" >&2
  exit 1
fi
target="${CARGO_TARGET_DIR:-target}"
# The CPU-only build has its own target directory: the two feature sets would otherwise relink
# each other's module on every build.
cargo build -p encore-wasm --target wasm32-unknown-unknown --profile wasm-release
cargo build -p encore-wasm --target wasm32-unknown-unknown --profile wasm-release \
  --no-default-features --target-dir "$target/wasm-cpu"
rm -rf target/wasm-pkg
# The compiled modules live in cargo's target directory (CARGO_TARGET_DIR when set); the package
# always goes to this checkout's target/wasm-pkg, where the web demo and the browser test look.
# Function names (5 MB of the 18 MB module) are left out of the package: the page downloads and
# compiles less. ENCORE_WASM_NAMES=1 keeps them, for profiles and stack traces with names.
names=(--remove-name-section)
[ "${ENCORE_WASM_NAMES:-0}" = 1 ] && names=()
wasm-bindgen --target web "${names[@]}" --out-dir target/wasm-pkg "$target/wasm32-unknown-unknown/wasm-release/encore_wasm.wasm"
wasm-bindgen --target web "${names[@]}" --out-dir target/wasm-pkg/cpu "$target/wasm-cpu/wasm32-unknown-unknown/wasm-release/encore_wasm.wasm"
# The JavaScript the Rust code imports (wasm/js/) goes into the glue module: one request fewer
# on a page's cold start.
node wasm/inline-snippets.mjs target/wasm-pkg
node wasm/inline-snippets.mjs target/wasm-pkg/cpu
# The hand-written parts: the bundle reader shared with the worker entry, the worker entry
# (encore-reranker/worker) and its types, the package's README.
cp wasm/package.json wasm/README.md wasm/js/bundle.js wasm/js/worker.js wasm/js/worker-runtime.js \
  wasm/js/worker.d.ts target/wasm-pkg/
size() { echo "$(du -k "$1" | cut -f1) KiB wasm, $(gzip -9c "$1" | wc -c | awk '{printf "%d", $1/1024}') KiB gzipped"; }
echo "wasm package: target/wasm-pkg ($(size target/wasm-pkg/encore_wasm_bg.wasm)); CPU-only: target/wasm-pkg/cpu ($(size target/wasm-pkg/cpu/encore_wasm_bg.wasm))"
