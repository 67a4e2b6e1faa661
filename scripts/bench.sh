#!/usr/bin/env bash
# `npm run bench`: after prepare, two benchmarks in turn.
# 1. multi-arch: a cold two-platform build through the farm and by hand, alternating, with the
#    ratio of the medians and where the farm's time goes (bench/results/latest.md). Arguments are
#    passed on to it, e.g. `npm run bench -- --runs 10`.
# 2. hooks: how fast the push webhook answers, sequentially, in parallel and for replays
#    (bench/results/hooks.md).
# Both run even when the first breaks; the script fails if either did.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/prepare.sh

# Ctrl-C stops both (bash runs this once the benchmark in front has cleaned up and exited).
trap 'exit 130' INT
status=0
node dist/bench/multi-arch.js "$@" || status=$?
node dist/bench/hooks.js || status=$?
exit "$status"
