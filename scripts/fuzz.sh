#!/usr/bin/env bash
# A short libFuzzer run of every decoder target (stable toolchain: no sanitizer).
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-20}"
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz"
  cargo install cargo-fuzz --locked --version 0.13.2
fi
targets=$(cd fuzz && cargo fuzz list)
for target in $targets; do
  echo "--> fuzz target ${target} for ${seconds}s"
  # Crashes are written to fuzz/artifacts/<target>/ with the command that replays them.
  (cd fuzz && cargo fuzz run --sanitizer none "${target}" -- -max_total_time="${seconds}" -rss_limit_mb=2048 2>&1 | tail -n 3)
done
