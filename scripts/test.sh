#!/usr/bin/env bash
# `npm test`: the whole suite on a fresh machine: provisions what it needs, type-checks, lints,
# then runs every jest project (unit, integration, e2e). Tests start their own registries,
# databases and farm processes and remove them afterwards.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/prepare.sh
echo "test: typecheck"
npm run --silent typecheck
echo "test: lint"
npm run --silent lint
echo "test: jest"
npx jest --ci "$@"
