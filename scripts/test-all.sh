#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls exactly this).
# Installs what it needs itself; every step says what it checks.
set -euo pipefail
cd "$(dirname "$0")/.."

steps_passed=0

SIM_SEEDS="${SIM_SEEDS:-150}"
FUZZ_SECONDS="${FUZZ_SECONDS:-10}"
SIM_ENV=(env RUSTFLAGS="--cfg madsim" CARGO_TARGET_DIR=target-sim)

run_started=$SECONDS
step_started=$SECONDS

# Each stage says what it checks and, when the next begins, how long it took.
step() {
  if [ -n "${current_step:-}" ]; then
    steps_passed=$((steps_passed + 1))
    printf '<== %s: %ds\n' "${current_step}" $((SECONDS - step_started))
  fi
  current_step="$*"
  step_started=$SECONDS
  printf '\n==> %s\n' "$*"
}

step "tools the build and the CLI and docs tests need (make, jq, openssl, strace)"
# The server binary's allocator, jemalloc (tikv-jemalloc-sys), is built from its C source
# with make, already by the lints below.
# tests/cli_tutorial.rs pipes `arca ... -format=json` into jq, as the tutorial does, and
# tests/tls_docs.rs makes the CA of docs/tls.md with openssl, and tests/fail_stop.rs
# makes a running server's fsyncs fail with strace; those tests fail rather than skip
# without them, so install whatever is missing here.
missing=()
for tool in make jq openssl strace; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing ${missing[*]}"
  sudo_if_needed=()
  if [ "$(id -u)" -ne 0 ]; then sudo_if_needed=(sudo); fi
  if command -v apt-get >/dev/null 2>&1; then
    "${sudo_if_needed[@]}" apt-get update -qq
    "${sudo_if_needed[@]}" apt-get install -y -qq "${missing[@]}"
  elif command -v dnf >/dev/null 2>&1; then
    "${sudo_if_needed[@]}" dnf install -y -q "${missing[@]}"
  elif command -v apk >/dev/null 2>&1; then
    "${sudo_if_needed[@]}" apk add --quiet "${missing[@]}"
  elif command -v brew >/dev/null 2>&1; then
    brew install "${missing[@]}"
  else
    echo "${missing[*]} missing and no known package manager is available to install them" >&2
    exit 1
  fi
fi
jq --version
openssl version
strace -V | head -n 1

step "hvac, the Python Vault client tests/api_hvac.rs drives (pinned, in a virtual environment under target/)"
hvac_venv="${PWD}/target/python-hvac"
if ! "${hvac_venv}/bin/python3" -c "import hvac" >/dev/null 2>&1; then
  rm -rf "${hvac_venv}"
  if ! python3 -m venv "${hvac_venv}" >/dev/null 2>&1; then
    # Debian's own python3 keeps venv in a package of its own.
    sudo_if_needed=()
    if [ "$(id -u)" -ne 0 ]; then sudo_if_needed=(sudo); fi
    "${sudo_if_needed[@]}" apt-get update -qq
    "${sudo_if_needed[@]}" apt-get install -y -qq python3 python3-venv
    python3 -m venv "${hvac_venv}"
  fi
  "${hvac_venv}/bin/python3" -m pip install --quiet --disable-pip-version-check hvac==2.4.0
fi
export ARCA_TEST_PYTHON="${hvac_venv}/bin/python3"
"${ARCA_TEST_PYTHON}" -c "import importlib.metadata as m; print('hvac', m.version('hvac'))"

step "formatting (cargo fmt --check)"
cargo fmt --all -- --check

step "lints (cargo clippy -D warnings)"
cargo clippy --workspace --all-targets -- -D warnings

step "test suite on real Tokio (unit, property, integration over real processes)"
# cargo-nextest (on this kind of machine already) runs each test in its own process and
# packs them across test binaries, so one slow test no longer holds back the binaries
# after it; `cargo test` runs the binaries one after another. Same tests either way.
TEST_THREADS="${TEST_THREADS:-$(nproc)}"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --test-threads "${TEST_THREADS}" --final-status-level slow
  cargo test --workspace --doc
else
  echo "cargo-nextest not found: running the same tests with cargo test"
  cargo test --workspace
fi

step "simulation tests (built with --cfg madsim, own target dir)"
# Doc-tests are left out: rustdoc would build them without the madsim cfg. Integration
# test files that only run outside the simulator (`#![cfg(not(madsim))]`, they spawn
# processes) are not built here: each would link an empty release binary.
sim_tests=()
for file in tests/*.rs; do
  grep -q '^#!\[cfg(not(madsim))\]' "$file" || sim_tests+=(--test "$(basename "$file" .rs)")
done
if [ "${#sim_tests[@]}" -eq 0 ]; then
  echo "no integration test runs in the simulator: tests/sim_raft.rs is missing?" >&2
  exit 1
fi
echo "simulator integration tests: ${sim_tests[*]}"
"${SIM_ENV[@]}" cargo test --release -p arca --lib "${sim_tests[@]}"
"${SIM_ENV[@]}" cargo test --release -p arca-sim

SIM_JOBS="${SIM_JOBS:-$(nproc)}"
SIM=("${SIM_ENV[@]}" cargo run -q -p arca-sim --release --)

step "simulation sweep: ${SIM_SEEDS} fresh seeds of every scenario (random first seed, printed), ${SIM_JOBS} jobs"
"${SIM[@]}" sweep --seeds "${SIM_SEEDS}" --first-seed random --jobs "${SIM_JOBS}"

step "simulation regressions: seeds that once failed (scenarios/regressions.txt)"
"${SIM[@]}" regress scenarios/regressions.txt --jobs "${SIM_JOBS}"

step "determinism: one seed of every scenario, run in two separate processes, gives the same trace hash"
"${SIM[@]}" determinism --seed 42 --jobs "${SIM_JOBS}"

step "seeded bugs: each deliberate bug is caught within its stated number of seeds"
"${SIM[@]}" prove-bugs --strict --jobs "${SIM_JOBS}"

step "fuzzing the decoders (${FUZZ_SECONDS}s per target)"
scripts/fuzz.sh "${FUZZ_SECONDS}"

steps_passed=$((steps_passed + 1))
printf '<== %s: %ds\n' "${current_step}" $((SECONDS - step_started))
echo
echo "whole run: $((SECONDS - run_started))s"
echo "checks: ${steps_passed} passed, 0 failed"
