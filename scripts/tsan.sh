#!/usr/bin/env bash
# ThreadSanitizer run of the test suite (docs/reliability-input.md).
#   scripts/tsan.sh            every test (long: see the doc for the time)
#   scripts/tsan.sh -L tsan    only the tests labelled tsan (what CI runs)
#   scripts/tsan.sh -R NAME    any ctest selection
# Builds build-tsan (-DEDDY_SANITIZE=thread, RelWithDebInfo) and runs ctest
# with the suppressions of tests/tsan/tsan.supp (uninstrumented third-party code
# only, each one justified there). A data race fails the test that hit it.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
jobs=${EDDY_TSAN_JOBS:-$(nproc)}
cmake -S . -B build-tsan -DEDDY_WERROR=ON -DEDDY_SANITIZE=thread \
      -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
if [ $# -eq 0 ]; then
  cmake --build build-tsan -j"$jobs"
else # only what the selection runs (mcp_sdk runs mcp_serve)
  targets=$(ctest --test-dir build-tsan -N "$@" | sed -n 's/^ *Test *#[0-9]*: //p' |
            sed 's/^mcp_sdk$/mcp_serve/')
  [ -n "$targets" ] && cmake --build build-tsan -j"$jobs" --target $targets
fi
# halt_on_error: the first race ends the test with exit 66 and its report;
# second_deadlock_stack: both stacks of a lock-order inversion.
TSAN_OPTIONS="suppressions=$root/tests/tsan/tsan.supp halt_on_error=1 second_deadlock_stack=1 history_size=4 ${TSAN_OPTIONS:-}" \
  ctest --test-dir build-tsan --output-on-failure -j"$jobs" -LE known_failing "$@"
