#!/usr/bin/env bash
# `npm run bench`: a cold two-platform build through the farm and by hand, alternating, with the
# ratio of the medians and where the farm's time goes; the report also goes to
# bench/results/latest.md. Arguments are passed on, e.g. `npm run bench -- --runs 10`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/prepare.sh
exec node dist/bench/multi-arch.js "$@"
