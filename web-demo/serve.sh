#!/usr/bin/env bash
# Builds the wasm package and the demo's assets, then serves the page on http://127.0.0.1:${PORT:-8080}/
set -euo pipefail
cd "$(dirname "$0")/.."
bash wasm/build.sh
# (Re)build the assets when absent or older than the last distilled student: the page runs the
# on-device student (int8), `encore demo` trains the foundation model and distills it.
if [ ! -f web-demo/assets/model.encore ] || [ artifacts/student.encore -nt web-demo/assets/model.encore ]; then
  if [ -f artifacts/student.encore ]; then
    cargo run --release -p encore -- export --from-model artifacts/student.encore --dtype int8 \
      --out artifacts/student-int8.encore --web-demo web-demo/assets
  else
    cargo run --release -p encore -- demo --web-demo web-demo/assets
  fi
fi
rm -rf web-demo/pkg && cp -r target/wasm-pkg web-demo/pkg
echo "Encore web demo: http://127.0.0.1:${PORT:-8080}/"
exec python3 -m http.server "${PORT:-8080}" --bind 127.0.0.1 --directory web-demo
