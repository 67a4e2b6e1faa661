#!/usr/bin/env bash
# `npm start`: provision this host (packages, binfmt, npm dependencies, build), then run the farm.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/prepare.sh
exec node dist/scripts/start.js
