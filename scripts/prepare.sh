#!/usr/bin/env bash
# Everything `npm start` and `npm test` need before they run: system packages and binfmt
# (setup.sh), npm dependencies, the generated Prisma client and the compiled apps.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/setup.sh

# npm ci only when the installed tree is missing or older than the lock file.
if [[ ! -f node_modules/.package-lock.json || package-lock.json -nt node_modules/.package-lock.json ]]; then
  echo "prepare: npm ci"
  npm ci --no-audit --no-fund --loglevel=error
fi

echo "prepare: prisma generate (offline)"
# Prisma looks for its schema engine even to generate; any existing file satisfies it (DESIGN.md).
PRISMA_SCHEMA_ENGINE_BINARY=/bin/true npx prisma generate >/dev/null

echo "prepare: build"
npm run --silent build
