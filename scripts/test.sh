#!/usr/bin/env bash
# `npm test`: the whole suite on a fresh machine: provisions what it needs, type-checks, lints,
# then runs the jest projects unit, integration, e2e and faults (a few minutes of injected
# faults). The soak (test/soak, 200 builds under faults) is too long for CI: `npm run test:faults`
# runs it with the faults. Tests start their own registries, databases and farm processes and
# remove them afterwards.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/prepare.sh
echo "test: typecheck"
npm run --silent typecheck
echo "test: lint"
npm run --silent lint
echo "test: jest"
npx jest --ci --selectProjects unit integration e2e faults "$@"
