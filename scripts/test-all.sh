#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls exactly this).
# Installs what it needs itself; every step says what it checks.
set -euo pipefail
cd "$(dirname "$0")/.."

steps_passed=0

SIM_SEEDS="${SIM_SEEDS:-200}"
FUZZ_SECONDS="${FUZZ_SECONDS:-20}"
SIM_ENV=(env RUSTFLAGS="--cfg madsim" CARGO_TARGET_DIR=target-sim)

step() {
  if [ -n "${current_step:-}" ]; then steps_passed=$((steps_passed + 1)); fi
  current_step="$*"
  printf '\n==> %s\n' "$*"
}

step "formatting (cargo fmt --check)"
cargo fmt --all -- --check

step "lints (cargo clippy -D warnings)"
cargo clippy --workspace --all-targets -- -D warnings

step "test suite on real Tokio (unit, property, integration over real processes)"
cargo test --workspace

step "simulation tests (built with --cfg madsim, own target dir)"
# Doc-tests are left out: rustdoc would build them without the madsim cfg.
"${SIM_ENV[@]}" cargo test --workspace --release --lib --bins --tests

step "simulation sweep: ${SIM_SEEDS} seeds of every scenario"
"${SIM_ENV[@]}" cargo run -p arca-sim --release -- sweep --seeds "${SIM_SEEDS}"

step "determinism: one seed run twice gives the same trace hash"
"${SIM_ENV[@]}" cargo run -p arca-sim --release -- determinism scenarios/raft-leader-crash.toml --seed 42

step "fuzzing the decoders (${FUZZ_SECONDS}s per target)"
scripts/fuzz.sh "${FUZZ_SECONDS}"

steps_passed=$((steps_passed + 1))
echo
echo "checks: ${steps_passed} passed, 0 failed"
