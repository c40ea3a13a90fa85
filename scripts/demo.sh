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
# describe compiles the topology, which starts (and at once stops) any
# embedded Kafka cluster or registry: its stderr would print addresses that
# are gone by the time the run prints the live ones, so show it only when
# describe fails (the run repeats any warning)
err=$(mktemp)
if ! ./build/eddy describe "$topo" 2>"$err"; then
  cat "$err" >&2
  rm -f "$err"
  exit 2
fi
rm -f "$err"
exec ./build/eddy run "$topo" "$@"
