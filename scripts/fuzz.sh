#!/usr/bin/env bash
# A short libFuzzer run of every decoder target (stable toolchain: no sanitizer).
# An input slower than 10 s counts as a failure (a denial of service is a bug too).
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-20}"
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz"
  cargo install cargo-fuzz --locked --version 0.13.2
fi
# cargo-fuzz builds with one codegen unit unless told otherwise: on two cores the arca crate
# alone then takes minutes of a single LLVM thread. 16 builds the targets in far less time
# for a short run that only needs them to execute, not to be as fast as they can be.
build_flags=(--sanitizer none --codegen-units 16)
log="$(mktemp)"
targets=$(cd fuzz && cargo fuzz list)
build_started=$SECONDS
(cd fuzz && cargo fuzz build "${build_flags[@]}")
echo "built every fuzz target in $((SECONDS - build_started))s"
for target in $targets; do
  echo "--> fuzz target ${target} for ${seconds}s"
  if (cd fuzz && cargo fuzz run "${build_flags[@]}" "${target}" -- -max_total_time="${seconds}" -timeout=10 -rss_limit_mb=2048) >"${log}" 2>&1; then
    grep -E "^Done [0-9]+ runs" "${log}" || tail -n 1 "${log}"
  else
    # The crash input is in fuzz/artifacts/<target>/; libFuzzer printed how to replay it.
    tail -n 60 "${log}"
    echo "fuzz target ${target} FAILED; replay: (cd fuzz && cargo fuzz run ${build_flags[*]} ${target} artifacts/${target}/<crash-file>)"
    exit 1
  fi
done
