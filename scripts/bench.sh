#!/usr/bin/env bash
# `npm run bench`: after prepare, every benchmark in turn, then docs/PERFORMANCE.md from their reports.
# 1. multi-arch: two-platform builds through the farm and by hand, alternating: cold, rebuild of the
#    same commit, one-file change; scheduling overhead, publish latency, agent RSS
#    (bench/results/latest.md). Arguments are passed on to it, e.g. `npm run bench -- --runs 10`
#    (default 8; fewer than 5 is a smoke run).
# 2. load: accepted build submissions/s under autocannon, and api latency and memory with 0, N/2 and
#    N builds queued (bench/results/load.md); N is BENCH_QUEUED (default 10000).
# 3. hooks: how fast the push webhook answers, sequentially, in parallel and for replays
#    (bench/results/hooks.md).
# All run even when one breaks; the script fails if any did.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/prepare.sh

# Ctrl-C stops them all (bash runs this once the benchmark in front has cleaned up and exited).
trap 'exit 130' INT
started=$SECONDS
status=0
node dist/bench/multi-arch.js "$@" || status=$?
node dist/bench/load.js --queued "${BENCH_QUEUED:-10000}" || status=$?
node dist/bench/hooks.js || status=$?
node dist/bench/performance-doc.js --seconds "$((SECONDS - started))" || status=$?
exit "$status"
