#!/usr/bin/env bash
# Install the Debian packages eddy needs to build, test and benchmark,
# only those missing. Safe to run repeatedly.
set -euo pipefail
pkgs=(build-essential cmake pkg-config libyaml-dev libjansson-dev libcmocka-dev
      librocksdb-dev librdkafka-dev libavro-dev libcurl4-openssl-dev libmicrohttpd-dev
      clang libclang-rt-14-dev kcat)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# ---- MCP SDK tests: Node.js + npm (tests/mcp); a machine that already has
# node (e.g. from another repository) keeps it
if ! command -v node >/dev/null 2>&1; then
  echo "setup: installing nodejs npm" >&2
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi
# ---- end MCP SDK tests
