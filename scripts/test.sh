#!/usr/bin/env bash
# The README's test command: installs missing packages, then
#  1. builds with -Werror and runs every test (ctest),
#  2. builds again with AddressSanitizer + UndefinedBehaviorSanitizer and
#     runs every test again (leaks fail the run), then the tests labelled
#     tsan under ThreadSanitizer, then the fuzzers for a bounded time,
#  3. installs the library into a scratch prefix and builds + runs the
#     example host program through pkg-config,
#  4. checks the example topologies, and that a broken one fails with
#     FILE:LINE:COL and exit code 2,
#  5. runs the benchmark harnesses on small inputs (figures are not judged
#     here; bench/ is where speed is proven).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
./scripts/setup.sh
jobs=$(nproc)
step() { printf '\n=== %s\n' "$*"; }

# ---- MCP SDK tests: install the official MCP TypeScript SDK (pinned in
# tests/mcp/package-lock.json) so that ctest registers and runs mcp_sdk
step "npm ci (tests/mcp: the MCP TypeScript SDK client)"
npm ci --prefix tests/mcp --no-audit --no-fund
# ---- end MCP SDK tests

step "build (-Werror)"
cmake -S . -B build -DEDDY_WERROR=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$jobs"

step "tests"
ctest --test-dir build --output-on-failure -j"$jobs" -LE known_failing
# Tests known to fail intermittently run once, apart, and are reported
# loudly without failing the run (each one names its open problem).
step "known-failing tests (reported, not gating)"
if ! ctest --test-dir build --output-on-failure -L known_failing; then
  echo "test.sh: a KNOWN FAILING test failed again (its docs name the open problem)" >&2
fi

step "tests under ASan + UBSan"
cmake -S . -B build-asan -DEDDY_WERROR=ON -DEDDY_SANITIZE=address,undefined \
      -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build build-asan -j"$jobs"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build-asan --output-on-failure -j"$jobs" -LE known_failing

# ---- ThreadSanitizer: the tests labelled tsan (threads that interact:
# engine tasks, MCP HTTP, subscriptions, state flushes); scripts/tsan.sh
# with no arguments runs the whole suite (docs/reliability-input.md)
step "tests under ThreadSanitizer (label tsan)"
EDDY_TSAN_JOBS="$jobs" ./scripts/tsan.sh -L tsan
# ---- end ThreadSanitizer

# ---- fuzzing (fuzz/fuzz_*.c): each libFuzzer target for a bounded time ----
# (EDDY_FUZZ_SECONDS, default 20: six targets keep the stage, build included,
# near 5 minutes on 2 cores; docs/reliability-input.md has the long runs)
# from its committed corpus, under ASan + UBSan; a crash, leak or failed
# check fails the run and keeps the input.
step "fuzz (libFuzzer + ASan + UBSan, ${EDDY_FUZZ_SECONDS:=20}s per target)"
cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DEDDY_FUZZ=ON -DEDDY_BUILD_TESTS=OFF \
      -DEDDY_SANITIZE=address,undefined -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
for src in fuzz/fuzz_*.c; do
  name=$(basename "$src" .c)
  cmake --build build-fuzz -j"$jobs" --target "$name"
  work=$(mktemp -d) # new inputs go here; the committed corpus is read only
  if ! ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
       "./build-fuzz/$name" -max_total_time="$EDDY_FUZZ_SECONDS" -timeout=10 \
       -rss_limit_mb=2048 -print_final_stats=1 -dict="fuzz/${name#fuzz_}.dict" \
       -artifact_prefix="$work/" "$work" "fuzz/corpus/${name#fuzz_}" >"$work/log" 2>&1; then
    tail -60 "$work/log"
    echo "$name failed; reproduce with: ./build-fuzz/$name $work/crash-* (or leak-*, timeout-*)"
    exit 1
  fi
  grep -E '^(Done|stat::(number_of_executed_units|average_exec_per_sec|new_units_added))' "$work/log"
  rm -rf "$work"
done
# ---- end fuzzing ------------------------------------------------------------

