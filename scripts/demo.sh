#!/usr/bin/env bash
# The README's demo command: installs missing packages, builds eddy and runs
# examples/demo.yaml on the built-in Nexmark generator (no Kafka needed).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
./scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" --target eddy_cli >/dev/null
./build/eddy describe examples/demo.yaml
exec ./build/eddy run examples/demo.yaml "$@"
