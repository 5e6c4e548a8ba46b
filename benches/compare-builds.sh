#!/bin/bash
# Two builds of the server under one load harness, alternated three times so the
# neighbours' load on a shared box falls on both alike. Compare the medians per point,
# above all the server CPU µs/req column.
#   BEFORE=/path/to/old/arca AFTER=target/release/arca LOAD_BIN=target/release/deps/load-… \
#     benches/compare-builds.sh
set -u
: "${LOAD_BIN:?set LOAD_BIN to the load harness binary (cargo bench --bench load --no-run names it)}"
: "${BEFORE:?set BEFORE to the arca binary to compare against}"
: "${AFTER:?set AFTER to the arca binary under test}"
for round in 1 2 3; do
  for which in before after; do
    if [ "$which" = before ]; then binary=$BEFORE; else binary=$AFTER; fi
    echo "== round $round $which $(date +%T) load $(cut -d' ' -f1 /proc/loadavg)"
    ARCA_BIN=$binary "$LOAD_BIN" --quick --only arca --clients 1,16,64 2>&1 | grep "^| Arca"
  done
done
