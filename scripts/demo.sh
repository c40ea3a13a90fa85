#!/usr/bin/env bash
# The README's demo command: installs missing packages, builds eddy and runs
# examples/demo.yaml on the built-in Nexmark generator (no Kafka needed), or
# the topology named first (./scripts/demo.sh examples/kafka_demo.yaml: Kafka
# and a schema registry, both embedded).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
./scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" --target eddy_cli >/dev/null
topo=examples/demo.yaml
if [[ ${1:-} == *.yaml ]]; then
  topo=$1
  shift
fi
./build/eddy describe "$topo"
exec ./build/eddy run "$topo" "$@"
