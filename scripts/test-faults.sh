#!/usr/bin/env bash
# `npm run test:faults`: the fault suite (test/faults: agents, coordinators, Redis, PostgreSQL,
# registry and git host failing under real builds) and the soak (test/soak: 200 builds with
# random agent kills and a Redis restart). Each scenario prints its figures; see
# docs/RELIABILITY.md. Extra arguments go to jest, e.g. `npm run test:faults -- -t redis`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/prepare.sh
echo "test:faults: jest (faults, soak)"
# One file at a time: every scenario starts a whole farm and times its recovery.
npx jest --ci --runInBand --selectProjects faults soak "$@"