step "install + example host program via pkg-config"
prefix=$(mktemp -d)
cmake --install build --prefix "$prefix" >/dev/null
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig:$prefix/lib/$(gcc -dumpmachine)/pkgconfig"
cc -std=c11 -Wall -Wextra -Werror examples/host_program.c $(pkg-config --cflags --libs eddy) \
   -o "$prefix/host_program"
libdir=$(pkg-config --variable=libdir eddy)
LD_LIBRARY_PATH="$libdir" "$prefix/host_program"
rm -rf "$prefix"

step "eddy check on the examples"
for f in examples/*.yaml; do
  ./build/eddy check "$f" >/dev/null || { echo "check failed: $f"; exit 1; }
done
# benchmark queries are templates (@EVENTS@, @PARTITIONS@; the Kafka ones
# @APPLICATION@, @GUARANTEE@, @REPARTITION@, @BOOTSTRAP@, @REGISTRY@, @TOPIC@, @BOUNDED@): check them filled in,
# the Kafka ones against the embedded cluster and registry
for f in bench/queries/*.yaml; do
  q=$(mktemp --suffix=.yaml)
  sed -e 's/@EVENTS@/1000/' -e 's/@PARTITIONS@/2/' -e 's/@APPLICATION@/check/' \
      -e 's/@GUARANTEE@/exactly_once/' -e 's/@REPARTITION@/auto/' -e 's/@BOOTSTRAP@/embedded/' -e 's/@REGISTRY@/embedded/' \
      -e 's/@TOPIC@/nexmark-bids/' -e 's/@BOUNDED@/true/' "$f" >"$q"
  ./build/eddy check "$q" >/dev/null || { echo "check failed: $f"; rm -f "$q"; exit 1; }
  rm -f "$q"
done
bad=$(mktemp --suffix=.yaml)
printf 'application: x\nsources:\n  - name: g\n    type: nexmark\npipelines:\n  - name: p\n    from: bid\n    steps:\n      - filter: prize > 1\n    to: out\nsinks: [{name: out, type: stdout}]\n' >"$bad"
set +e
msg=$(./build/eddy check "$bad" 2>&1); rc=$?
set -e
rm -f "$bad"
echo "$msg"
[ "$rc" -eq 2 ] && echo "$msg" | grep -q ":9:17: " || { echo "bad config not reported at 9:17 with exit 2"; exit 1; }

step "benchmark harness smoke runs (small inputs; figures are not judged here)"
EDDY_BENCH_BUILD="$root/build-bench" ./bench/nexmark --events 200000 >/dev/null
grep -q '"events_per_cpu_second"' bench/results/latest.json
# the sustained Kafka mode (one pass over a topic kept topped up; fails on
# a record dropped before it was read), about 5 s
sus_dir=$(mktemp -d)
EDDY_BENCH_BUILD="$root/build-bench" ./bench/nexmark --kafka-sustain --events 300000 --results-dir "$sus_dir" kafka-q5 >/dev/null
grep -q '"mode": "sustained"' "$sus_dir/latest.json"
rm -rf "$sus_dir"
EDDY_BENCH_BUILD="$root/build-bench" ./bench/state --base-keys 20000 --keys 100000 >/dev/null
grep -q '"update_ratio_to_raw_put"' bench/results/state.json
EDDY_BENCH_BUILD="$root/build-bench" ./bench/mcp --seconds 2 --rate 100000 >/dev/null
grep -q '"calls_per_second"' bench/results/mcp.json
EDDY_BENCH_BUILD="$root/build-bench" ./bench/avro --records 20000 --min-cpu 0.05 >/dev/null
grep -q '"resolved_records_per_cpu_second"' bench/results/avro.json
# ---- soak smoke (bench/soak, docs/reliability.md): 20 s of the full
# topology under random broker faults; exits 1 on a lost or duplicated
# result. The long form is bench/soak --seconds 600.
soak_log=$(mktemp)
BUILD="$root/build" ./bench/soak --seconds 20 >"$soak_log" 2>&1 || { tail -30 "$soak_log"; rm -f "$soak_log"; exit 1; }
rm -f "$soak_log"
grep -q '"lost": 0,' bench/results/soak.json
# ---- end soak smoke
git checkout -q -- bench/results 2>/dev/null || true

echo
echo "all checks passed"
